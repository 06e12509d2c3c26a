-- Undo 0061: the functions and views as they were, without the guardrails, the pricing type,
-- the held status and the new constraints; held rows are cancelled, PUBLIC gets EXECUTE back
-- where it had it.
alter default privileges grant execute on functions to public;
alter default privileges in schema public revoke execute on functions from public;
grant execute on function loyverse.rate_governor_take(bigint, integer), loyverse.rate_governor_penalize(bigint, double precision),
    loyverse.normalize_name(text), loyverse.jsonb_to_int(jsonb), loyverse.jsonb_to_bool(jsonb),
    loyverse.import_field_map_problems(jsonb), loyverse.import_plan(bigint), loyverse.import_plan_summary(bigint),
    loyverse.import_journal_before(bigint, text, text[], text), loyverse.import_journal_refresh(bigint),
    loyverse.import_apply_objects(bigint), loyverse.import_apply_batch(bigint, integer), loyverse.import_finish(bigint),
    loyverse.import_undo(bigint, boolean), loyverse.latency_bounds(), loyverse.record_api_calls(bigint, jsonb),
    loyverse._latency_quantile(bigint[], double precision), loyverse._sum_buckets(bigint[], bigint[]),
    loyverse.sum_buckets(bigint[]), loyverse.evaluate_alerts(), loyverse.enqueue_price_changes(uuid[], numeric[]),
    loyverse.wake_price_sync_when_due(bigint)
  to public;
revoke execute on function loyverse.wake_price_sync_when_due(bigint) from loyverse_worker;
revoke execute on function loyverse._latency_quantile(bigint[], double precision), loyverse.sum_buckets(bigint[]),
    loyverse._sum_buckets(bigint[], bigint[]), loyverse.latency_bounds()
  from loyverse_readonly, loyverse_worker;
revoke execute on function loyverse.enqueue_price_changes(uuid[], numeric[]) from loyverse_app, loyverse_worker;

drop view loyverse.price_sync_held;
drop view loyverse.price_sync_status cascade;  -- and alert_measurements, made again below
drop view loyverse.price_sync_problems;
drop function loyverse.approve_held_price_changes(uuid, uuid);
drop function loyverse.reject_held_price_changes(uuid, uuid);
drop function loyverse.make_price_fixed(uuid, uuid);

-- ---- sql/0332_function_enqueue_price_changes.sql (before 0061) ----
-- The trigger's upsert: the products whose price changed in one UPDATE statement, as arrays
-- (product, old price), become one pending queue row each, at the product's CURRENT price
-- and category, read here. Not the statement's new rows: by the time a statement's AFTER
-- STATEMENT trigger fires, a restaurant's own AFTER ROW trigger may have changed the price
-- again in a nested UPDATE, whose own trigger already queued the newer price; writing the
-- statement's value over it would leave Loyverse with an older price (measured before 0055:
-- products 1020.00, queued 20.00).
-- SECURITY DEFINER: whoever updates products runs the trigger, and may not read the queue
-- (loyverse_app cannot). EXECUTE is granted to PUBLIC, because any role allowed to update
-- products runs this through the trigger; called directly it can only queue the price that
-- public.products holds now, and only from within a trigger.
-- A forced generic plan: the arrays are parameters, and PL/pgSQL would otherwise re-plan
-- this statement on every call (measured: 1.7 ms vs 0.7 ms per single-row UPDATE). The
-- generic plan reaches products, mappings, settings and accounts by index for any array size.
create or replace function loyverse.enqueue_price_changes(
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
    'Internal to the products trigger: upsert one pending queue row, at its current price, per product '
    'whose price differs from the given old price and that is mapped, '
    'syncs towards Loyverse and passes the category filters; wake each REALTIME account with a due row.';

-- ---- sql/0335_function_enqueue_current_prices.sql (before 0061) ----
-- Queue the database's current price of some products (manual full sync, retry, conflict
-- resolution, a worker that lost its lease, a settings change that widens what is synced):
-- the same upsert as the trigger, due now or at p_due_at (a settings change follows the
-- restaurant's frequency: MANUAL rows wait for an explicit trigger).
create or replace function loyverse.enqueue_current_prices(
    p_product_ids uuid[],
    p_source text,
    p_priority_boost integer default 0,
    p_due_at timestamptz default null  -- null: now
)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_count integer;
    v_accounts bigint[];
    v_account bigint;
begin
    with wanted as (
        select p.id as product_id, m.restaurant_id, m.account_id, m.last_synced_price as old_price,
               p.price as new_price,
               loyverse.price_to_send(p.price, s.price_rounding_rule, a.decimal_places, m.price_factor) as price_to_send,
               s.priority + p_priority_boost as priority,
               s.max_attempts,
               not s.paused and coalesce(p_due_at, now()) <= now() as wake,
               m.loyverse_item_id
          from public.products p
          join loyverse.loyverse_item_mappings m on m.product_id = p.id
          join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id
          join loyverse.accounts a on a.id = m.account_id
         where p.id = any (p_product_ids)
           and s.enabled
           and s.sync_direction in ('TO_LOYVERSE', 'BIDIRECTIONAL')
           -- a product deleted meanwhile is skipped, one being deleted waits for this commit
           -- (the queue has no foreign key to products: sql/0333)
           for key share of p
    ), upserted as (
        insert into loyverse.loyverse_price_sync_queue as q
               (product_id, restaurant_id, account_id, source, priority, old_price, new_price,
                price_to_send, max_attempts, next_attempt_at, loyverse_item_id)
        select w.product_id, w.restaurant_id, w.account_id, p_source, w.priority, w.old_price,
               w.new_price, w.price_to_send, w.max_attempts, coalesce(p_due_at, now()), w.loyverse_item_id
          from wanted w
        on conflict (product_id) where status = 'pending' do update
           set new_price = excluded.new_price,
               price_to_send = excluded.price_to_send,
               version = q.version + case when q.price_to_send = excluded.price_to_send then 0 else 1 end,
               source = excluded.source,
               loyverse_item_id = excluded.loyverse_item_id,
               priority = greatest(q.priority, excluded.priority),
               next_attempt_at = least(q.next_attempt_at, coalesce(p_due_at, now())),
               updated_at = now()
        returning q.product_id, q.account_id
    )
    select count(*), array_agg(distinct u.account_id) filter (where w.wake)
      into v_count, v_accounts
      from upserted u join wanted w on w.product_id = u.product_id;

    if v_accounts is not null then
        foreach v_account in array v_accounts loop
            perform loyverse.wake_price_sync(v_account);
        end loop;
    end if;
    return v_count;
end;
$$;
comment on function loyverse.enqueue_current_prices(uuid[], text, integer, timestamptz) is
    'Queue the current price of the given products (due at p_due_at, default now; priority raised by '
    'p_priority_boost) and wake their accounts when due now; returns the rows queued. Skips products '
    'whose restaurant does not sync to Loyverse.';

-- ---- sql/0340_function_claim_price_sync_batch.sql (before 0061) ----
-- The worker's claim: due pending rows of ONE account, whole Loyverse items at a time
-- (every due row of each chosen item, so one write per item), highest priority first,
-- FOR UPDATE SKIP LOCKED, with a lease. An item with a row in flight is not claimed: a write
-- restates every variant of its item, so two claims holding rows of one item could each write
-- the other's variants with prices read before the other's write (an older price last).
create or replace function loyverse.claim_price_sync_batch(
    p_account_id bigint,
    p_claimed_by text,
    p_max_items integer default 250,
    p_lease_seconds double precision default 120,
    p_scan_rows integer default 2000
)
returns table (
    id bigint,
    product_id uuid,
    restaurant_id uuid,
    version bigint,
    source text,
    attempts integer,
    max_attempts integer,
    old_price numeric,
    new_price numeric,
    price_to_send numeric,
    loyverse_item_id text,
    loyverse_variant_id text,
    loyverse_store_id text,
    last_synced_price numeric,
    sync_direction text,
    enabled boolean
)
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
    v_items text[] := '{}';
    v_item text;
    v_id bigint;
begin
    if p_claimed_by is null or btrim(p_claimed_by) = '' then
        raise exception 'claim_price_sync_batch: p_claimed_by must not be empty'
            using errcode = 'invalid_parameter_value';
    end if;
    -- One claim of an account at a time: a claim must see the rows the previous one took
    -- (normally one job drains an account; this matters when a worker was presumed dead).
    perform pg_advisory_xact_lock(hashtext('loyverse.claim_price_sync_batch'), p_account_id::integer);
    perform loyverse.release_expired_price_sync_leases(p_account_id);

    -- The items to write, in the order of their most urgent due row (claim index order):
    -- read due rows one by one and stop at p_max_items distinct items (at most p_scan_rows
    -- rows). The item is denormalised on the row, so this touches no mapping.
    for v_id, v_item in
        select q.id, q.loyverse_item_id
          from loyverse.loyverse_price_sync_queue q
          join loyverse.loyverse_price_sync_settings s on s.restaurant_id = q.restaurant_id
         where q.status = 'pending'
           and q.account_id = p_account_id
           and q.next_attempt_at <= now()
           and not s.paused
           and not exists (select 1 from loyverse.loyverse_price_sync_queue f
                            where f.account_id = q.account_id and f.loyverse_item_id = q.loyverse_item_id
                              and f.status = 'processing'
                           offset 0)
         order by q.priority desc, q.next_attempt_at, q.id
         limit p_scan_rows
    loop
        if v_item is null then
            -- a row inserted without its item (by hand): copy it from the mapping now, so
            -- the pick below finds it through the item index like every other row
            update loyverse.loyverse_price_sync_queue q
               set loyverse_item_id = m.loyverse_item_id
              from loyverse.loyverse_item_mappings m
             where q.id = v_id and m.product_id = q.product_id
            returning q.loyverse_item_id into v_item;
        end if;
        if v_item is not null and not v_item = any (v_items) then
            v_items := v_items || v_item;
            exit when cardinality(v_items) >= p_max_items;
        end if;
    end loop;
    if cardinality(v_items) = 0 then
        return;
    end if;

    return query
    with picked as (
        -- every due row of the chosen items (whole items: one write per item)
        select q.id
          from loyverse.loyverse_price_sync_queue q
          join loyverse.loyverse_price_sync_settings s on s.restaurant_id = q.restaurant_id
         where q.account_id = p_account_id
           and q.status = 'pending'
           and q.loyverse_item_id = any (v_items)
           and q.next_attempt_at <= now()
           and not s.paused
           and exists (select 1 from loyverse.loyverse_item_mappings m where m.product_id = q.product_id)
           -- writes for one item never overlap: no row of the item (nor, for a row queued
           -- without its item, of the product) is in flight under another claim.
           -- (OFFSET 0 keeps this a per-row index probe: as an anti join the planner,
           -- expecting few processing rows, rescans all of them for every candidate.)
           and not exists (select 1 from loyverse.loyverse_price_sync_queue f
                            where f.account_id = q.account_id and f.loyverse_item_id = q.loyverse_item_id
                              and f.status = 'processing'
                           offset 0)
           and not exists (select 1 from loyverse.loyverse_price_sync_queue f
                            where f.product_id = q.product_id and f.status = 'processing'
                           offset 0)
           for update of q skip locked
    ), claimed as (
        update loyverse.loyverse_price_sync_queue q
           set status = 'processing',
               lease_until = clock_timestamp() + make_interval(secs => p_lease_seconds),
               claimed_by = p_claimed_by,
               updated_at = now()
          from picked
         where q.id = picked.id
        returning q.*
    )
    select c.id, c.product_id, c.restaurant_id, c.version, c.source, c.attempts, c.max_attempts,
           c.old_price, c.new_price, c.price_to_send, m.loyverse_item_id, m.loyverse_variant_id,
           m.loyverse_store_id, m.last_synced_price, s.sync_direction, s.enabled
      from claimed c
      join loyverse.loyverse_item_mappings m on m.product_id = c.product_id
      join loyverse.loyverse_price_sync_settings s on s.restaurant_id = c.restaurant_id
     order by m.loyverse_item_id, c.id;
end;
$$;
comment on function loyverse.claim_price_sync_batch(bigint, text, integer, double precision, integer) is
    'Claim up to p_max_items Loyverse items'' worth of due pending rows of one account (status processing, '
    'lease p_lease_seconds, claimed_by = p_claimed_by, a token unique to this claim); items are chosen among '
    'the first p_scan_rows due rows by priority. Releases expired leases first.';

-- ---- sql/0350_function_complete_price_sync_batch.sql (before 0061) ----
-- The worker reports a claimed batch in one call: every row's outcome, applied atomically,
-- plus one loyverse_sync_logs row. Rows no longer held by this claim (lease lost) are left
-- alone; if we wrote them to Loyverse, the product's current price is queued again so the
-- final price is always the last one written. The rows entering done, failed or dead are
-- added to loyverse.loyverse_price_sync_outcome_totals here, one statement per outcome; the
-- SET clause loyverse_sync.outcomes_counted tells the queue's row trigger not to count them
-- one by one.
create or replace function loyverse.complete_price_sync_batch(
    p_claimed_by text,
    p_results jsonb,
    p_requests_made integer default 0,
    p_details jsonb default '{}',
    p_started_at timestamptz default null,
    p_backoff_base double precision default 2,
    p_backoff_cap double precision default 900
)
returns jsonb
language plpgsql
security definer
set search_path = ''
set loyverse_sync.outcomes_counted = 'on'
as $$
-- p_results: [{"id", "outcome": done|retry|failed|conflict|release|cancel, "sent": bool,
--              "error", "code", "details": {...}, "loyverse_price": number}]
declare
    v_lost_products uuid[];
    v_lost integer;
    v_counts jsonb;
    v_restaurants uuid[];
    v_account bigint;
    v_log_id bigint;
    v_errors jsonb;
    v_ignored integer;
begin
    create temporary table if not exists pg_temp.price_sync_results (
        id bigint primary key, outcome text not null, sent boolean, error text, code text,
        details jsonb, loyverse_price numeric, product_id uuid, mine boolean, superseded boolean,
        restaurant_id uuid, account_id bigint
    ) on commit drop;
    truncate pg_temp.price_sync_results;

    insert into pg_temp.price_sync_results (id, outcome, sent, error, code, details, loyverse_price)
    select r.id, r.outcome, coalesce(r.sent, false), r.error, r.code, r.details, r.loyverse_price
      from jsonb_to_recordset(p_results) as r(id bigint, outcome text, sent boolean, error text,
                                              code text, details jsonb, loyverse_price numeric);
    if exists (select 1 from pg_temp.price_sync_results
                where outcome not in ('done', 'retry', 'failed', 'conflict', 'release', 'cancel')) then
        raise exception 'complete_price_sync_batch: unknown outcome in p_results'
            using errcode = 'invalid_parameter_value';
    end if;

    -- Lock our rows; anything not processing under this claim was lost (lease expired).
    update pg_temp.price_sync_results r
       set mine = true, product_id = q.product_id, restaurant_id = q.restaurant_id, account_id = q.account_id,
           superseded = exists (select 1 from loyverse.loyverse_price_sync_queue p
                                 where p.product_id = q.product_id and p.status = 'pending')
      from loyverse.loyverse_price_sync_queue q
     where q.id = r.id and q.status = 'processing' and q.claimed_by = p_claimed_by;
    perform 1 from loyverse.loyverse_price_sync_queue q
      join pg_temp.price_sync_results r on r.id = q.id and r.mine for update of q;

    select array_agg(q.product_id) filter (where r.sent), count(*)
      into v_lost_products, v_lost
      from pg_temp.price_sync_results r
      join loyverse.loyverse_price_sync_queue q on q.id = r.id
     where r.mine is not true;

    -- done: verified in Loyverse. Here and below, the rows that enter done, failed or dead
    -- are added to their restaurant's outcome total (none for a restaurant that is gone).
    with done as (
        update loyverse.loyverse_price_sync_queue q
           set status = 'done', lease_until = null, completed_at = now(), updated_at = now(),
               last_error = r.error, last_error_code = r.code, error_details = r.details
          from pg_temp.price_sync_results r
         where r.id = q.id and r.mine and r.outcome = 'done'
        returning q.restaurant_id, q.status
    )
    select loyverse._add_outcome_totals(array_agg(d.restaurant_id), array_agg(d.status))
      into v_ignored
      from done d;
    update loyverse.loyverse_item_mappings m
       set last_synced_price = round(q.price_to_send, 2),
           last_synced_at = now(),
           last_synced_version = q.version,
           sync_direction = 'TO_LOYVERSE',
           needs_attention = false,
           attention_reason = null,
           updated_at = now()
      from pg_temp.price_sync_results r
      join loyverse.loyverse_price_sync_queue q on q.id = r.id
     where r.mine and r.outcome = 'done' and m.product_id = q.product_id;

    -- retry (429, 5xx, timeouts) and release (graceful stop, not an attempt): back to pending,
    -- unless a newer change is pending already, which then carries the price.
    with moved as (
        update loyverse.loyverse_price_sync_queue q
           set status = case when r.superseded then 'cancelled'
                             when r.outcome = 'retry' and q.attempts + 1 >= q.max_attempts then 'dead'
                             else 'pending' end,
               attempts = q.attempts + case when r.outcome = 'retry' then 1 else 0 end,
               next_attempt_at = case when r.outcome = 'release' then now()
                                      else now() + make_interval(secs =>
                                          least(p_backoff_cap, p_backoff_base * power(2, q.attempts))
                                          * (0.5 + random() * 0.5)) end,
               lease_until = null,
               claimed_by = null,
               last_error = case when r.superseded then coalesce(r.error || '; ', '') || 'superseded by a newer change'
                                 else coalesce(r.error, q.last_error) end,
               last_error_code = coalesce(r.code, q.last_error_code),
               error_details = coalesce(r.details, q.error_details),
               completed_at = case when r.superseded or (r.outcome = 'retry' and q.attempts + 1 >= q.max_attempts)
                                   then now() end,
               updated_at = now()
          from pg_temp.price_sync_results r
         where r.id = q.id and r.mine and r.outcome in ('retry', 'release')
        returning q.restaurant_id, q.status
    )
    select loyverse._add_outcome_totals(array_agg(m.restaurant_id), array_agg(m.status))
      into v_ignored
      from moved m;

    -- failed: not retryable (variant gone, validation, verification); the mapping is flagged
    with failed as (
        update loyverse.loyverse_price_sync_queue q
           set status = 'failed', attempts = q.attempts + 1, lease_until = null, completed_at = now(),
               updated_at = now(), last_error = r.error, last_error_code = r.code, error_details = r.details
          from pg_temp.price_sync_results r
         where r.id = q.id and r.mine and r.outcome = 'failed'
        returning q.restaurant_id, q.status
    )
    select loyverse._add_outcome_totals(array_agg(f.restaurant_id), array_agg(f.status))
      into v_ignored
      from failed f;
    update loyverse.loyverse_item_mappings m
       set needs_attention = true,
           attention_reason = left(coalesce(r.code || ': ', '') || coalesce(r.error, 'price sync failed'), 500),
           updated_at = now()
      from pg_temp.price_sync_results r
     where r.mine and r.outcome = 'failed' and m.product_id = r.product_id;

    -- conflict (BIDIRECTIONAL, price edited in Loyverse): held for `sync resolve`; an older
    -- held row of the same product is superseded by this one.
    update loyverse.loyverse_price_sync_queue q
       set status = 'cancelled', completed_at = now(), updated_at = now(),
           last_error = 'conflict superseded by a newer held change'
      from pg_temp.price_sync_results r
     where r.mine and r.outcome = 'conflict' and q.product_id = r.product_id
       and q.status = 'conflict' and q.id <> r.id;
    update loyverse.loyverse_price_sync_queue q
       set status = 'conflict', lease_until = null, completed_at = now(), updated_at = now(),
           last_error = coalesce(r.error, 'price changed in Loyverse since our last sync'),
           last_error_code = coalesce(r.code, 'CONFLICT'),
           error_details = jsonb_build_object('loyverse_price', r.loyverse_price) || coalesce(r.details, '{}')
      from pg_temp.price_sync_results r
     where r.id = q.id and r.mine and r.outcome = 'conflict';

    update loyverse.loyverse_price_sync_queue q
       set status = 'cancelled', lease_until = null, completed_at = now(), updated_at = now(),
           last_error = coalesce(r.error, 'cancelled'), last_error_code = r.code
      from pg_temp.price_sync_results r
     where r.id = q.id and r.mine and r.outcome = 'cancel';

    if v_lost_products is not null then
        perform loyverse.enqueue_current_prices(v_lost_products, 'requeue', 0);
    end if;

    select jsonb_build_object(
               'done', count(*) filter (where r.mine and r.outcome = 'done'),
               'retried', count(*) filter (where r.mine and r.outcome = 'retry' and q.status = 'pending'),
               'dead', count(*) filter (where r.mine and q.status = 'dead'),
               'failed', count(*) filter (where r.mine and r.outcome = 'failed'),
               'conflicts', count(*) filter (where r.mine and r.outcome = 'conflict'),
               'released', count(*) filter (where r.mine and r.outcome = 'release'),
               'cancelled', count(*) filter (where r.mine and q.status = 'cancelled'),
               'lost', v_lost),
           array_agg(distinct r.restaurant_id) filter (where r.mine),
           min(r.account_id),
           coalesce(jsonb_agg(jsonb_build_object('queue_id', r.id, 'product_id', r.product_id,
                                                 'outcome', r.outcome, 'code', r.code, 'error', r.error,
                                                 'details', r.details))
                    filter (where r.mine and r.outcome in ('retry', 'failed', 'conflict')), '[]')
      into v_counts, v_restaurants, v_account, v_errors
      from pg_temp.price_sync_results r
      left join loyverse.loyverse_price_sync_queue q on q.id = r.id;

    if jsonb_array_length(p_results) > 0 then
        insert into loyverse.loyverse_sync_logs
               (restaurant_id, account_id, sync_type, status, items_total, items_succeeded,
                items_failed, items_skipped, requests_made, error_details, details, started_at, completed_at)
        values (case when cardinality(v_restaurants) = 1 then v_restaurants[1] end,
                v_account,
                'PRICE_SYNC',
                case when (v_counts->>'done')::int = jsonb_array_length(p_results) then 'SUCCESS'
                     when (v_counts->>'done')::int = 0 then 'FAILED'
                     else 'PARTIAL' end,
                jsonb_array_length(p_results),
                (v_counts->>'done')::int,
                (v_counts->>'failed')::int + (v_counts->>'dead')::int,
                jsonb_array_length(p_results) - (v_counts->>'done')::int
                    - (v_counts->>'failed')::int - (v_counts->>'dead')::int,
                greatest(p_requests_made, 0),
                v_errors,
                coalesce(p_details, '{}') || jsonb_build_object('claim', p_claimed_by, 'counts', v_counts,
                                                               'restaurant_ids', to_jsonb(v_restaurants)),
                least(coalesce(p_started_at, now()), now()),
                now())
        returning id into v_log_id;
    end if;
    return v_counts || jsonb_build_object('log_id', v_log_id);
end;
$$;
comment on function loyverse.complete_price_sync_batch(text, jsonb, integer, jsonb, timestamptz, double precision, double precision) is
    'Apply a worker''s outcomes for one claim (done / retry with exponential backoff and jitter, dead at '
    'max_attempts / failed / conflict / release / cancel), update the mappings, write one sync log row. '
    'Rows lost by this claim are not touched; the ones we wrote are queued again. Adds the rows that '
    'entered done, failed or dead to loyverse.loyverse_price_sync_outcome_totals.';

-- ---- sql/0353_function_price_sync_out_of_sync.sql (before 0061) ----
-- The mapped products of a restaurant whose price in Loyverse is not known to be the one we
-- would send now: the price sent by an in-flight (processing) row, else the mapping's last
-- synced price, differs from the current price rounded under the current settings, or was
-- never synced. Only products that pass the category filters, and none with a pending row
-- (it already carries the current price) or a conflict held for a decision.
-- Used by a full manual sync and by a settings change that widens what is synced.
create or replace function loyverse._price_sync_out_of_sync(p_restaurant_id uuid)
returns uuid[]
language sql
stable
set search_path = ''
as $$
    select coalesce(array_agg(m.product_id order by m.product_id), '{}')
      from loyverse.loyverse_item_mappings m
      join public.products p on p.id = m.product_id
      join loyverse.accounts a on a.id = m.account_id
      join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id
     where m.restaurant_id = p_restaurant_id
       and loyverse.category_is_synced(p.category_id, s.include_category_ids, s.exclude_category_ids)
       and coalesce((select q.price_to_send from loyverse.loyverse_price_sync_queue q
                      where q.product_id = m.product_id and q.status = 'processing'
                      order by q.id desc limit 1),
                    m.last_synced_price)
           is distinct from loyverse.price_to_send(p.price, s.price_rounding_rule, a.decimal_places, m.price_factor)
       and not exists (select 1 from loyverse.loyverse_price_sync_queue q
                        where q.product_id = m.product_id and q.status in ('pending', 'conflict'))
$$;
comment on function loyverse._price_sync_out_of_sync(uuid) is
    'Internal: the mapped products of a restaurant (category filters passed) whose price in Loyverse is not '
    'known to be the one we would send now, and with no pending or conflict row.';

-- ---- sql/0360_function_retry_price_sync.sql (before 0061) ----
-- SQL API: retry failed and dead-lettered changes. The old rows are closed as 'cancelled'
-- (their error stays readable) and the product's CURRENT price is queued, due now, with a
-- priority above routine changes.
create or replace function loyverse.retry_price_sync(
    p_restaurant_id uuid default null,
    p_product_id uuid default null,
    p_status text default null
)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_products uuid[];
    v_count integer;
begin
    if p_status is not null and p_status not in ('failed', 'dead') then
        raise exception 'status: must be failed, dead or null (both), got %', p_status
            using errcode = 'invalid_parameter_value', column = 'status';
    end if;
    if p_restaurant_id is not null then
        perform loyverse._price_sync_restaurant(p_restaurant_id);
    end if;
    if p_product_id is not null and not exists (
            select 1 from public.products p
             where p.id = p_product_id and (p_restaurant_id is null or p.restaurant_id = p_restaurant_id)) then
        raise exception 'product: no product % in restaurant %', p_product_id, coalesce(p_restaurant_id::text, '(any)')
            using errcode = 'no_data_found', column = 'product';
    end if;

    with closed as (
        update loyverse.loyverse_price_sync_queue q
           set status = 'cancelled',
               last_error = 'retried: ' || coalesce(q.last_error, q.status),
               updated_at = now(),
               completed_at = coalesce(q.completed_at, now())
         where q.status in ('failed', 'dead')
           and (p_status is null or q.status = p_status)
           and (p_restaurant_id is null or q.restaurant_id = p_restaurant_id)
           and (p_product_id is null or q.product_id = p_product_id)
        returning q.product_id
    )
    select array_agg(distinct c.product_id) into v_products from closed c;
    if v_products is null then
        return 0;
    end if;
    update loyverse.loyverse_item_mappings m
       set needs_attention = false, attention_reason = null, updated_at = now()
     where m.product_id = any (v_products);
    v_count := loyverse.enqueue_current_prices(v_products, 'retry', 200);
    insert into loyverse.loyverse_sync_logs (restaurant_id, sync_type, status, items_total, details, completed_at)
    values (p_restaurant_id, 'RETRY', 'SUCCESS', v_count,
            jsonb_build_object('product_id', p_product_id, 'status', p_status), now());
    return v_count;
end;
$$;
comment on function loyverse.retry_price_sync(uuid, uuid, text) is
    'Retry failed and/or dead price changes (all, one restaurant, or one product; p_status failed|dead|null): '
    'queues the products'' current prices with priority + 200. Returns the rows queued.';

-- ---- sql/0366_function_update_price_sync_settings.sql (before 0061) ----
-- SQL API: change some price-sync settings of a restaurant. Every key is validated; a bad
-- one raises an error naming it (diagnostics column = the key) and nothing changes. Pending
-- rows follow the new settings (frequency, rounding, disabled, category filters), and a
-- change that widens what is sent (sync enabled again, direction back towards Loyverse,
-- category filters or rounding rule changed) queues every product whose price in Loyverse
-- is not known to be the one we would send now, at the restaurant's frequency (source
-- 'settings'): prices changed while a product was not synced are not left behind.
create or replace function loyverse.update_price_sync_settings(p_restaurant_id uuid, p_changes jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_old loyverse.loyverse_price_sync_settings := loyverse._price_sync_restaurant(p_restaurant_id);
    v_new loyverse.loyverse_price_sync_settings;
    v_key text;
    v_value jsonb;
    v_constraint text;
    v_field text;
    v_allowed text;
    v_account bigint;
    v_filters_changed boolean;
    v_editable constant text[] := array['enabled', 'sync_direction', 'sync_frequency', 'include_category_ids',
        'exclude_category_ids', 'price_rounding_rule', 'notify_on_error', 'notification_email', 'max_attempts',
        'priority', 'prices_include_tax', 'alert_failure_rate', 'alert_queue_depth',
        'alert_oldest_pending_seconds', 'alert_dead_letters', 'conflict_policy', 'catalog_changes', 'sync_stock'];
begin
    if p_changes is null or jsonb_typeof(p_changes) <> 'object' then
        raise exception 'settings: expected a json object of setting = value'
            using errcode = 'invalid_parameter_value', column = 'settings';
    end if;
    v_new := v_old;
    for v_key, v_value in select * from jsonb_each(p_changes) loop
        if not v_key = any (v_editable) then
            raise exception '%: unknown setting (known: %)', v_key, array_to_string(v_editable, ', ')
                using errcode = 'invalid_parameter_value', column = v_key;
        end if;
        if v_value = 'null'::jsonb and v_key <> 'notification_email' then
            raise exception '%: must not be null', v_key using errcode = 'not_null_violation', column = v_key;
        end if;
        begin
            -- one key at a time, so a type error names its field
            v_new := jsonb_populate_record(v_new, jsonb_build_object(v_key, v_value));
        exception when others then
            raise exception '%: invalid value %', v_key, v_value
                using errcode = 'invalid_parameter_value', column = v_key;
        end;
    end loop;
    if exists (select 1 from unnest(v_new.include_category_ids || v_new.exclude_category_ids) c(id)
                where not exists (select 1 from public.categories k
                                   where k.id = c.id and k.restaurant_id = p_restaurant_id)) then
        raise exception '%: unknown category of this restaurant',
            case when exists (select 1 from unnest(v_new.include_category_ids) c(id)
                               where not exists (select 1 from public.categories k
                                                  where k.id = c.id and k.restaurant_id = p_restaurant_id))
                 then 'include_category_ids' else 'exclude_category_ids' end
            using errcode = 'foreign_key_violation';
    end if;

    begin
        update loyverse.loyverse_price_sync_settings s
           set enabled = v_new.enabled,
               sync_direction = v_new.sync_direction,
               sync_frequency = v_new.sync_frequency,
               include_category_ids = v_new.include_category_ids,
               exclude_category_ids = v_new.exclude_category_ids,
               price_rounding_rule = v_new.price_rounding_rule,
               notify_on_error = v_new.notify_on_error,
               notification_email = v_new.notification_email,
               max_attempts = v_new.max_attempts,
               priority = v_new.priority,
               prices_include_tax = v_new.prices_include_tax,
               alert_failure_rate = v_new.alert_failure_rate,
               alert_queue_depth = v_new.alert_queue_depth,
               alert_oldest_pending_seconds = v_new.alert_oldest_pending_seconds,
               alert_dead_letters = v_new.alert_dead_letters,
               conflict_policy = v_new.conflict_policy,
               catalog_changes = v_new.catalog_changes,
               sync_stock = v_new.sync_stock,
               updated_at = now()
         where s.restaurant_id = p_restaurant_id;
    exception when check_violation then
        get stacked diagnostics v_constraint = constraint_name;
        v_field := case v_constraint
            when 'sync_direction_is_valid' then 'sync_direction'
            when 'sync_frequency_is_valid' then 'sync_frequency'
            when 'price_rounding_rule_is_valid' then 'price_rounding_rule'
            when 'notification_email_is_valid' then 'notification_email'
            when 'max_attempts_is_between_1_and_50' then 'max_attempts'
            when 'priority_is_between_minus_100_and_100' then 'priority'
            when 'alert_failure_rate_is_a_fraction' then 'alert_failure_rate'
            when 'alert_queue_depth_is_positive' then 'alert_queue_depth'
            when 'alert_oldest_pending_seconds_is_positive' then 'alert_oldest_pending_seconds'
            when 'alert_dead_letters_is_positive' then 'alert_dead_letters'
            when 'conflict_policy_is_valid' then 'conflict_policy'
            when 'catalog_changes_is_valid' then 'catalog_changes'
            when 'notify_on_error_needs_an_email' then 'notification_email'
            when 'categories_are_not_both_included_and_excluded' then 'exclude_category_ids'
            else 'settings' end;
        -- the allowed values of the enumerated settings, so the error says what would do
        v_allowed := case v_constraint
            when 'sync_direction_is_valid' then '; allowed: TO_LOYVERSE, FROM_LOYVERSE, BIDIRECTIONAL'
            when 'sync_frequency_is_valid' then '; allowed: REALTIME, BATCH_5MIN, BATCH_HOURLY, MANUAL'
            when 'price_rounding_rule_is_valid' then '; allowed: NONE, NEAREST_0.05, NEAREST_0.10, UP, DOWN'
            when 'conflict_policy_is_valid' then '; allowed: hold, ours, theirs, latest'
            when 'catalog_changes_is_valid' then '; allowed: report, apply'
            else '' end;
        raise exception '%: invalid value (%)%', v_field, v_constraint, v_allowed
            using errcode = 'check_violation', column = v_field, constraint = v_constraint;
    end;

    -- Pending rows are not claimed yet, so they may follow the new settings.
    if not v_new.enabled or v_new.sync_direction = 'FROM_LOYVERSE' then
        update loyverse.loyverse_price_sync_queue q
           set status = 'cancelled', completed_at = now(), updated_at = now(),
               last_error = 'price sync to Loyverse disabled'
         where q.restaurant_id = p_restaurant_id and q.status = 'pending';
    else
        if v_new.price_rounding_rule <> v_old.price_rounding_rule then
            update loyverse.loyverse_price_sync_queue q
               set price_to_send = loyverse.price_to_send(q.new_price, v_new.price_rounding_rule, a.decimal_places, m.price_factor),
                   version = q.version + 1, updated_at = now()
              from loyverse.accounts a, loyverse.loyverse_item_mappings m
             where a.id = q.account_id and m.product_id = q.product_id
               and q.restaurant_id = p_restaurant_id and q.status = 'pending';
        end if;
        v_filters_changed := v_new.include_category_ids is distinct from v_old.include_category_ids
                             or v_new.exclude_category_ids is distinct from v_old.exclude_category_ids;
        if v_filters_changed then
            -- pending changes of products the filters now leave out are not sent
            update loyverse.loyverse_price_sync_queue q
               set status = 'cancelled', completed_at = now(), updated_at = now(),
                   last_error = 'category no longer synced to Loyverse'
              from public.products p
             where p.id = q.product_id
               and q.restaurant_id = p_restaurant_id and q.status = 'pending'
               and not loyverse.category_is_synced(p.category_id, v_new.include_category_ids,
                                                   v_new.exclude_category_ids);
        end if;
        if v_new.sync_frequency <> v_old.sync_frequency then
            update loyverse.loyverse_price_sync_queue q
               set next_attempt_at = loyverse.price_sync_due_at(v_new.sync_frequency), updated_at = now()
             where q.restaurant_id = p_restaurant_id and q.status = 'pending' and q.attempts = 0
               and q.source in ('trigger', 'settings');
            if v_new.sync_frequency = 'REALTIME' and not v_new.paused then
                select l.account_id into v_account from loyverse.loyverse_restaurant_links l
                 where l.restaurant_id = p_restaurant_id;
                if v_account is not null then
                    perform loyverse.wake_price_sync(v_account);
                end if;
            end if;
        end if;
        -- what was not synced before, or would be sent differently now, catches up
        if not v_old.enabled or v_old.sync_direction = 'FROM_LOYVERSE' or v_filters_changed
           or v_new.price_rounding_rule <> v_old.price_rounding_rule then
            perform loyverse.enqueue_current_prices(loyverse._price_sync_out_of_sync(p_restaurant_id), 'settings', 0,
                                                    loyverse.price_sync_due_at(v_new.sync_frequency));
        end if;
    end if;
    return loyverse.price_sync_settings(p_restaurant_id);
end;
$$;
comment on function loyverse.update_price_sync_settings(uuid, jsonb) is
    'Change price-sync settings: p_changes = {"setting": value, ...}. Validated; an error names the field '
    '(its message starts with it; diagnostics column too) and nothing changes. Returns the new settings. '
    'Example: select loyverse.update_price_sync_settings(''<uuid>'', ''{"price_rounding_rule": "UP"}'');';

-- ---- sql/0375_function_resolve_price_sync_conflicts.sql (before 0061) ----
-- SQL API: decide held conflicts (BIDIRECTIONAL restaurants, price edited in Loyverse).
-- ours: push our current price (overwriting Loyverse). theirs: take Loyverse's price into
-- our product (marked as coming from Loyverse, so it is not queued back).
create or replace function loyverse.resolve_price_sync_conflicts(p_restaurant_id uuid, p_keep text, p_product_id uuid default null)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_products uuid[];
    v_count integer;
    v_origin text;
begin
    perform loyverse._price_sync_restaurant(p_restaurant_id);
    if p_keep is null or p_keep not in ('ours', 'theirs') then
        raise exception 'keep: must be ours or theirs, got %', coalesce(p_keep, 'null')
            using errcode = 'invalid_parameter_value', column = 'keep';
    end if;
    if p_product_id is not null and not exists (select 1 from public.products p
                                                where p.id = p_product_id and p.restaurant_id = p_restaurant_id) then
        raise exception 'product: no product % in restaurant %', p_product_id, p_restaurant_id
            using errcode = 'no_data_found', column = 'product';
    end if;

    create temporary table if not exists pg_temp.price_sync_resolved (
        id bigint, product_id uuid, loyverse_price numeric) on commit drop;
    truncate pg_temp.price_sync_resolved;
    with closed as (
        update loyverse.loyverse_price_sync_queue q
           set status = 'cancelled', updated_at = now(),
               last_error = 'conflict resolved: keep ' || p_keep || ' (' || coalesce(q.last_error, '') || ')'
         where q.status = 'conflict' and q.restaurant_id = p_restaurant_id
           and (p_product_id is null or q.product_id = p_product_id)
        returning q.id, q.product_id, (q.error_details->>'loyverse_price')::numeric as loyverse_price
    )
    insert into pg_temp.price_sync_resolved select * from closed;
    get diagnostics v_count = row_count;
    if v_count = 0 then
        return 0;
    end if;

    if p_keep = 'ours' then
        -- Loyverse's price is now the known base; the resolve row overwrites it.
        update loyverse.loyverse_item_mappings m
           set last_synced_price = r.loyverse_price, updated_at = now()
          from pg_temp.price_sync_resolved r
         where m.product_id = r.product_id and r.loyverse_price is not null;
        select array_agg(distinct r.product_id) into v_products from pg_temp.price_sync_resolved r;
        perform loyverse.enqueue_current_prices(v_products, 'resolve', 200);
    else
        v_origin := current_setting('loyverse_sync.origin', true);
        perform set_config('loyverse_sync.origin', 'loyverse', true);
        update public.products p
           set price = r.loyverse_price, updated_at = now()
          from pg_temp.price_sync_resolved r
         where p.id = r.product_id and r.loyverse_price is not null;
        perform set_config('loyverse_sync.origin', coalesce(v_origin, ''), true);
        update loyverse.loyverse_item_mappings m
           set last_synced_price = r.loyverse_price, last_synced_at = now(), sync_direction = 'FROM_LOYVERSE',
               needs_attention = false, attention_reason = null, updated_at = now()
          from pg_temp.price_sync_resolved r
         where m.product_id = r.product_id and r.loyverse_price is not null;
    end if;
    return v_count;
end;
$$;
comment on function loyverse.resolve_price_sync_conflicts(uuid, text, uuid) is
    'Resolve held conflicts of a restaurant (one product or all): keep ''ours'' pushes our price, keep '
    '''theirs'' copies Loyverse''s price into our product. Returns the conflicts resolved.';

-- ---- sql/0390_function_enqueue_price_sync_digests.sql (before 0061) ----
-- Notifications: one error digest per restaurant (notify_on_error) per interval, listing the
-- changes that failed or were dead-lettered since its previous digest. dedupe_key makes a
-- second call in the same interval a no-op.
create or replace function loyverse.enqueue_price_sync_digests(p_interval interval default '1 hour')
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_count integer;
    v_bucket timestamptz := date_bin(p_interval, now(), timestamptz '2000-01-01 00:00+00');
begin
    with due as (
        select s.restaurant_id, r.name, s.notification_email,
               coalesce((select max(o.created_at) from loyverse.loyverse_notification_outbox o
                          where o.restaurant_id = s.restaurant_id and o.kind = 'ERROR_DIGEST'),
                        '-infinity') as since
          from loyverse.loyverse_price_sync_settings s
          join public.restaurants r on r.id = s.restaurant_id
         where s.notify_on_error and s.notification_email is not null
    ), failures as (
        select d.restaurant_id, d.name, d.notification_email,
               count(*) as n,
               count(*) filter (where q.status = 'dead') as dead,
               jsonb_agg(jsonb_build_object('queue_id', q.id, 'product_id', q.product_id, 'product', p.name,
                                            'status', q.status, 'price', q.price_to_send,
                                            'code', q.last_error_code, 'error', q.last_error)
                         order by q.id) as rows,
               string_agg(format('- %s (%s): %s -> %s, %s%s', p.name, q.status, q.old_price, q.price_to_send,
                                 coalesce(q.last_error_code || ': ', ''), coalesce(q.last_error, '')),
                          E'\n' order by q.id) as lines
          from due d
          join loyverse.loyverse_price_sync_queue q on q.restaurant_id = d.restaurant_id
          join public.products p on p.id = q.product_id
         where q.status in ('failed', 'dead') and q.completed_at > d.since
         group by d.restaurant_id, d.name, d.notification_email
    ), inserted as (
        insert into loyverse.loyverse_notification_outbox (restaurant_id, kind, recipient, subject, body, payload, dedupe_key)
        select f.restaurant_id, 'ERROR_DIGEST', f.notification_email,
               format('[loyverse-sync] %s: %s price change(s) not synced to Loyverse', f.name, f.n),
               format(E'%s price change(s) of %s could not be written to Loyverse (%s dead-lettered).\n\n%s\n\n'
                      'Retry with: loyverse-sync sync retry --restaurant %s\n', f.n, f.name, f.dead, f.lines, f.restaurant_id),
               jsonb_build_object('restaurant_id', f.restaurant_id, 'failures', f.rows),
               format('price-sync-digest:%s:%s', f.restaurant_id, to_char(v_bucket at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI'))
          from failures f
        on conflict (dedupe_key) do nothing
        returning 1
    )
    select count(*) into v_count from inserted;
    return v_count;
end;
$$;
comment on function loyverse.enqueue_price_sync_digests(interval) is
    'Queue one ERROR_DIGEST email per restaurant with notify_on_error and new failed/dead changes, at most '
    'one per p_interval (dedupe_key). Returns the digests queued.';

-- ---- sql/0610_function_import_plan.sql (before 0061) ----
-- Builds an import run's plan from its snapshot, set-based: validation, pricing for the
-- linked store, conflict detection (mapping, then SKU, then name), resolution, and the
-- fidelity report. Writes only the run's plan tables; the catalogue is untouched.
create or replace function loyverse.import_plan(p_run_id bigint)
returns jsonb
language plpgsql
set search_path = ''
set jit = off
set enable_nestloop = off
set work_mem = '64MB'
set enable_memoize = off
as $$
declare
    v_run loyverse.loyverse_import_runs;
    v_opts jsonb;
    v_store text;
    v_dp integer;
    v_incl_tax boolean;
    v_conflict text;
    v_decisions jsonb;
    v_name_field text;
    v_sku_field text;
    v_extra jsonb;
    v_batch integer;
    v_unknown text;
    v_sel_items text[];
    v_sel_cats text[];
    v_excl text[];
    v_selecting boolean;
    v_inventory boolean;
    v_atomic boolean;
begin
    select * into v_run from loyverse.loyverse_import_runs r where r.id = p_run_id;
    if not found then
        raise exception 'import_plan: no import run %', p_run_id using errcode = 'no_data_found';
    end if;
    if v_run.snapshot_id is null then
        raise exception 'import_plan: run % has no snapshot', p_run_id using errcode = 'invalid_parameter_value';
    end if;
    v_opts := v_run.options;
    -- An atomic run (no --batch-size, not a dry run) plans and writes in one transaction.
    v_atomic := not v_run.dry_run and jsonb_typeof(v_opts -> 'batch_size') is distinct from 'number';
    select l.store_id into v_store
      from loyverse.loyverse_restaurant_links l where l.restaurant_id = v_run.restaurant_id;
    if v_store is null then
        raise exception 'restaurant % is not linked to a Loyverse store', v_run.restaurant_id
            using errcode = 'invalid_parameter_value';
    end if;
    -- The currency's decimals: what the snapshot's merchant says, else the account row.
    select coalesce(case when jsonb_typeof(s.merchant #> '{currency,decimal_places}') = 'number'
                         then (s.merchant #>> '{currency,decimal_places}')::numeric::integer end,
                    a.decimal_places, 2)
      into v_dp
      from loyverse.loyverse_snapshots s
      left join loyverse.accounts a on a.id = s.account_id
     where s.id = v_run.snapshot_id;
    v_dp := least(greatest(coalesce(v_dp, 2), 0), 2);  -- products.price is numeric(12,2)
    select coalesce((select st.prices_include_tax from loyverse.loyverse_price_sync_settings st
                      where st.restaurant_id = v_run.restaurant_id), true)
      into v_incl_tax;
    v_conflict := coalesce(v_opts ->> 'conflict', 'skip');
    v_decisions := case when jsonb_typeof(v_opts -> 'decisions') = 'object' then v_opts -> 'decisions' else '{}' end;
    v_name_field := coalesce((select e.key from jsonb_each_text(coalesce(v_opts -> 'map', '{}')) e
                               where e.value = 'name' limit 1), 'item_name');
    v_sku_field := coalesce((select e.key from jsonb_each_text(coalesce(v_opts -> 'map', '{}')) e
                              where e.value = 'sku' limit 1), 'sku');
    v_extra := coalesce((select jsonb_object_agg(e.value, e.key) from jsonb_each_text(coalesce(v_opts -> 'map', '{}')) e
                          where e.value not in ('name', 'sku')), '{}');
    v_batch := greatest(coalesce((v_opts ->> 'batch_size')::integer, 500), 1);
    v_unknown := coalesce(v_opts ->> 'unknown_category', 'fallback');
    v_inventory := coalesce(loyverse.jsonb_to_bool(v_opts -> 'with_inventory'), false);
    select coalesce(array_agg(loyverse.normalize_name(x)), '{}') into v_sel_items
      from jsonb_array_elements_text(coalesce(v_opts -> 'items', '[]')) x;
    select coalesce(array_agg(loyverse.normalize_name(x)), '{}') into v_sel_cats
      from jsonb_array_elements_text(coalesce(v_opts -> 'categories', '[]')) x;
    select coalesce(array_agg(loyverse.normalize_name(x)), '{}') into v_excl
      from jsonb_array_elements_text(coalesce(v_opts -> 'exclude', '[]')) x;
    v_selecting := cardinality(v_sel_items) + cardinality(v_sel_cats) + cardinality(v_excl) > 0;

    delete from loyverse.loyverse_import_plan p where p.run_id = p_run_id;
    delete from loyverse.loyverse_import_plan_objects p where p.run_id = p_run_id;
    delete from loyverse.loyverse_import_issues i where i.run_id = p_run_id;

    -- Valid, live categories, taxes and modifiers of the snapshot.
    drop table if exists pg_temp._lv_cats, pg_temp._lv_taxes, pg_temp._lv_mods, pg_temp._lv_items, pg_temp._lv_rows,
        pg_temp._lv_stock, pg_temp._lv_plan;
    create temp table _lv_cats on commit drop as
    select distinct on (o.loyverse_id) o.loyverse_id as id, btrim(o.payload ->> 'name') as name, o.seq
      from loyverse.loyverse_snapshot_objects o
     where o.snapshot_id = v_run.snapshot_id and o.kind = 'category' and o.loyverse_id is not null
       and jsonb_typeof(o.payload -> 'name') = 'string' and btrim(o.payload ->> 'name') <> ''
       and length(o.payload ->> 'name') <= 64
       and coalesce(jsonb_typeof(o.payload -> 'deleted_at'), 'null') = 'null'
     order by o.loyverse_id, o.seq;

    create temp table _lv_taxes on commit drop as
    select distinct on (o.loyverse_id) o.loyverse_id as id, o.payload ->> 'type' as type,
           (o.payload ->> 'rate')::numeric as rate
      from loyverse.loyverse_snapshot_objects o
     where o.snapshot_id = v_run.snapshot_id and o.kind = 'tax' and o.loyverse_id is not null
       and jsonb_typeof(o.payload -> 'rate') = 'number'
       and (o.payload ->> 'rate')::numeric between 0 and 1000  -- a hostile rate is ignored (unknown_tax)
       and coalesce(jsonb_typeof(o.payload -> 'deleted_at'), 'null') = 'null'
       and (jsonb_typeof(o.payload -> 'stores') is distinct from 'array' or o.payload -> 'stores' ? v_store)
     order by o.loyverse_id, o.seq;

    create temp table _lv_mods on commit drop as
    select distinct on (o.loyverse_id) o.loyverse_id as id, btrim(o.payload ->> 'name') as name, o.payload as m,
           (jsonb_typeof(o.payload -> 'stores') is distinct from 'array' or o.payload -> 'stores' ? v_store) as in_store
      from loyverse.loyverse_snapshot_objects o
     where o.snapshot_id = v_run.snapshot_id and o.kind = 'modifier' and o.loyverse_id is not null
       and jsonb_typeof(o.payload -> 'name') = 'string' and btrim(o.payload ->> 'name') <> ''
       and coalesce(jsonb_typeof(o.payload -> 'deleted_at'), 'null') = 'null'
     order by o.loyverse_id, o.seq;

    -- Stock levels of the linked store (--with-inventory); negative stock is allowed.
    create temp table _lv_stock on commit drop as
    select distinct on (o.payload ->> 'variant_id') o.payload ->> 'variant_id' as variant_id,
           case when jsonb_typeof(o.payload -> 'in_stock') = 'number'
                     and (o.payload ->> 'in_stock')::numeric between -999999999 and 999999999
                then round((o.payload ->> 'in_stock')::numeric, 3) end as qty,
           o.payload -> 'in_stock' as raw
      from loyverse.loyverse_snapshot_objects o
     where v_inventory and o.snapshot_id = v_run.snapshot_id and o.kind = 'inventory'
       and o.payload ->> 'store_id' = v_store and jsonb_typeof(o.payload -> 'variant_id') = 'string'
     order by o.payload ->> 'variant_id', o.seq desc;

    -- Items, deduplicated by id (the first copy wins), then the selection.
    create temp table _lv_items on commit drop as
    -- i is the item without its variants (small: read many times without de-TOASTing the
    -- whole payload again), variants the array as sent (SQL null when the key is absent).
    -- (deduplicated by an anti join on the keys: sorting whole payloads spilled to disk)
    select o.seq, o.loyverse_id as item_id,
           case when jsonb_typeof(o.payload) = 'object' then o.payload - 'variants' else o.payload end as i,
           o.payload -> 'variants' as variants
      from loyverse.loyverse_snapshot_objects o
     where o.snapshot_id = v_run.snapshot_id and o.kind = 'item'
       and not exists (select 1 from loyverse.loyverse_snapshot_objects o2
                        where o2.snapshot_id = v_run.snapshot_id and o2.kind = 'item'
                          and o2.loyverse_id = o.loyverse_id and o2.seq < o.seq);

    analyze _lv_items (item_id);

    if v_selecting then
        delete from _lv_items it
         where not (
                 (cardinality(v_sel_items) = 0 and cardinality(v_sel_cats) = 0)
                 or loyverse.normalize_name(it.item_id) = any (v_sel_items)
                 or loyverse.normalize_name(it.i ->> 'item_name') = any (v_sel_items)
                 or loyverse.normalize_name(it.i ->> 'category_id') = any (v_sel_cats)
                 or exists (select 1 from _lv_cats c where c.id = it.i ->> 'category_id'
                             and loyverse.normalize_name(c.name) = any (v_sel_cats)))
            or loyverse.normalize_name(it.item_id) = any (v_excl)
            or loyverse.normalize_name(it.i ->> 'item_name') = any (v_excl)
            or loyverse.normalize_name(it.i ->> 'category_id') = any (v_excl)
            or exists (select 1 from _lv_cats c where c.id = it.i ->> 'category_id'
                        and loyverse.normalize_name(c.name) = any (v_excl));
    end if;

    -- One row per variant (an item without variants yields one row that fails validation).
    create temp table _lv_rows on commit drop as
    with it as materialized (
        -- per item, not per variant: the tax sums and the in-store modifiers it links (read
        -- from i, which is small and stored uncompressed; the snapshot payload is compressed
        -- and every access to it decompresses it again)
        select it.*, tx.added_rate, tx.included_rate,
               coalesce((select array_agg(m.id order by m.id)
                           from _lv_mods m
                          where m.in_store and jsonb_typeof(it.i -> 'modifier_ids') = 'array'
                            and it.i -> 'modifier_ids' ? m.id), '{}') as mod_ids
          from _lv_items it
          cross join lateral (
                 select coalesce(sum(t.rate) filter (where t.type = 'ADDED'), 0) as added_rate,
                        coalesce(sum(t.rate) filter (where t.type = 'INCLUDED'), 0) as included_rate
                   from _lv_taxes t
                  where jsonb_typeof(it.i -> 'tax_ids') = 'array' and it.i -> 'tax_ids' ? t.id) tx
    ),
    v as (
        select it.seq as item_seq, it.item_id, it.i, jsonb_typeof(it.variants) as variants_type, vv.ord, vv.v,
               it.added_rate, it.included_rate, it.mod_ids,
               case when jsonb_typeof(it.variants) = 'array' then jsonb_array_length(it.variants) else 0 end as n_variants,
               case when jsonb_typeof(vv.v -> 'variant_id') = 'string' and btrim(vv.v ->> 'variant_id') <> ''
                    then vv.v ->> 'variant_id' end as variant_id,
               se.e as se,
               case when jsonb_typeof(coalesce(vv.v -> v_name_field, it.i -> v_name_field)) in ('string', 'number')
                    then btrim(coalesce(vv.v -> v_name_field, it.i -> v_name_field) #>> '{}') end as base_name,
               case when jsonb_typeof(coalesce(vv.v -> v_sku_field, it.i -> v_sku_field)) in ('string', 'number')
                    then nullif(btrim(coalesce(vv.v -> v_sku_field, it.i -> v_sku_field) #>> '{}'), '') end as sku,
               coalesce(jsonb_typeof(coalesce(vv.v -> v_sku_field, it.i -> v_sku_field)), 'null') as sku_type
          from it
          cross join lateral jsonb_array_elements(
                 case when jsonb_typeof(it.variants) = 'array' and jsonb_array_length(it.variants) > 0
                      then it.variants else '[null]'::jsonb end) with ordinality vv(v, ord)
          left join lateral (
                 select e from jsonb_array_elements(case when jsonb_typeof(vv.v -> 'stores') = 'array'
                                                         then vv.v -> 'stores' else '[]'::jsonb end) e
                  where e ->> 'store_id' = v_store limit 1) se on true
    ),
    p as (
        select v.*,
               case when v.se is not null
                    then coalesce(v.se ->> 'pricing_type', v.v ->> 'default_pricing_type', 'FIXED')
                    when jsonb_typeof(v.v -> 'default_price') = 'number'
                    then coalesce(v.v ->> 'default_pricing_type', 'FIXED')
                    else coalesce(v.v ->> 'default_pricing_type', 'VARIABLE') end as pricing_type
          from v
    ),
    q as (
        select p.*,
               case when p.pricing_type = 'FIXED' then
                    case when p.se is not null and coalesce(jsonb_typeof(p.se -> 'price'), 'null') <> 'null'
                         then p.se -> 'price' else p.v -> 'default_price' end end as price_json,
               case when jsonb_typeof(p.i -> 'category_id') = 'string' then p.i ->> 'category_id' end as cat_id
          from p
    ),
    r as materialized (
        select q.*,
               case when jsonb_typeof(q.price_json) = 'number' then (q.price_json #>> '{}')::numeric end as raw_price
          from q
    )
    -- (narrow: the item and variant JSON is not copied into the table, only what is used later)
    select row_number() over (order by r.item_seq, r.ord)::integer as row_no,
           r.item_seq, r.item_id, r.variant_id, r.base_name, r.sku, r.pricing_type, r.raw_price,
           r.added_rate, r.included_rate, r.cat_id, r.mod_ids as modifier_ids,
           r.v ->> 'option1_value' as option1_value, r.v ->> 'option2_value' as option2_value,
           r.v ->> 'option3_value' as option3_value,
           loyverse.jsonb_to_bool(r.se -> 'available_for_sale') as available_for_sale,
           case when v_extra = '{}' then '{}'::jsonb else coalesce((select jsonb_object_agg(x.key,
                              case when jsonb_typeof(coalesce(r.v -> (x.value #>> '{}'), r.i -> (x.value #>> '{}'))) in ('string', 'number', 'boolean')
                                   then coalesce(r.v -> (x.value #>> '{}'), r.i -> (x.value #>> '{}')) #>> '{}' end)
                       from jsonb_each(v_extra) x), '{}') end as extra,
           case when r.raw_price is null then null
                when v_incl_tax and r.added_rate > 0 then r.raw_price * (1 + r.added_rate / 100)
                when not v_incl_tax and r.included_rate > 0 then r.raw_price / (1 + r.included_rate / 100)
                else r.raw_price end as adj_price,
           -- our price / Loyverse price (price sync sends our price / price_factor back)
           round(case when v_incl_tax and r.added_rate > 0 then 1 + r.added_rate / 100
                      when not v_incl_tax and r.included_rate > 0 then 1 / (1 + r.included_rate / 100)
                      else 1 end, 6) as price_factor,
           case when r.n_variants > 1 or coalesce(r.v ->> 'option1_value', r.v ->> 'option2_value', r.v ->> 'option3_value') is not null
                then r.base_name || coalesce(' (' || nullif(concat_ws(' / ', r.v ->> 'option1_value', r.v ->> 'option2_value', r.v ->> 'option3_value'), '') || ')', '')
                else r.base_name end as name,
           exists (select 1 from _lv_cats c where c.id = r.cat_id) as cat_known,
           (coalesce(jsonb_typeof(r.i -> 'deleted_at'), 'null') <> 'null'
            or coalesce(jsonb_typeof(r.v -> 'deleted_at'), 'null') <> 'null') as deleted,
           array_remove(array[
             case when r.item_id is null then 'the item has no id' end,
             case when r.variants_type <> 'array' then 'variants is not a list'
                  when r.n_variants = 0 then 'the item has no variants' end,
             case when r.n_variants > 0 and r.variant_id is null then 'the variant has no variant_id' end,
             case when r.base_name is null then format('%s is missing or not text', v_name_field)
                  when r.base_name = '' then format('%s is blank', v_name_field)
                  when length(r.base_name) > 64 then format('%s is longer than 64 characters (%s)', v_name_field, length(r.base_name)) end,
             case when r.sku_type not in ('string', 'number', 'null') then format('%s is not text', v_sku_field)
                  when length(r.sku) > 40 then format('%s is longer than 40 characters', v_sku_field) end,
             case when r.pricing_type not in ('FIXED', 'VARIABLE') then format('unknown pricing type %s', left(r.pricing_type, 40)) end,
             case when r.price_json is not null and jsonb_typeof(r.price_json) not in ('number', 'null')
                  then format('price is not a number: %s', left(r.price_json::text, 40))
                  when r.raw_price < 0 then format('negative price %s', r.raw_price)
                  when r.raw_price * (1 + greatest(r.added_rate, 0) / 100) >= 9999999999 then format('price %s is too large', r.raw_price) end,
             case when r.i ? 'category_id' and coalesce(jsonb_typeof(r.i -> 'category_id'), 'null') not in ('string', 'null')
                  then 'category_id is not text'
                  when r.cat_id is not null and v_unknown = 'reject'
                       and not exists (select 1 from _lv_cats c where c.id = r.cat_id)
                  then format('unknown category %s', left(r.cat_id, 64)) end,
             case when coalesce(jsonb_typeof(r.i -> 'modifier_ids'), 'null') not in ('array', 'null')
                  then 'modifier_ids is not a list' end,
             case when jsonb_typeof(r.i -> 'option1_name') = 'string' and r.n_variants > 0
                       and coalesce(jsonb_typeof(r.v -> 'option1_value'), 'null') = 'null' then 'option1_value is missing' end,
             case when jsonb_typeof(r.i -> 'option2_name') = 'string' and r.n_variants > 0
                       and coalesce(jsonb_typeof(r.v -> 'option2_value'), 'null') = 'null' then 'option2_value is missing' end,
             case when jsonb_typeof(r.i -> 'option3_name') = 'string' and r.n_variants > 0
                       and coalesce(jsonb_typeof(r.v -> 'option3_value'), 'null') = 'null' then 'option3_value is missing' end
           ]::text[], null) as errors
      from r;
    analyze _lv_rows (row_no, variant_id, sku, item_id);

    -- Duplicate SKUs inside Loyverse: the first variant keeps it, the others are rejected.
    update _lv_rows x
       set errors = x.errors || format('SKU %s is also used by variant %s in Loyverse', x.sku, d.first_variant)
      from (select r.row_no,
                   first_value(r.variant_id) over w as first_variant,
                   row_number() over w as n
              from _lv_rows r
             where r.sku is not null and cardinality(r.errors) = 0 and not r.deleted
            window w as (partition by r.sku order by r.row_no)) d
     where d.row_no = x.row_no and d.n > 1;

    -- The plan is built in a temp table (no WAL, no shared indexes to maintain while the
    -- passes below refine it) and inserted into loyverse_import_plan once, at the end.
    create temp table _lv_plan (like loyverse.loyverse_import_plan including defaults) on commit drop;
    -- One INSERT: values, conflict detection (in order: an existing mapping, the same SKU, the
    -- same name) and the decision, so the plan needs no UPDATE pass for them.
    -- Name matches ignore products already linked to another Loyverse variant (a menu may
    -- repeat a name legitimately); the oldest product of that name wins.
    insert into _lv_plan
        (run_id, row_no, item_id, variant_id, item_seq, batch_no, item_name, name, sku, price, loyverse_price,
         price_factor, stock_quantity, is_active, option1_value, option2_value, option3_value, category_ref, category_fallback, modifier_ids,
         extra, errors, needs_attention, attention_reason, match_rule, matched_product_id, matched_name, matched_variant_id,
         decision, decision_reason, product_id)
    select p_run_id, r.row_no, r.item_id, r.variant_id, r.item_seq,
           (dense_rank() over (order by r.item_seq) - 1)::integer / v_batch,
           r.base_name, r.name, r.sku,
           case when cardinality(r.errors) = 0 then round(coalesce(r.adj_price, 0), v_dp) end,
           r.raw_price,
           r.price_factor,
           (select s.qty from _lv_stock s where s.variant_id = r.variant_id),
           coalesce(r.available_for_sale, true),
           r.option1_value, r.option2_value, r.option3_value,
           case when r.cat_known then r.cat_id when r.cat_id is not null then '(fallback)' end,
           r.cat_id is not null and not r.cat_known,
           r.modifier_ids,
           r.extra,
           r.errors,
           r.pricing_type = 'VARIABLE',
           case when r.pricing_type = 'VARIABLE' then 'VARIABLE price in Loyverse: imported as 0' end,
           k.match_rule, k.matched_product_id, pn.name, k.matched_variant_id,
           case when cardinality(r.errors) > 0 then 'fail' when r.deleted then 'skip' else d.decision end,
           case when cardinality(r.errors) > 0 then array_to_string(r.errors, '; ') when r.deleted then 'deleted in Loyverse'
                else d.reason end,
           -- targets: an update writes the matched product, a create or duplicate a new id chosen now
           case when cardinality(r.errors) > 0 or r.deleted then null
                when d.decision = 'update' then k.matched_product_id
                when d.decision in ('create', 'duplicate') then gen_random_uuid() end
      from _lv_rows r
      left join loyverse.loyverse_item_mappings m
             on cardinality(r.errors) = 0 and not r.deleted
            and m.restaurant_id = v_run.restaurant_id and m.loyverse_variant_id = r.variant_id
      left join public.products ps
             on m.id is null and cardinality(r.errors) = 0 and not r.deleted
            and ps.restaurant_id = v_run.restaurant_id and ps.sku = r.sku
      left join loyverse.loyverse_item_mappings ms on ms.product_id = ps.id
      left join (select distinct on (loyverse.normalize_name(pr.name)) loyverse.normalize_name(pr.name) as k, pr.id
                   from public.products pr
                  where pr.restaurant_id = v_run.restaurant_id
                    and not exists (select 1 from loyverse.loyverse_item_mappings m2 where m2.product_id = pr.id)
                  order by loyverse.normalize_name(pr.name), pr.created_at, pr.id) c
             on m.id is null and ps.id is null and cardinality(r.errors) = 0 and not r.deleted
            and c.k = loyverse.normalize_name(r.name)
      cross join lateral (
             select case when m.id is not null then 'mapping' when ps.id is not null then 'sku'
                         when c.id is not null then 'name' end as match_rule,
                    coalesce(m.product_id, ps.id, c.id) as matched_product_id,
                    case when m.id is not null then m.loyverse_variant_id
                         when ps.id is not null then ms.loyverse_variant_id end as matched_variant_id,
                    coalesce(v_decisions ->> r.variant_id, v_decisions ->> r.item_id) as chosen) k
      left join public.products pn on pn.id = k.matched_product_id
      -- Resolution: a decision from the decisions file (by variant id, else item id) wins.
      cross join lateral (
             select case
                      when k.match_rule is null then
                        case when k.chosen = 'skip' then 'skip' else 'create' end
                      when k.chosen in ('skip', 'update', 'duplicate') then k.chosen
                      when k.match_rule = 'mapping' then 'update'
                      when v_conflict = 'manual' then null
                      else v_conflict
                    end as decision,
                    case
                      when k.chosen in ('skip', 'update', 'duplicate') then 'decisions file'
                      when k.match_rule = 'mapping' then 're-sync of a mapped product'
                      when k.match_rule is not null and v_conflict <> 'manual' then format('--conflict %s', v_conflict)
                      when k.match_rule is null then 'new'
                    end as reason) d;
    create index on _lv_plan (row_no);
    create index on _lv_plan (variant_id);
    analyze _lv_plan (row_no, variant_id, item_id, decision, product_id, category_ref, matched_product_id);

    -- Updates that cannot be: a product linked to another variant, or two variants for one product.
    update _lv_plan p
       set decision = 'fail', product_id = null,
           decision_reason = format('product "%s" is already linked to Loyverse variant %s', p.matched_name, p.matched_variant_id),
           errors = p.errors || format('product "%s" is already linked to Loyverse variant %s', p.matched_name, p.matched_variant_id)
     where p.run_id = p_run_id and p.decision = 'update' and p.match_rule <> 'mapping'
       and p.matched_variant_id is not null and p.matched_variant_id <> p.variant_id;

    update _lv_plan p
       set decision = 'fail', product_id = null,
           decision_reason = format('variant %s already updates product "%s"', d.first_variant, p.matched_name),
           errors = p.errors || format('variant %s already updates product "%s"', d.first_variant, p.matched_name)
      from (select p2.row_no, row_number() over w as n, first_value(p2.variant_id) over w as first_variant
              from _lv_plan p2
             where p2.run_id = p_run_id and p2.decision = 'update'
            window w as (partition by p2.matched_product_id order by p2.match_rule = 'mapping' desc, p2.row_no)) d
     where p.run_id = p_run_id and p.row_no = d.row_no and d.n > 1;

    -- Duplicates: " (Loyverse)", " (Loyverse 2)", ... after the highest suffix in use, and a
    -- SKU with the same suffix ("-LV", "-LV2", ...).
    update _lv_plan p
       set name = d.base || case when d.n = 1 then ' (Loyverse)' else format(' (Loyverse %s)', d.n) end,
           sku = case when p.sku is null then null
                      when d.n = 1 then p.sku || '-LV' else p.sku || '-LV' || d.n end
      from (select p2.row_no, p2.name as base,
                   coalesce((select max(coalesce(nullif(substring(pr.name from ' \(Loyverse ?([0-9]*)\)$'), ''), '1')::integer)
                               from public.products pr
                              where pr.restaurant_id = v_run.restaurant_id
                                and (loyverse.normalize_name(pr.name) like loyverse.normalize_name(p2.name) || ' (loyverse%)'
                                     or (p2.sku is not null and pr.sku like p2.sku || '-LV%'))), 0)
                   + row_number() over (partition by loyverse.normalize_name(p2.name) order by p2.row_no) as n
              from _lv_plan p2
             where p2.run_id = p_run_id and p2.decision = 'duplicate') d
     where p.run_id = p_run_id and p.row_no = d.row_no;

    -- A SKU that another product of the restaurant already has cannot be written.
    update _lv_plan p
       set decision = 'fail',
           decision_reason = format('SKU %s is already used by product "%s"', p.sku, pr.name),
           errors = p.errors || format('SKU %s is already used by product "%s"', p.sku, pr.name)
      from public.products pr
     where p.run_id = p_run_id and p.decision in ('create', 'update', 'duplicate') and p.sku is not null
       and pr.restaurant_id = v_run.restaurant_id and pr.sku = p.sku and pr.id <> p.product_id;

    -- Categories: mapped, else the same name, else new; the fallback for unknown ones.
    insert into loyverse.loyverse_import_plan_objects (run_id, kind, loyverse_id, name, local_id, match_rule, decision)
    select p_run_id, 'category', c.id, c.name,
           coalesce(om.local_id, byname.id, gen_random_uuid()),
           case when om.local_id is not null then 'mapping' when byname.id is not null then 'name' end,
           case when coalesce(om.local_id, byname.id) is not null
                     and exists (select 1 from public.categories x where x.id = coalesce(om.local_id, byname.id))
                then 'update' else 'create' end
      from (select c.id, c.name from _lv_cats c
             where not v_selecting
                or exists (select 1 from _lv_plan p
                            where p.run_id = p_run_id and p.category_ref = c.id
                              and p.decision in ('create', 'update', 'duplicate'))
            union all
            select '(fallback)', 'Uncategorised'
             where exists (select 1 from _lv_plan p
                            where p.run_id = p_run_id and p.category_ref = '(fallback)'
                              and p.decision in ('create', 'update', 'duplicate'))) c
      left join loyverse.loyverse_object_mappings om
             on om.restaurant_id = v_run.restaurant_id and om.kind = 'category' and om.loyverse_id = c.id
      left join lateral (select x.id from public.categories x
                          where x.restaurant_id = v_run.restaurant_id
                            and loyverse.normalize_name(x.name) = loyverse.normalize_name(c.name)
                          order by x.created_at, x.id limit 1) byname on om.local_id is null;

    -- Product groups: one per written item that has options or several variants.
    insert into loyverse.loyverse_import_plan_objects
        (run_id, kind, loyverse_id, name, option1_name, option2_name, option3_name, description, local_id, match_rule, decision)
    select p_run_id, 'item', g.item_id, g.item_name, g.o1, g.o2, g.o3, g.descr,
           coalesce(om.local_id, g.existing_group, gen_random_uuid()),
           case when om.local_id is not null or g.existing_group is not null then 'mapping' end,
           case when exists (select 1 from public.product_groups x where x.id = coalesce(om.local_id, g.existing_group))
                then 'update' else 'create' end
      from (select p.item_id, min(p.item_name) as item_name,
                   min(case when jsonb_typeof(it.i -> 'option1_name') = 'string' then it.i ->> 'option1_name' end) as o1,
                   min(case when jsonb_typeof(it.i -> 'option2_name') = 'string' then it.i ->> 'option2_name' end) as o2,
                   min(case when jsonb_typeof(it.i -> 'option3_name') = 'string' then it.i ->> 'option3_name' end) as o3,
                   min(case when jsonb_typeof(it.i -> 'description') = 'string' then it.i ->> 'description' end) as descr,
                   (array_agg(pr.product_group_id) filter (where pr.product_group_id is not null))[1] as existing_group
              from _lv_plan p
              join _lv_items it on it.item_id = p.item_id
              left join public.products pr on pr.id = p.product_id and p.match_rule = 'mapping'
             where p.run_id = p_run_id and p.decision in ('create', 'update', 'duplicate')
               and (case when jsonb_typeof(it.variants) = 'array' then jsonb_array_length(it.variants) else 0 end > 1
                    or jsonb_typeof(it.i -> 'option1_name') = 'string')
             group by p.item_id) g
      left join loyverse.loyverse_object_mappings om
             on om.restaurant_id = v_run.restaurant_id and om.kind = 'item' and om.loyverse_id = g.item_id;

    -- (group_id is set from these objects by the final insert into loyverse_import_plan)

    -- Modifier groups linked from written items (available in the store), and their options.
    insert into loyverse.loyverse_import_plan_objects (run_id, kind, loyverse_id, name, position, local_id, match_rule, decision)
    select p_run_id, 'modifier', m.id, m.name,
           coalesce(loyverse.jsonb_to_int(m.m -> 'position'), 0),
           coalesce(om.local_id, byname.id, gen_random_uuid()),
           case when om.local_id is not null then 'mapping' when byname.id is not null then 'name' end,
           case when exists (select 1 from public.modifier_groups x where x.id = coalesce(om.local_id, byname.id))
                then 'update' else 'create' end
      from _lv_mods m
      left join loyverse.loyverse_object_mappings om
             on om.restaurant_id = v_run.restaurant_id and om.kind = 'modifier' and om.loyverse_id = m.id
      left join lateral (select x.id from public.modifier_groups x
                          where x.restaurant_id = v_run.restaurant_id
                            and loyverse.normalize_name(x.name) = loyverse.normalize_name(m.name)
                          order by x.created_at, x.id limit 1) byname on om.local_id is null
     where exists (select 1 from _lv_plan p
                    where p.run_id = p_run_id and p.decision in ('create', 'update', 'duplicate')
                      and m.id = any (p.modifier_ids));

    insert into loyverse.loyverse_import_plan_objects
        (run_id, kind, loyverse_id, parent_loyverse_id, name, price, position, local_id, match_rule, decision)
    select p_run_id, 'modifier_option', o.opt ->> 'id', g.loyverse_id, btrim(o.opt ->> 'name'),
           round(coalesce(case when jsonb_typeof(o.opt -> 'price') = 'number' then (o.opt ->> 'price')::numeric end, 0), v_dp),
           coalesce(loyverse.jsonb_to_int(o.opt -> 'position'), o.ord::integer - 1),
           coalesce(om.local_id, byname.id, gen_random_uuid()),
           case when om.local_id is not null then 'mapping' when byname.id is not null then 'name' end,
           case when exists (select 1 from public.modifier_options x where x.id = coalesce(om.local_id, byname.id))
                then 'update' else 'create' end
      from loyverse.loyverse_import_plan_objects g
      join _lv_mods m on m.id = g.loyverse_id
      cross join lateral jsonb_array_elements(case when jsonb_typeof(m.m -> 'modifier_options') = 'array'
                                                   then m.m -> 'modifier_options' else '[]'::jsonb end) with ordinality o(opt, ord)
      left join loyverse.loyverse_object_mappings om
             on om.restaurant_id = v_run.restaurant_id and om.kind = 'modifier_option' and om.loyverse_id = o.opt ->> 'id'
      left join lateral (select x.id from public.modifier_options x
                          where x.modifier_group_id = g.local_id
                            and loyverse.normalize_name(x.name) = loyverse.normalize_name(o.opt ->> 'name')
                          order by x.created_at, x.id limit 1) byname on om.local_id is null
     where g.run_id = p_run_id and g.kind = 'modifier'
       and jsonb_typeof(o.opt -> 'id') = 'string' and jsonb_typeof(o.opt -> 'name') = 'string'
       and btrim(o.opt ->> 'name') <> ''
       and coalesce(jsonb_typeof(o.opt -> 'deleted_at'), 'null') = 'null'
       and coalesce(jsonb_typeof(o.opt -> 'price'), 'null') in ('number', 'null')
       and coalesce(case when jsonb_typeof(o.opt -> 'price') = 'number' then (o.opt ->> 'price')::numeric end, 0) between 0 and 9999999999
    on conflict do nothing;

    -- The report: errors, warnings and what cannot carry over faithfully.
    insert into loyverse.loyverse_import_issues (run_id, severity, code, item_id, variant_id, name, message)
    select p_run_id, 'error', 'invalid', p.item_id, p.variant_id, coalesce(p.name, p.item_name), e
      from _lv_plan p cross join lateral unnest(p.errors) e
     where p.run_id = p_run_id
    union all
    select p_run_id, 'fidelity', 'deleted', p.item_id, p.variant_id, p.name, 'deleted in Loyverse: not imported'
      from _lv_plan p
     where p.run_id = p_run_id and p.decision = 'skip' and p.decision_reason = 'deleted in Loyverse'
    union all
    select p_run_id, 'fidelity', 'variable_price', p.item_id, p.variant_id, p.name,
           'VARIABLE price (entered at the counter in Loyverse): imported as 0 and flagged'
      from _lv_plan p
     where p.run_id = p_run_id and p.needs_attention and p.decision in ('create', 'update', 'duplicate')
    union all
    select p_run_id, 'fidelity', 'price_rounded', r.item_id, r.variant_id, r.name,
           format('price %s rounded to %s decimal places', r.adj_price, v_dp)
      from _lv_rows r
     where cardinality(r.errors) = 0 and r.adj_price is not null and round(r.adj_price, v_dp) <> r.adj_price
    union all
    select p_run_id, 'fidelity', 'tax_adjusted', r.item_id, r.variant_id, r.name,
           case when v_incl_tax then format('Loyverse price %s excludes %s%% ADDED tax; imported tax-inclusive', r.raw_price, r.added_rate)
                else format('Loyverse price %s includes %s%% tax; imported without it', r.raw_price, r.included_rate) end
      from _lv_rows r
     where cardinality(r.errors) = 0 and r.raw_price is not null
       and ((v_incl_tax and r.added_rate > 0) or (not v_incl_tax and r.included_rate > 0))
    union all
    select p_run_id, 'fidelity', 'not_for_sale', r.item_id, r.variant_id, r.name,
           'not available for sale in the store: imported inactive'
      from _lv_rows r
     where cardinality(r.errors) = 0 and r.available_for_sale is false
    union all
    select p_run_id, 'warning', 'invalid_stock', r.item_id, r.variant_id, r.name,
           format('stock level %s is not a number in range: stock not imported', left(s.raw::text, 40))
      from _lv_rows r join _lv_stock s on s.variant_id = r.variant_id
     where cardinality(r.errors) = 0 and s.qty is null
    union all
    select p_run_id, 'warning', 'unknown_category', min(r.item_id), null, min(r.base_name),
           format('category %s is not in the category list: imported under "Uncategorised"', left(r.cat_id, 64))
      from _lv_rows r
     where cardinality(r.errors) = 0 and r.cat_id is not null and not r.cat_known
     group by r.item_id, r.cat_id
    union all
    select p_run_id, 'fidelity', 'composite', it.item_id, null, it.i ->> 'item_name',
           'composite item (made of other items): imported as a plain product'
      from _lv_items it
     where it.item_id is not null and loyverse.jsonb_to_bool(it.i -> 'is_composite')
    union all
    select p_run_id, 'fidelity', 'sold_by_weight', it.item_id, null, it.i ->> 'item_name',
           'sold by weight in Loyverse: imported with its unit price'
      from _lv_items it
     where it.item_id is not null and loyverse.jsonb_to_bool(it.i -> 'sold_by_weight')
    union all
    select p_run_id, 'fidelity', 'several_taxes', it.item_id, null, it.i ->> 'item_name',
           format('%s taxes in Loyverse; our catalogue keeps none', jsonb_array_length(it.i -> 'tax_ids'))
      from _lv_items it
     where it.item_id is not null
       and case when jsonb_typeof(it.i -> 'tax_ids') = 'array' then jsonb_array_length(it.i -> 'tax_ids') > 1 else false end
    union all
    select p_run_id, case when m.id is null then 'warning' else 'fidelity' end,
           case when m.id is null then 'unknown_modifier' else 'modifier_not_in_store' end,
           it.item_id, null, it.i ->> 'item_name',
           case when m.id is null then format('modifier %s does not exist: link dropped', left(x.mid, 64))
                else format('modifier "%s" is not available in the store: not linked', m.name) end
      from _lv_items it
      cross join lateral jsonb_array_elements_text(case when jsonb_typeof(it.i -> 'modifier_ids') = 'array'
                                                        then it.i -> 'modifier_ids' else '[]'::jsonb end) x(mid)
      left join _lv_mods m on m.id = x.mid
     where it.item_id is not null and (m.id is null or not m.in_store)
    union all
    select p_run_id, 'warning', 'unknown_tax', it.item_id, null, it.i ->> 'item_name',
           format('tax %s is not in the tax list (or not in this store, or its rate is not 0..1000): ignored', left(x.tid, 64))
      from _lv_items it
      cross join lateral jsonb_array_elements_text(case when jsonb_typeof(it.i -> 'tax_ids') = 'array'
                                                        then it.i -> 'tax_ids' else '[]'::jsonb end) x(tid)
     where it.item_id is not null and not exists (select 1 from _lv_taxes t where t.id = x.tid);

    -- The product group of written rows, and (atomic runs: plan and writes commit together) the
    -- outcome the write will have, so import_apply_batch needs no UPDATE of the plan for it
    -- ('unchanged' until an update is seen to change something).
    insert into loyverse.loyverse_import_plan
        (run_id, row_no, item_id, variant_id, item_seq, batch_no, item_name, name, sku, price, loyverse_price,
         price_factor, stock_quantity, is_active, option1_value, option2_value, option3_value, category_ref,
         category_fallback, modifier_ids, extra, errors, needs_attention, attention_reason, match_rule,
         matched_product_id, matched_name, matched_variant_id, decision, decision_reason, product_id,
         group_id, outcome, done)
    select p.run_id, p.row_no, p.item_id, p.variant_id, p.item_seq, p.batch_no, p.item_name, p.name, p.sku, p.price,
           p.loyverse_price, p.price_factor, p.stock_quantity, p.is_active, p.option1_value, p.option2_value,
           p.option3_value, p.category_ref, p.category_fallback, p.modifier_ids, p.extra, p.errors,
           p.needs_attention, p.attention_reason, p.match_rule, p.matched_product_id, p.matched_name,
           p.matched_variant_id, p.decision, p.decision_reason, p.product_id,
           case when p.decision in ('create', 'update', 'duplicate') then o.local_id end,
           case when v_atomic then
                case p.decision when 'create' then 'created' when 'duplicate' then 'duplicated'
                                when 'skip' then 'skipped' when 'fail' then 'failed'
                                when 'update' then 'unchanged' end end,
           v_atomic and p.decision is not null
      from _lv_plan p
      left join loyverse.loyverse_import_plan_objects o
             on o.run_id = p_run_id and o.kind = 'item' and o.loyverse_id = p.item_id;

    -- The run row's progress (items_total) is left to the caller: during an atomic run it is
    -- written from another connection, and a lock taken here would block that.
    return loyverse.import_plan_summary(p_run_id);
end;
$$;

comment on function loyverse.import_plan(bigint) is
    'Plan an import run from its snapshot and options (validation, pricing, conflicts, decisions, '
    'fidelity report); writes only the plan tables. Returns import_plan_summary().';

-- ---- sql/0635_function_import_apply_batch.sql (before 0061) ----
-- Writes one batch of an import run's plan: products (created, duplicated, or updated only
-- where something differs), their item mappings and modifier links, all journaled; marks
-- the batch's plan rows done. The writes are marked as coming from Loyverse (origin).
create or replace function loyverse.import_apply_batch(p_run_id bigint, p_batch_no integer)
returns jsonb
language plpgsql
set search_path = ''
set jit = off
set enable_nestloop = off
as $$
declare
    v_toast text := current_setting('default_toast_compression');
    v_run loyverse.loyverse_import_runs;
    v_store text;
    v_extra_cols text := '';
    v_extra_vals text := '';
    v_ids text[];
    v_changed text[];
    v_n integer;
    v_result jsonb;
    v_atomic boolean;
begin
    perform set_config('loyverse_sync.origin', 'loyverse', true);
    -- The journal's arrays of created rows are compressed with lz4 where the server has it
    -- (~2x faster than pglz here); the setting is put back before returning.
    if exists (select 1 from pg_catalog.pg_settings s
                where s.name = 'default_toast_compression' and 'lz4' = any (s.enumvals)) then
        perform set_config('default_toast_compression', 'lz4', true);
    end if;
    select * into v_run from loyverse.loyverse_import_runs r where r.id = p_run_id;
    -- Atomic run, every row (p_batch_no null): import_plan wrote the plan rows done, with the
    -- outcome of the write, in this same transaction; only 'updated' is left to set here.
    v_atomic := p_batch_no is null and not v_run.dry_run
                and jsonb_typeof(v_run.options -> 'batch_size') is distinct from 'number';
    select l.store_id into v_store from loyverse.loyverse_restaurant_links l where l.restaurant_id = v_run.restaurant_id;

    -- Columns filled through --map (validated by import_field_map_problems before planning).
    select coalesce(string_agg(format(', %I', e.value), '' order by e.key), ''),
           coalesce(string_agg(format(', p.extra ->> %L', e.value), '' order by e.key), '')
      into v_extra_cols, v_extra_vals
      from jsonb_each_text(coalesce(v_run.options -> 'map', '{}')) e
     where e.value not in ('name', 'sku');

    drop table if exists pg_temp._lv_batch;
    create temp table _lv_batch on commit drop as
    select p.*, c.local_id as category_id,
           -- stock is written only by an import --with-inventory; otherwise it stays as it is
           case when coalesce(loyverse.jsonb_to_bool(v_run.options -> 'with_inventory'), false)
                then p.stock_quantity else pr.stock_quantity end as stock
      from loyverse.loyverse_import_plan p
      left join loyverse.loyverse_import_plan_objects c
        on c.run_id = p.run_id and c.kind = 'category' and c.loyverse_id = p.category_ref
      left join public.products pr on pr.id = p.product_id
     where p.run_id = p_run_id and (p_batch_no is null or p.batch_no = p_batch_no) and (v_atomic or not p.done);

    -- New products (create and duplicate): ids were chosen when planning. Rows this statement
    -- created (products, mappings, links) are journaled set-based: one journal row per
    -- 5,000 created rows (row_key '#<xid>.<batch>.<chunk>', action INSERT, after_image a JSON
    -- array of the rows' images), not one per row: each journal row costs an insert, two
    -- index entries and a foreign-key check (~0.25 s per 19k rows). import_undo expands them.
    -- The key is new (this transaction's id), so no ON CONFLICT is needed.
    execute format(
        'with ins as (
             insert into public.products (id, restaurant_id, category_id, product_group_id, name, sku, price,
                                          is_active, option1_value, option2_value, option3_value, stock_quantity%s)
             select p.product_id, $2, p.category_id, p.group_id, p.name, p.sku, p.price, p.is_active,
                    p.option1_value, p.option2_value, p.option3_value, p.stock%s
               from pg_temp._lv_batch p
              where p.decision in (''create'', ''duplicate'')
             %s
             returning *)
         insert into loyverse.loyverse_import_journal (run_id, table_name, row_key, action, after_image)
         select $1, ''products'', format(''#%%s.%%s.%%s'', pg_current_xact_id(), coalesce($3::text, ''all''), c.chunk),
                ''INSERT'', jsonb_agg(c.image)
           from (select to_jsonb(ins) as image, (row_number() over () - 1) / 5000 as chunk from ins) c
          group by c.chunk', v_extra_cols, v_extra_vals,
        -- an atomic run's ids are new (planned in this transaction): no speculative insert
        case when v_atomic then '' else 'on conflict (id) do nothing' end)
        using p_run_id, v_run.restaurant_id, p_batch_no;

    -- Updates: only rows where something differs (an unchanged menu writes nothing).
    execute format(
        'select array_agg(pr.id::text)
           from public.products pr join pg_temp._lv_batch p on p.product_id = pr.id
          where p.decision = ''update''
            and (pr.name, pr.sku, pr.price, pr.is_active, pr.category_id, pr.product_group_id,
                 pr.option1_value, pr.option2_value, pr.option3_value, pr.stock_quantity%s)
                is distinct from
                (p.name, p.sku, p.price, p.is_active, coalesce(p.category_id, pr.category_id),
                 coalesce(p.group_id, pr.product_group_id), p.option1_value, p.option2_value, p.option3_value,
                 p.stock%s)',
        replace(v_extra_cols, ', ', ', pr.'), v_extra_vals)
        into v_changed;
    perform loyverse.import_journal_before(p_run_id, 'products', v_changed);
    execute format(
        'update public.products pr
            set (name, sku, price, is_active, category_id, product_group_id, option1_value, option2_value,
                 option3_value, stock_quantity%s, updated_at)
              = (p.name, p.sku, p.price, p.is_active, coalesce(p.category_id, pr.category_id),
                 coalesce(p.group_id, pr.product_group_id), p.option1_value, p.option2_value,
                 p.option3_value, p.stock%s, now())
           from pg_temp._lv_batch p, unnest($1::text[]) k(id)
          where p.product_id = pr.id and p.decision = ''update'' and pr.id::text = k.id',
        v_extra_cols, v_extra_vals)
        using v_changed;

    -- Item mappings: insert new ones, update those that differ.
    select array_agg(m.id::text) into v_ids
      from loyverse.loyverse_item_mappings m
      join _lv_batch p on m.restaurant_id = v_run.restaurant_id and m.loyverse_variant_id = p.variant_id
     where p.decision in ('create', 'update', 'duplicate')
       and (m.product_id, m.account_id, m.loyverse_item_id, m.loyverse_store_id, m.last_synced_price,
            m.needs_attention, m.attention_reason, m.price_factor)
           is distinct from
           (p.product_id, v_run.account_id, p.item_id, v_store, round(p.loyverse_price, 2),
            p.needs_attention, p.attention_reason, p.price_factor);
    perform loyverse.import_journal_before(p_run_id, 'loyverse_item_mappings', v_ids);
    with up as (
        insert into loyverse.loyverse_item_mappings as m
            (product_id, restaurant_id, account_id, loyverse_item_id, loyverse_variant_id, loyverse_store_id,
             last_synced_price, last_synced_at, sync_direction, needs_attention, attention_reason, import_run_id,
             price_factor)
        select p.product_id, v_run.restaurant_id, v_run.account_id, p.item_id, p.variant_id, v_store,
               round(p.loyverse_price, 2), now(), 'FROM_LOYVERSE', p.needs_attention, p.attention_reason, p_run_id,
               p.price_factor
          from _lv_batch p
         where p.decision in ('create', 'update', 'duplicate')
        on conflict (restaurant_id, loyverse_variant_id) do update
           set product_id = excluded.product_id, account_id = excluded.account_id,
               loyverse_item_id = excluded.loyverse_item_id, loyverse_store_id = excluded.loyverse_store_id,
               last_synced_price = excluded.last_synced_price, last_synced_at = excluded.last_synced_at,
               sync_direction = 'FROM_LOYVERSE', needs_attention = excluded.needs_attention,
               attention_reason = excluded.attention_reason, import_run_id = excluded.import_run_id,
               price_factor = excluded.price_factor, updated_at = now()
         where (m.product_id, m.account_id, m.loyverse_item_id, m.loyverse_store_id, m.last_synced_price,
                m.needs_attention, m.attention_reason, m.price_factor)
               is distinct from
               (excluded.product_id, excluded.account_id, excluded.loyverse_item_id, excluded.loyverse_store_id,
                excluded.last_synced_price, excluded.needs_attention, excluded.attention_reason, excluded.price_factor)
        returning m.id, m.product_id, (m.xmax = 0) as inserted, to_jsonb(m) as image)
    , j as (
        insert into loyverse.loyverse_import_journal (run_id, table_name, row_key, action, after_image)
        select p_run_id, 'loyverse_item_mappings',
               format('#%s.%s.%s', pg_current_xact_id(), coalesce(p_batch_no::text, 'all'), c.chunk), 'INSERT',
               jsonb_agg(c.image)
          from (select up.image, (row_number() over () - 1) / 5000 as chunk from up where up.inserted) c
         group by c.chunk)
    select array_agg(up.product_id::text) || coalesce(v_changed, '{}') into v_changed from up;

    -- Modifier links (only new ones are written).
    with ins as (
        insert into public.product_modifier_groups (product_id, modifier_group_id)
        select distinct p.product_id, o.local_id
          from _lv_batch p
          cross join lateral unnest(p.modifier_ids) mid
          join loyverse.loyverse_import_plan_objects o
            on o.run_id = p.run_id and o.kind = 'modifier' and o.loyverse_id = mid
         where p.decision in ('create', 'update', 'duplicate')
        on conflict do nothing
        returning *)
    insert into loyverse.loyverse_import_journal (run_id, table_name, row_key, action, after_image)
    select p_run_id, 'product_modifier_groups',
           format('#%s.%s.%s', pg_current_xact_id(), coalesce(p_batch_no::text, 'all'), c.chunk), 'INSERT',
           jsonb_agg(c.image)
      from (select to_jsonb(ins) as image, (row_number() over () - 1) / 5000 as chunk from ins) c
     group by c.chunk;  -- new links only, journaled set-based as above

    -- Links to Loyverse modifiers the item no longer has (or that left the store) are removed
    -- (journaled, so undo puts them back); links to our own modifier groups stay.
    select array_agg(l.product_id::text || ':' || l.modifier_group_id::text) into v_ids
      from public.product_modifier_groups l
      join _lv_batch p on p.product_id = l.product_id
      join loyverse.loyverse_object_mappings om
        on om.restaurant_id = v_run.restaurant_id and om.kind = 'modifier' and om.local_id = l.modifier_group_id
     where p.decision in ('create', 'update', 'duplicate') and not (om.loyverse_id = any (p.modifier_ids));
    if v_ids is not null then
        perform loyverse.import_journal_before(p_run_id, 'product_modifier_groups', v_ids, 'DELETE');
        delete from public.product_modifier_groups l
         using unnest(v_ids) k(key)
         where l.product_id::text || ':' || l.modifier_group_id::text = k.key;
        select array_agg(distinct split_part(k.key, ':', 1)) || coalesce(v_changed, '{}') into v_changed
          from unnest(v_ids) k(key);
    end if;

    if not v_atomic then
      update loyverse.loyverse_import_plan p
       set done = true,
           outcome = case p.decision when 'create' then 'created' when 'duplicate' then 'duplicated'
                                     when 'skip' then 'skipped' when 'fail' then 'failed'
                                     when 'update' then 'unchanged' end
      from _lv_batch b
     where p.run_id = p_run_id and p.row_no = b.row_no and p.decision is not null;
    end if;
    update loyverse.loyverse_import_plan p
       set outcome = 'updated'
      from (select distinct unnest(v_changed) as id) c
     where p.run_id = p_run_id and p.decision = 'update' and p.outcome = 'unchanged'
       and p.product_id::text = c.id;

    select jsonb_build_object(
               'rows', count(*),
               'created', count(*) filter (where p.outcome = 'created'),
               'updated', count(*) filter (where p.outcome = 'updated'),
               'unchanged', count(*) filter (where p.outcome = 'unchanged'),
               'skipped', count(*) filter (where p.outcome = 'skipped'),
               'duplicated', count(*) filter (where p.outcome = 'duplicated'),
               'failed', count(*) filter (where p.outcome = 'failed'))
      into v_result
      from loyverse.loyverse_import_plan p join _lv_batch b on b.row_no = p.row_no
     where p.run_id = p_run_id;
    perform set_config('default_toast_compression', v_toast, true);
    return v_result;
end;
$$;

comment on function loyverse.import_apply_batch(bigint, integer) is
    'Write batch p_batch_no (null: every remaining row; in an atomic run, every row: import_plan wrote '
    'them done with their outcome) of an import run''s plan; returns counts by outcome.';

drop function loyverse._price_sync_setting_allowed(text);

update loyverse.loyverse_price_sync_queue
   set status = 'cancelled', completed_at = now(), last_error = 'held change cancelled by the rollback of 0061'
 where status = 'held';
update loyverse.loyverse_price_sync_queue set source = 'manual' where source = 'make_fixed';
drop index loyverse.loyverse_price_sync_queue_product_id_held_idx;
alter table loyverse.loyverse_price_sync_queue
    drop constraint queue_prices_are_numbers,
    drop column approved_at,
    drop column approved_by;
alter table loyverse.loyverse_price_sync_queue drop constraint queue_status_is_valid;
alter table loyverse.loyverse_price_sync_queue add constraint queue_status_is_valid
    check (status in ('pending', 'processing', 'done', 'failed', 'dead', 'conflict', 'cancelled'));
alter table loyverse.loyverse_price_sync_queue drop constraint queue_source_is_valid;
alter table loyverse.loyverse_price_sync_queue add constraint queue_source_is_valid
    check (source in ('trigger', 'manual', 'retry', 'resolve', 'requeue', 'settings'));
alter table loyverse.loyverse_price_sync_queue alter column price_to_send type numeric(12, 3);
delete from loyverse.loyverse_sync_logs where sync_type in ('APPROVE', 'REJECT', 'MAKE_FIXED');
alter table loyverse.loyverse_sync_logs drop constraint sync_type_is_valid;
alter table loyverse.loyverse_sync_logs add constraint sync_type_is_valid
    check (sync_type in ('PRICE_SYNC', 'MENU_IMPORT', 'IMPORT_UNDO', 'MANUAL_TRIGGER', 'RETRY', 'NOTIFICATION',
                         'SETTINGS_CHANGE', 'API_KEY'));
alter table loyverse.loyverse_item_mappings drop column loyverse_pricing_type;
alter table loyverse.loyverse_price_sync_settings
    drop constraint notification_email_is_at_most_254_characters,
    drop column hold_change_percent,
    drop column hold_change_amount,
    drop column hold_below_price;
alter table loyverse.accounts
    drop constraint merchant_id_is_at_most_200_characters,
    drop constraint business_name_is_at_most_200_characters,
    drop constraint base_url_is_at_most_2000_characters,
    drop constraint rate_limit_requests_is_at_most_100000,
    drop constraint rate_limit_window_is_between_1_and_86400_seconds,
    add constraint rate_limit_window_is_positive check (rate_limit_window_seconds > 0);
alter table public.products drop constraint product_price_is_a_number_below_100000000;
alter table public.restaurants drop constraint restaurant_name_is_at_most_200_characters;

-- ---- sql/0520_view_price_sync_status.sql (before 0061) ----
-- Per-restaurant price-sync status for DBAs and the CLI (`sync status`).
-- One grouped pass over the queue rows that count (pending, processing, failed, dead,
-- conflict, and done in the last day: each arm matches a partial index), joined by
-- restaurant_id: the cost does not multiply by the number of restaurants. A restaurant
-- whose last success is older than a day takes it from last_done, read only for such a
-- restaurant (and only when last_success_at is selected): one pass for all of them.
create view loyverse.price_sync_status as
with last_done as materialized (
    select y.restaurant_id, y.completed_at
      from loyverse.loyverse_price_sync_queue y
     where y.id in (select max(z.id) from loyverse.loyverse_price_sync_queue z
                     where z.status = 'done' group by z.restaurant_id)
)
select r.id as restaurant_id,
       r.name as restaurant_name,
       l.account_id,
       l.store_id,
       s.enabled,
       s.paused,
       s.sync_direction,
       s.sync_frequency,
       s.price_rounding_rule,
       coalesce(q.pending, 0) as pending,
       coalesce(q.due, 0) as due,
       coalesce(q.processing, 0) as processing,
       coalesce(q.failed, 0) as failed,
       coalesce(q.dead, 0) as dead,
       coalesce(q.conflicts, 0) as conflicts,
       now() - q.oldest_pending as oldest_pending_age,
       coalesce(q.last_success_at,
                (select d.completed_at from last_done d where d.restaurant_id = r.id)) as last_success_at,
       coalesce(q.synced_last_hour, 0) as synced_last_hour,
       round(q.synced_last_hour::numeric / nullif(q.finished_last_hour, 0), 3) as success_rate_last_hour,
       coalesce(q.synced_last_day, 0) as synced_last_day,
       round(q.synced_last_day::numeric / nullif(q.finished_last_day, 0), 3) as success_rate_last_day,
       round(coalesce(rate.requests_last_5min, 0) / 5.0, 1) as requests_per_minute,
       round((a.rate_limit_requests * 60 / a.rate_limit_window_seconds)::numeric, 1) as budget_per_minute
  from public.restaurants r
  join loyverse.loyverse_price_sync_settings s on s.restaurant_id = r.id
  left join loyverse.loyverse_restaurant_links l on l.restaurant_id = r.id
  left join loyverse.accounts a on a.id = l.account_id
  left join (
      select x.restaurant_id,
             count(*) filter (where x.status = 'pending') as pending,
             count(*) filter (where x.status = 'pending' and x.next_attempt_at <= now()) as due,
             count(*) filter (where x.status = 'processing') as processing,
             count(*) filter (where x.status = 'failed') as failed,
             count(*) filter (where x.status = 'dead') as dead,
             count(*) filter (where x.status = 'conflict') as conflicts,
             min(x.created_at) filter (where x.status = 'pending') as oldest_pending,
             max(x.completed_at) filter (where x.status = 'done') as last_success_at,
             count(*) filter (where x.status = 'done' and x.completed_at > now() - interval '1 hour') as synced_last_hour,
             count(*) filter (where x.status in ('done', 'failed', 'dead')
                                and x.completed_at > now() - interval '1 hour') as finished_last_hour,
             count(*) filter (where x.status = 'done' and x.completed_at > now() - interval '1 day') as synced_last_day,
             count(*) filter (where x.status in ('done', 'failed', 'dead')
                                and x.completed_at > now() - interval '1 day') as finished_last_day
        from loyverse.loyverse_price_sync_queue x
       where x.status = 'pending'
          or x.status = 'processing'
          or x.status in ('failed', 'dead', 'conflict')
          or (x.status = 'done' and x.completed_at > now() - interval '1 day')
       group by x.restaurant_id
  ) q on q.restaurant_id = r.id
  left join lateral (
      select sum(g.requests_made) as requests_last_5min
        from loyverse.loyverse_sync_logs g
       where g.account_id = l.account_id and g.sync_type = 'PRICE_SYNC'
         and g.started_at > now() - interval '5 minutes'
  ) rate on true;
comment on view loyverse.price_sync_status is
    'Price sync per restaurant: queue counts (pending, due, processing, failed, dead, conflicts), oldest pending '
    'age, last success, items synced and success rate over the last hour and day, the account''s current '
    'price-sync send rate (requests/min over 5 min) against its budget.';
comment on column loyverse.price_sync_status.due is 'Pending rows whose time has come (REALTIME at once, BATCH_* at their boundary, retries after their backoff).';
comment on column loyverse.price_sync_status.success_rate_last_hour is 'done / (done + failed + dead) completed in the last hour; null when none.';
comment on column loyverse.price_sync_status.requests_per_minute is 'Loyverse requests made by price sync for this restaurant''s account, per minute over the last 5 minutes.';

-- ---- sql/0525_view_price_sync_history.sql (before 0061) ----
-- Sync history: one row per price-sync batch, manual trigger and retry.
create or replace view loyverse.price_sync_history as
select g.id as log_id,
       g.started_at,
       g.completed_at,
       g.completed_at - g.started_at as duration,
       g.sync_type,
       g.status,
       g.account_id,
       g.restaurant_id,
       case when jsonb_typeof(g.details->'restaurant_ids') = 'array'
            then array(select jsonb_array_elements_text(g.details->'restaurant_ids'))::uuid[]
            else array_remove(array[g.restaurant_id], null) end as restaurant_ids,
       g.items_total,
       g.items_succeeded,
       g.items_failed,
       g.items_skipped,
       g.requests_made,
       g.error_details
  from loyverse.loyverse_sync_logs g
 where g.sync_type in ('PRICE_SYNC', 'MANUAL_TRIGGER', 'RETRY');
comment on view loyverse.price_sync_history is
    'Price-sync history: each batch a worker wrote (items, requests, errors), each manual trigger and retry. '
    'restaurant_ids lists every restaurant of a batch (restaurant_id is set only when there is one).';

-- ---- sql/0530_view_price_sync_problems.sql (before 0061) ----
-- Failed, dead-lettered and held (conflict) changes with their last error.
create view loyverse.price_sync_problems as
select q.id as queue_id,
       q.restaurant_id,
       r.name as restaurant_name,
       q.product_id,
       p.name as product_name,
       q.status,
       q.old_price,
       q.new_price,
       q.price_to_send,
       p.price as current_price,
       q.attempts,
       q.max_attempts,
       q.last_error_code,
       q.last_error,
       q.error_details,
       m.loyverse_item_id,
       m.loyverse_variant_id,
       m.loyverse_store_id,
       m.needs_attention,
       q.created_at,
       q.completed_at
  from loyverse.loyverse_price_sync_queue q
  join public.restaurants r on r.id = q.restaurant_id
  join public.products p on p.id = q.product_id
  left join loyverse.loyverse_item_mappings m on m.product_id = q.product_id
 where q.status in ('failed', 'dead', 'conflict');
comment on view loyverse.price_sync_problems is
    'Price changes that need a person: failed (not retryable, e.g. variant gone), dead (retries exhausted), '
    'conflict (edited in Loyverse, BIDIRECTIONAL). Fix with `sync retry` / `sync resolve`.';
comment on column loyverse.price_sync_problems.error_details is 'Loyverse''s error (code, details, field) or, for a conflict, the price found in Loyverse.';

-- ---- sql/0565_view_alert_measurements.sql ----
-- Each restaurant's alert conditions measured now against their thresholds (read by
-- evaluate_alerts and by operators).
create view loyverse.alert_measurements as
select st.restaurant_id,
       st.restaurant_name,
       m.alert,
       m.value,
       m.threshold,
       m.value >= m.threshold as breached
  from loyverse.price_sync_status st
  join loyverse.loyverse_price_sync_settings s on s.restaurant_id = st.restaurant_id
  cross join lateral (values
      ('FAILURE_RATE', coalesce(1 - st.success_rate_last_hour, 0)::double precision, s.alert_failure_rate),
      ('QUEUE_DEPTH', st.pending::double precision, s.alert_queue_depth::double precision),
      ('OLDEST_PENDING', coalesce(extract(epoch from st.oldest_pending_age), 0)::double precision,
                         s.alert_oldest_pending_seconds::double precision),
      ('DEAD_LETTERS', st.dead::double precision, s.alert_dead_letters::double precision),
      -- prices that differ from Loyverse at the last reconciliation, not repaired since
      ('PRICE_DRIFT', (select count(*) from loyverse.loyverse_price_drift d
                        where d.restaurant_id = st.restaurant_id and d.repaired_at is null)::double precision,
                      1::double precision)
  ) m(alert, value, threshold)
 where s.enabled and not s.paused;

comment on view loyverse.alert_measurements is
    'Each restaurant''s alert conditions now: the measured value, its threshold from the settings, breached or not.';

grant select on loyverse.price_sync_status, loyverse.price_sync_problems, loyverse.alert_measurements
  to loyverse_readonly, loyverse_worker;
grant select on loyverse.price_sync_status to loyverse_app;  -- sql/0950_grants_api.sql
