-- Undo 0055: the row trigger and its flag go; the statement trigger function is SECURITY
-- DEFINER again with its EXCEPT ALL check, and the upsert takes the statement's new rows.
drop trigger _090_note_price_change on public.products;
drop function loyverse.tg_products__note_price_change();
revoke usage on schema loyverse from public;

create function loyverse.enqueue_price_changes(
    p_product_ids uuid[],
    p_old_prices numeric[],
    p_new_prices numeric[],
    p_category_ids uuid[]
)
returns void
language plpgsql
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
declare
    v_accounts bigint[];
    v_account bigint;
begin
    with upserted as (
        -- One pending row per product (partial unique index): the first change keeps its
        -- old_price, the last one sets new_price, each bumps the version. Claimed rows are
        -- not 'pending', so a change during a send makes a new pending row.
        insert into loyverse.loyverse_price_sync_queue as q
               (product_id, restaurant_id, account_id, priority, old_price, new_price,
                price_to_send, max_attempts, next_attempt_at, loyverse_item_id)
        select c.product_id, m.restaurant_id, m.account_id, s.priority, c.old_price, c.new_price,
               loyverse.price_to_send(c.new_price, s.price_rounding_rule, a.decimal_places, m.price_factor),
               s.max_attempts, loyverse.price_sync_due_at(s.sync_frequency), m.loyverse_item_id
          from unnest(p_product_ids, p_old_prices, p_new_prices, p_category_ids)
               as c (product_id, old_price, new_price, category_id)
          join loyverse.loyverse_item_mappings m on m.product_id = c.product_id
          join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id
          join loyverse.accounts a on a.id = m.account_id
         where c.new_price is distinct from c.old_price
           and s.enabled
           and s.sync_direction in ('TO_LOYVERSE', 'BIDIRECTIONAL')
           and (cardinality(s.include_category_ids) = 0 or c.category_id = any (s.include_category_ids))
           and (c.category_id is null or not c.category_id = any (s.exclude_category_ids))
        on conflict (product_id) where status = 'pending' do update
           set new_price = excluded.new_price,
               price_to_send = excluded.price_to_send,
               version = q.version + 1,
               restaurant_id = excluded.restaurant_id,
               account_id = excluded.account_id,
               loyverse_item_id = excluded.loyverse_item_id,
               priority = greatest(q.priority, excluded.priority),
               max_attempts = excluded.max_attempts,
               -- a row backing off after a failure keeps its backoff
               next_attempt_at = case when q.attempts > 0 then q.next_attempt_at
                                      else least(q.next_attempt_at, excluded.next_attempt_at) end,
               updated_at = now()
        returning q.restaurant_id, q.account_id, q.next_attempt_at
    ), due as (
        select distinct u.restaurant_id, u.account_id from upserted u where u.next_attempt_at <= now()
    )
    -- Wake the worker of each account with a due row of a REALTIME, unpaused restaurant.
    select array_agg(distinct d.account_id) into v_accounts
      from due d
      join loyverse.loyverse_price_sync_settings s on s.restaurant_id = d.restaurant_id
     where s.sync_frequency = 'REALTIME' and not s.paused;

    if v_accounts is not null then
        foreach v_account in array v_accounts loop
            perform loyverse.wake_price_sync(v_account);
        end loop;
    end if;
end;
$$;
comment on function loyverse.enqueue_price_changes(uuid[], numeric[], numeric[], uuid[]) is
    'Internal to the products trigger: upsert one pending queue row per changed product that is mapped, '
    'syncs towards Loyverse and passes the category filters; wake each REALTIME account with a due row.';

create or replace function loyverse.tg_products__enqueue_price_sync()
returns trigger
language plpgsql
security definer  -- loyverse_app updates prices but cannot read the queue
set search_path = ''
as $$
declare
    v_ids uuid[];
    v_new_ids uuid[];
    v_old_prices numeric[];
    v_new_prices numeric[];
    v_categories uuid[];
begin
    -- Cheap exit: no (id, price) pair of the new rows is new, so no price changed.
    if not exists (select n.id, n.price from new_rows n
                   except all
                   select o.id, o.price from old_rows o) then
        return null;
    end if;
    -- Prices written by the menu import come from Loyverse: never send them back.
    if current_setting('loyverse_sync.origin', true) = 'loyverse' then
        return null;
    end if;

    -- Old and new rows, paired by position in id order (no column list is allowed with
    -- transition tables, so this trigger sees every updated row).
    -- One sort per transition table (a subquery's order feeds every array_agg of its
    -- query; aggregate-level ORDER BY would sort once per aggregate: 5 sorts, not 2).
    select o.ids, o.prices, n.ids, n.prices, n.categories
      into v_ids, v_old_prices, v_new_ids, v_new_prices, v_categories
      from (select array_agg(s.id) as ids, array_agg(s.price) as prices
              from (select r.id, r.price from old_rows r order by r.id) s) o,
           (select array_agg(s.id) as ids, array_agg(s.price) as prices,
                   array_agg(s.category_id) as categories
              from (select r.id, r.price, r.category_id from new_rows r order by r.id) s) n;
    if v_ids is distinct from v_new_ids then
        -- The statement changed product ids (only unmapped products can: the mappings'
        -- foreign key forbids it otherwise): pair by id with a join planned for this run.
        execute 'select array_agg(n.id), array_agg(o.price), array_agg(n.price), array_agg(n.category_id)
                   from new_rows n join old_rows o on o.id = n.id'
           into v_ids, v_old_prices, v_new_prices, v_categories;
    end if;

    perform loyverse.enqueue_price_changes(v_ids, v_old_prices, v_new_prices, v_categories);
    return null;
end;
$$;
comment on function loyverse.tg_products__enqueue_price_sync() is
    'Queue the products whose price changed in this statement (mapped, sync enabled towards Loyverse, '
    'category filters passed) and wake the worker of each REALTIME account. Skipped when '
    'loyverse_sync.origin = ''loyverse'' (the menu import).';

drop function loyverse.enqueue_price_changes(uuid[], numeric[]);
revoke execute on function loyverse.enqueue_price_changes(uuid[], numeric[], numeric[], uuid[]) from public;
