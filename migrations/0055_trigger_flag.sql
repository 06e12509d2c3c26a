-- depends: 0054_status_cost
-- Trigger flag: an UPDATE of products that changes no price cost 1.11-1.17x a bare UPDATE
-- (pgbench, CPU-bound; goal 1.05x). Of the ~16 us per statement, ~5 us was the trigger
-- function's SECURITY DEFINER + SET search_path (mostly the caller's search path recomputed
-- for its next statement) and ~9 us the one query that told a non-price UPDATE apart.
-- Now a row trigger, AFTER UPDATE FOR EACH ROW WHEN (old.price IS DISTINCT FROM new.price),
-- flags the transaction when a stored price really changed (BEFORE triggers included: it
-- sees the final row), and the statement trigger, now SECURITY INVOKER without a SET clause,
-- returns at once without the flag. The queue is written by a SECURITY DEFINER
-- loyverse.enqueue_price_changes(ids, old prices), executable by PUBLIC (any role allowed to
-- update products runs the trigger), which reads each product's CURRENT price: it also
-- fixes a lost update, where a restaurant's AFTER ROW trigger repricing a product in a
-- nested UPDATE had its newer price overwritten in the queue by the outer statement's.

create function loyverse.enqueue_price_changes(
    p_product_ids uuid[],
    p_old_prices numeric[]
)
returns void
language plpgsql
security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
declare
    v_accounts bigint[];
    v_account bigint;
begin
    if pg_catalog.pg_trigger_depth() = 0 then
        raise exception 'loyverse.enqueue_price_changes is for the products trigger only'
            using hint = 'To send current prices again, use loyverse.trigger_price_sync(restaurant_id).';
    end if;
    with upserted as (
        -- One pending row per product (partial unique index): the first change keeps its
        -- old_price, the last one sets new_price, each bumps the version. Claimed rows are
        -- not 'pending', so a change during a send makes a new pending row.
        insert into loyverse.loyverse_price_sync_queue as q
               (product_id, restaurant_id, account_id, priority, old_price, new_price,
                price_to_send, max_attempts, next_attempt_at, loyverse_item_id)
        select c.product_id, m.restaurant_id, m.account_id, s.priority, c.old_price, p.price,
               loyverse.price_to_send(p.price, s.price_rounding_rule, a.decimal_places, m.price_factor),
               s.max_attempts, loyverse.price_sync_due_at(s.sync_frequency), m.loyverse_item_id
          from unnest(p_product_ids, p_old_prices) as c (product_id, old_price)
          join public.products p on p.id = c.product_id
          join loyverse.loyverse_item_mappings m on m.product_id = c.product_id
          join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id
          join loyverse.accounts a on a.id = m.account_id
         where p.price is distinct from c.old_price
           and s.enabled
           and s.sync_direction in ('TO_LOYVERSE', 'BIDIRECTIONAL')
           and (cardinality(s.include_category_ids) = 0 or p.category_id = any (s.include_category_ids))
           and (p.category_id is null or not p.category_id = any (s.exclude_category_ids))
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
comment on function loyverse.enqueue_price_changes(uuid[], numeric[]) is
    'Internal to the products trigger: upsert one pending queue row, at its current price, per product '
    'whose price differs from the given old price and that is mapped, '
    'syncs towards Loyverse and passes the category filters; wake each REALTIME account with a due row.';

create or replace function loyverse.tg_products__enqueue_price_sync()
returns trigger
language plpgsql
as $$
declare
    v_ids pg_catalog.uuid[];
    v_old_prices pg_catalog.numeric[];
begin
    if pg_catalog.current_setting('loyverse_sync.price_changed', true) is distinct from 'on' then
        return null;  -- no price changed in this transaction so far
    end if;
    -- Prices written by the menu import come from Loyverse: never send them back.
    if pg_catalog.current_setting('loyverse_sync.origin', true) = 'loyverse' then
        return null;
    end if;
    -- The (id, old price) pairs that no new row repeats: the rows whose price changed (or
    -- whose id changed: only unmapped products can, the mappings' foreign key forbids it
    -- otherwise, and the upsert skips products that are not mapped).
    select pg_catalog.array_agg(c.id), pg_catalog.array_agg(c.price)
      into v_ids, v_old_prices
      from (select o.id, o.price from old_rows o
            except all
            select n.id, n.price from new_rows n) c;
    if v_ids is not null then
        perform loyverse.enqueue_price_changes(v_ids, v_old_prices);
    end if;
    return null;
end;
$$;
comment on function loyverse.tg_products__enqueue_price_sync() is
    'Queue the products whose price changed in this statement (mapped, sync enabled towards Loyverse, '
    'category filters passed) and wake the worker of each REALTIME account. Returns at once unless '
    '_090_note_price_change flagged a price change in this transaction; skipped when '
    'loyverse_sync.origin = ''loyverse'' (the menu import).';

drop function loyverse.enqueue_price_changes(uuid[], numeric[], numeric[], uuid[]);

create function loyverse.tg_products__note_price_change()
returns trigger
language plpgsql
as $$
declare
    v_ignored text;
begin
    v_ignored := pg_catalog.set_config('loyverse_sync.price_changed', 'on', true);
    return null;
end;
$$;
comment on function loyverse.tg_products__note_price_change() is
    'Set the transaction-local flag loyverse_sync.price_changed: a product''s price changed, so the '
    'price-sync statement trigger must look at this transaction''s updates.';

create trigger _090_note_price_change
    after update on public.products
    for each row
    when (old.price is distinct from new.price)
    execute function loyverse.tg_products__note_price_change();
comment on trigger _090_note_price_change on public.products is
    'Flags the transaction when a price really changed (sees the stored row, BEFORE triggers included), '
    'so that _100_enqueue_price_sync looks for it; UPDATEs that change no price skip the price sync.';

revoke execute on function loyverse.tg_products__note_price_change() from public;
grant usage on schema loyverse to public;
grant execute on function loyverse.enqueue_price_changes(uuid[], numeric[]) to public;
