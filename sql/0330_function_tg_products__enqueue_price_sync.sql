-- Statement-level trigger function on public.products: one set-based upsert of the price
-- sync queue per UPDATE statement (a 20,000-row bulk update is one statement, not 20,000 calls).
create function loyverse.tg_products__enqueue_price_sync()
returns trigger
language plpgsql
security definer  -- loyverse_app updates prices but cannot read the queue
set search_path = ''
as $$
declare
    v_accounts bigint[];
    v_account bigint;
begin
    -- Prices written by the menu import come from Loyverse: never send them back.
    if current_setting('loyverse_sync.origin', true) = 'loyverse' then
        return null;
    end if;

    with changed as (
        select n.id as product_id,
               m.restaurant_id,
               m.account_id,
               o.price as old_price,
               n.price as new_price,
               loyverse.round_price(n.price, s.price_rounding_rule, a.decimal_places) as price_to_send,
               s.priority,
               s.max_attempts,
               loyverse.price_sync_due_at(s.sync_frequency) as due_at,
               (s.sync_frequency = 'REALTIME' and not s.paused) as wake
          from new_rows n
          join old_rows o on o.id = n.id
          join loyverse.loyverse_item_mappings m on m.product_id = n.id
          join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id
          join loyverse.accounts a on a.id = m.account_id
         where n.price is distinct from o.price  -- no column list is allowed with transition tables
           and s.enabled
           and s.sync_direction in ('TO_LOYVERSE', 'BIDIRECTIONAL')
           and (cardinality(s.include_category_ids) = 0 or n.category_id = any (s.include_category_ids))
           and (n.category_id is null or not n.category_id = any (s.exclude_category_ids))
    ), upserted as (
        -- One pending row per product (partial unique index): the first change keeps its
        -- old_price, the last one sets new_price, each bumps the version. Claimed rows are
        -- not 'pending', so a change during a send makes a new pending row.
        insert into loyverse.loyverse_price_sync_queue as q
               (product_id, restaurant_id, account_id, priority, old_price, new_price,
                price_to_send, max_attempts, next_attempt_at)
        select c.product_id, c.restaurant_id, c.account_id, c.priority, c.old_price, c.new_price,
               c.price_to_send, c.max_attempts, c.due_at
          from changed c
        on conflict (product_id) where status = 'pending' do update
           set new_price = excluded.new_price,
               price_to_send = excluded.price_to_send,
               version = q.version + 1,
               restaurant_id = excluded.restaurant_id,
               account_id = excluded.account_id,
               priority = greatest(q.priority, excluded.priority),
               max_attempts = excluded.max_attempts,
               -- a row backing off after a failure keeps its backoff
               next_attempt_at = case when q.attempts > 0 then q.next_attempt_at
                                      else least(q.next_attempt_at, excluded.next_attempt_at) end,
               updated_at = now()
        returning q.product_id, q.account_id, q.next_attempt_at
    )
    select array_agg(distinct u.account_id) into v_accounts
      from upserted u
      join changed c on c.product_id = u.product_id
     where c.wake and u.next_attempt_at <= now();

    if v_accounts is not null then
        foreach v_account in array v_accounts loop
            perform loyverse.wake_price_sync(v_account);
        end loop;
    end if;
    return null;
end;
$$;
comment on function loyverse.tg_products__enqueue_price_sync() is
    'Queue the products whose price changed in this statement (mapped, sync enabled towards Loyverse, '
    'category filters passed) and wake the worker of each REALTIME account. Skipped when '
    'loyverse_sync.origin = ''loyverse'' (the menu import).';
