-- The trigger's upsert: the products whose price changed in one UPDATE statement, as arrays
-- (product, old price), become one pending queue row each, at the product's CURRENT price
-- and category, read here. Not the statement's new rows: by the time a statement's AFTER
-- STATEMENT trigger fires, a restaurant's own AFTER ROW trigger may have changed the price
-- again in a nested UPDATE, whose own trigger already queued the newer price; writing the
-- statement's value over it would leave Loyverse with an older price (measured before 0055:
-- products 1020.00, queued 20.00).
-- SECURITY DEFINER: whoever updates products runs the trigger, and may not read the queue
-- (loyverse_app cannot). Who may call it is checked twice: by role (EXECUTE is granted to
-- loyverse_app and loyverse_worker only, so a role that changes prices must be one of them)
-- and by caller (the function that called this one must be the products trigger function,
-- which nobody but its owner may attach to another table: it is not executable by PUBLIC).
-- pg_trigger_depth() was not enough: any role with TEMP could call this from a trigger on its
-- own temp table with a made-up old price. The call stack is read with GET DIAGNOSTICS
-- PG_CONTEXT. PL/pgSQL prints a function's name as it was when the session compiled it:
-- schema-qualified unless schema loyverse was on the caller's search_path, so both forms
-- are accepted (refusing a legitimate price change would be worse). What stays possible: a
-- member of loyverse_app that names its own temp trigger function the same and puts pg_temp
-- first on its search_path can pass made-up old prices; it may change those prices anyway,
-- and old_price only labels the row (the guardrails compare with the mapping's last synced
-- price).
-- A forced generic plan: the arrays are parameters, and PL/pgSQL would otherwise re-plan
-- this statement on every call (measured: 1.7 ms vs 0.7 ms per single-row UPDATE). The
-- generic plan reaches products, mappings, settings and accounts by index for any array size.
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
    v_stack text;
begin
    get diagnostics v_stack = pg_context;
    -- line 1 is this function, line 2 the statement that called it, line 3 that statement's
    -- function. starts_with, not a pattern: SIMILAR TO cost ~20 us per call, this ~2 us.
    v_stack := pg_catalog.split_part(v_stack, E'\n', 3);
    if not (pg_catalog.starts_with(v_stack, 'PL/pgSQL function loyverse.tg_products__enqueue_price_sync() line ')
            or pg_catalog.starts_with(v_stack, 'PL/pgSQL function tg_products__enqueue_price_sync() line ')) then
        raise exception 'loyverse.enqueue_price_changes is for the products trigger only'
            using errcode = 'insufficient_privilege',
                  hint = 'To send current prices again, use loyverse.trigger_price_sync(restaurant_id).';
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
          join loyverse.loyverse_accounts a on a.id = m.account_id
         where p.price is distinct from c.old_price
           and s.enabled
           and s.sync_direction in ('TO_LOYVERSE', 'BIDIRECTIONAL')
           and m.loyverse_pricing_type = 'FIXED'  -- a VARIABLE price is entered at the counter
           and loyverse.category_is_synced(p.category_id, s.include_category_ids, s.exclude_category_ids)
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
    -- Wake the worker of each account with a due row of a REALTIME, unpaused restaurant,
    -- unless its sync job is already queued (the usual case while prices keep changing):
    -- the same check loyverse.wake_price_sync makes first, done here inside this query so
    -- that a queued job costs no function call and no statement of its own (measured per
    -- single-row price UPDATE: 4-20 us across runs of the ~190 us the trigger adds). The lock
    -- name is wake_price_sync's, which checks again (a job may have been queued meanwhile).
    select array_agg(distinct d.account_id) into v_accounts
      from due d
      join loyverse.loyverse_price_sync_settings s on s.restaurant_id = d.restaurant_id
     where s.sync_frequency = 'REALTIME' and not s.paused
       and not exists (select 1 from public.procrastinate_jobs j
                        where j.queueing_lock = 'loyverse_price_sync:' || d.account_id
                          and j.status = 'todo'
                        offset 0);  -- kept a subplan: one index lookup per account, whatever the plan

    if v_accounts is not null then
        foreach v_account in array v_accounts loop
            perform loyverse.wake_price_sync(v_account);
        end loop;
    end if;
end;
$$;
comment on function loyverse.enqueue_price_changes(uuid[], numeric[]) is
    'Internal to the products trigger (refuses any other caller): upsert one pending queue row, at its current '
    'price, per product whose price differs from the given old price and that is mapped with a FIXED price, '
    'syncs towards Loyverse and passes the category filters; wake each REALTIME account with a due row.';
