-- Price sync to Loyverse: rounding, the statement-level trigger on products feeding the coalesced
-- queue, the procrastinate wake-up, claim/lease/complete for workers, the SQL API, views, grants.
-- depends: 0002_foundation
-- (Generated from the sql/ files named below, in this order.)

-- ---------------------------------------------------------------------------------------
-- sql/0320_function_round_price.sql
-- ---------------------------------------------------------------------------------------
-- The price a restaurant sends to Loyverse: its rounding rule applied to our price, at the
-- account currency's decimals. Pure and immutable, so it can run inside the trigger's set.
create function loyverse.round_price(p_price numeric, p_rule text, p_decimal_places integer)
returns numeric
language sql
immutable
parallel safe
set search_path = ''
as $$
    -- The step of a rule is never finer than the currency allows: NEAREST_0.05 in a
    -- 1-decimal currency rounds to 0.1, every rule in a 0-decimal currency rounds to 1.
    select round(
        case p_rule
            when 'NONE' then p_price
            when 'NEAREST_0.05' then
                round(p_price / greatest(0.05, power(10::numeric, -p_decimal_places)))
                    * greatest(0.05, power(10::numeric, -p_decimal_places))
            when 'NEAREST_0.10' then
                round(p_price / greatest(0.10, power(10::numeric, -p_decimal_places)))
                    * greatest(0.10, power(10::numeric, -p_decimal_places))
            when 'UP' then
                ceil(p_price / greatest(0.10, power(10::numeric, -p_decimal_places)))
                    * greatest(0.10, power(10::numeric, -p_decimal_places))
            when 'DOWN' then
                floor(p_price / greatest(0.10, power(10::numeric, -p_decimal_places)))
                    * greatest(0.10, power(10::numeric, -p_decimal_places))
        end,
        p_decimal_places)
$$;
comment on function loyverse.round_price(numeric, text, integer) is
    'Price after a rounding rule, at the currency''s decimals. NONE: the currency''s decimals '
    '(half away from zero); NEAREST_0.05 / NEAREST_0.10: nearest multiple (ties away from zero); '
    'UP / DOWN: the next multiple of 0.10 at or above / at or below. A step finer than the '
    'currency allows becomes one unit of its last decimal (1 for 0-decimal currencies). '
    'Unknown rule: null.';

-- ---------------------------------------------------------------------------------------
-- sql/0322_function_price_sync_due_at.sql
-- ---------------------------------------------------------------------------------------
-- When a freshly queued change becomes due under a restaurant's sync frequency: the queue's
-- next_attempt_at carries the frequency, so one claim query serves every frequency.
create function loyverse.price_sync_due_at(p_frequency text)
returns timestamptz
language sql
stable
set search_path = ''
as $$
    select case p_frequency
        when 'REALTIME' then now()
        when 'BATCH_5MIN' then date_bin('5 minutes', now(), timestamptz '2000-01-01 00:00+00') + interval '5 minutes'
        when 'BATCH_HOURLY' then date_bin('1 hour', now(), timestamptz '2000-01-01 00:00+00') + interval '1 hour'
        else 'infinity'::timestamptz  -- MANUAL: only loyverse.trigger_price_sync() makes it due
    end
$$;
comment on function loyverse.price_sync_due_at(text) is
    'next_attempt_at of a new queue row: REALTIME now; BATCH_5MIN / BATCH_HOURLY the next 5-minute / '
    'hour boundary (UTC); MANUAL infinity (due only after an explicit trigger).';

-- ---------------------------------------------------------------------------------------
-- sql/0325_function_wake_price_sync.sql
-- ---------------------------------------------------------------------------------------
-- Wake the worker for one Loyverse account: defer procrastinate's sync_loyverse_prices job,
-- coalesced by a queueing lock per account (at most one queued job) and a lock per account
-- (one running job). The only place that knows procrastinate's composite type.
create function loyverse.wake_price_sync(p_account_id bigint)
returns boolean
language plpgsql
security definer
-- procrastinate's own functions name their tables unqualified: they need public on the path
-- (PostgreSQL 15 gives PUBLIC no CREATE on schema public, so this path is not hijackable).
set search_path = public, pg_temp
as $$
declare
    v_lock text := 'loyverse_price_sync:' || p_account_id;
begin
    -- Check first: a swallowed unique_violation costs a subtransaction, a sequence value
    -- and a dead tuple (STACK.md), and a queued job already drains everything due.
    if exists (select 1 from public.procrastinate_jobs j
                where j.queueing_lock = v_lock and j.status = 'todo') then
        return false;
    end if;
    begin
        perform public.procrastinate_defer_jobs_v1(array[
            row('price_sync', 'sync_loyverse_prices', 0, v_lock, v_lock,
                jsonb_build_object('account_id', p_account_id), null)::public.procrastinate_job_to_defer_v1]);
    exception when unique_violation then
        return false;  -- a concurrent transaction queued it first
    end;
    return true;
end;
$$;
comment on function loyverse.wake_price_sync(bigint) is
    'Queue one sync_loyverse_prices job for the account unless one is already queued; true when a job was queued.';

-- ---------------------------------------------------------------------------------------
-- sql/0330_function_tg_products__enqueue_price_sync.sql
-- ---------------------------------------------------------------------------------------
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

-- ---------------------------------------------------------------------------------------
-- sql/0335_function_enqueue_current_prices.sql
-- ---------------------------------------------------------------------------------------
-- Queue the database's current price of some products (manual full sync, retry, conflict
-- resolution, and a worker that lost its lease): the same upsert as the trigger, due now.
create function loyverse.enqueue_current_prices(p_product_ids uuid[], p_source text, p_priority_boost integer default 0)
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
               loyverse.round_price(p.price, s.price_rounding_rule, a.decimal_places) as price_to_send,
               s.priority + p_priority_boost as priority,
               s.max_attempts,
               not s.paused as wake
          from public.products p
          join loyverse.loyverse_item_mappings m on m.product_id = p.id
          join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id
          join loyverse.accounts a on a.id = m.account_id
         where p.id = any (p_product_ids)
           and s.enabled
           and s.sync_direction in ('TO_LOYVERSE', 'BIDIRECTIONAL')
    ), upserted as (
        insert into loyverse.loyverse_price_sync_queue as q
               (product_id, restaurant_id, account_id, source, priority, old_price, new_price,
                price_to_send, max_attempts, next_attempt_at)
        select w.product_id, w.restaurant_id, w.account_id, p_source, w.priority, w.old_price,
               w.new_price, w.price_to_send, w.max_attempts, now()
          from wanted w
        on conflict (product_id) where status = 'pending' do update
           set new_price = excluded.new_price,
               price_to_send = excluded.price_to_send,
               version = q.version + case when q.price_to_send = excluded.price_to_send then 0 else 1 end,
               source = excluded.source,
               priority = greatest(q.priority, excluded.priority),
               next_attempt_at = now(),
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
comment on function loyverse.enqueue_current_prices(uuid[], text, integer) is
    'Queue the current price of the given products (due now, priority raised by p_priority_boost) and '
    'wake their accounts; returns the rows queued. Skips products whose restaurant does not sync to Loyverse.';

-- ---------------------------------------------------------------------------------------
-- sql/0338_function_release_expired_price_sync_leases.sql
-- ---------------------------------------------------------------------------------------
-- Rows whose worker vanished (lease expired) become claimable again, counting an attempt;
-- one superseded by a newer pending change is cancelled (the newer row carries the price).
create function loyverse.release_expired_price_sync_leases(p_account_id bigint default null)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_count integer;
begin
    with expired as (
        select q.id,
               exists (select 1 from loyverse.loyverse_price_sync_queue p
                        where p.product_id = q.product_id and p.status = 'pending') as superseded
          from loyverse.loyverse_price_sync_queue q
         where q.status = 'processing'
           and q.lease_until < clock_timestamp()
           and (p_account_id is null or q.account_id = p_account_id)
           for update of q skip locked
    ), released as (
        update loyverse.loyverse_price_sync_queue q
           set status = case when e.superseded then 'cancelled'
                             when q.attempts + 1 >= q.max_attempts then 'dead'
                             else 'pending' end,
               attempts = q.attempts + 1,
               lease_until = null,
               claimed_by = null,
               last_error = case when e.superseded then 'lease expired; superseded by a newer change'
                                 else 'lease expired: the worker stopped or lost its connection' end,
               last_error_code = 'LEASE_EXPIRED',
               next_attempt_at = now(),
               completed_at = case when e.superseded or q.attempts + 1 >= q.max_attempts then now() end,
               updated_at = now()
          from expired e
         where q.id = e.id
        returning 1
    )
    select count(*) into v_count from released;
    return v_count;
exception when unique_violation then
    -- a trigger made a pending row for the same product meanwhile: try again next time
    return 0;
end;
$$;
comment on function loyverse.release_expired_price_sync_leases(bigint) is
    'Make processing rows with an expired lease claimable again (attempts + 1; dead at max_attempts; '
    'cancelled when a newer pending change exists). Returns the rows released.';

-- ---------------------------------------------------------------------------------------
-- sql/0340_function_claim_price_sync_batch.sql
-- ---------------------------------------------------------------------------------------
-- The worker's claim: due pending rows of ONE account, whole Loyverse items at a time
-- (every due row of each chosen item, so one write per item), highest priority first,
-- FOR UPDATE SKIP LOCKED, with a lease. A product with a row in flight is not claimed.
create function loyverse.claim_price_sync_batch(
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
begin
    if p_claimed_by is null or btrim(p_claimed_by) = '' then
        raise exception 'claim_price_sync_batch: p_claimed_by must not be empty'
            using errcode = 'invalid_parameter_value';
    end if;
    perform loyverse.release_expired_price_sync_leases(p_account_id);

    return query
    with top as (
        select q.id, m.loyverse_item_id as item, q.priority, q.next_attempt_at
          from loyverse.loyverse_price_sync_queue q
          join loyverse.loyverse_item_mappings m on m.product_id = q.product_id
          join loyverse.loyverse_price_sync_settings s on s.restaurant_id = q.restaurant_id
         where q.status = 'pending'
           and q.account_id = p_account_id
           and q.next_attempt_at <= now()
           and not s.paused
         order by q.priority desc, q.next_attempt_at, q.id
         limit p_scan_rows
    ), items as (
        select t.item
          from top t
         group by t.item
         order by max(t.priority) desc, min(t.next_attempt_at), min(t.id)
         limit p_max_items
    ), picked as (
        select q.id
          from loyverse.loyverse_price_sync_queue q
          join loyverse.loyverse_item_mappings m on m.product_id = q.product_id
          join loyverse.loyverse_price_sync_settings s on s.restaurant_id = q.restaurant_id
         where m.account_id = p_account_id
           and m.loyverse_item_id in (select i.item from items i)
           and q.status = 'pending'
           and q.account_id = p_account_id
           and q.next_attempt_at <= now()
           and not s.paused
           -- writes for one product never overlap: its older row is still in flight
           and not exists (select 1 from loyverse.loyverse_price_sync_queue f
                            where f.product_id = q.product_id and f.status = 'processing')
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
    'lease p_lease_seconds, claimed_by = p_claimed_by, a token unique to this claim). Releases expired leases first.';

-- ---------------------------------------------------------------------------------------
-- sql/0342_function_extend_price_sync_lease.sql
-- ---------------------------------------------------------------------------------------
-- A worker still busy with a batch (waiting for the rate budget) keeps its lease alive.
create function loyverse.extend_price_sync_lease(p_claimed_by text, p_lease_seconds double precision default 120)
returns integer
language sql
security definer
set search_path = ''
as $$
    with extended as (
        update loyverse.loyverse_price_sync_queue q
           set lease_until = clock_timestamp() + make_interval(secs => p_lease_seconds)
         where q.claimed_by = p_claimed_by and q.status = 'processing'
        returning 1
    )
    select count(*)::integer from extended
$$;
comment on function loyverse.extend_price_sync_lease(text, double precision) is
    'Extend the lease of a claim''s rows; returns how many rows the claim still holds (0: the lease was lost).';

-- ---------------------------------------------------------------------------------------
-- sql/0350_function_complete_price_sync_batch.sql
-- ---------------------------------------------------------------------------------------
-- The worker reports a claimed batch in one call: every row's outcome, applied atomically,
-- plus one loyverse_sync_logs row. Rows no longer held by this claim (lease lost) are left
-- alone; if we wrote them to Loyverse, the product's current price is queued again so the
-- final price is always the last one written.
create function loyverse.complete_price_sync_batch(
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

    -- done: verified in Loyverse
    update loyverse.loyverse_price_sync_queue q
       set status = 'done', lease_until = null, completed_at = now(), updated_at = now(),
           last_error = r.error, last_error_code = r.code, error_details = r.details
      from pg_temp.price_sync_results r
     where r.id = q.id and r.mine and r.outcome = 'done';
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
     where r.id = q.id and r.mine and r.outcome in ('retry', 'release');

    -- failed: not retryable (variant gone, validation, verification); the mapping is flagged
    update loyverse.loyverse_price_sync_queue q
       set status = 'failed', attempts = q.attempts + 1, lease_until = null, completed_at = now(),
           updated_at = now(), last_error = r.error, last_error_code = r.code, error_details = r.details
      from pg_temp.price_sync_results r
     where r.id = q.id and r.mine and r.outcome = 'failed';
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
    'Rows lost by this claim are not touched; the ones we wrote are queued again.';

-- ---------------------------------------------------------------------------------------
-- sql/0352_function_price_sync_restaurant.sql
-- ---------------------------------------------------------------------------------------
-- Internal helper of the SQL API: the settings row of a restaurant, or an error naming the field.
create function loyverse._price_sync_restaurant(p_restaurant_id uuid)
returns loyverse.loyverse_price_sync_settings
language plpgsql
stable
set search_path = ''
as $$
declare
    v_settings loyverse.loyverse_price_sync_settings;
begin
    if p_restaurant_id is null then
        raise exception 'restaurant: required' using errcode = 'invalid_parameter_value', column = 'restaurant';
    end if;
    select * into v_settings from loyverse.loyverse_price_sync_settings s where s.restaurant_id = p_restaurant_id;
    if not found then
        if not exists (select 1 from public.restaurants r where r.id = p_restaurant_id) then
            raise exception 'restaurant: no restaurant with id %', p_restaurant_id
                using errcode = 'no_data_found', column = 'restaurant';
        end if;
        raise exception 'restaurant: % is not linked to a Loyverse store (no price-sync settings)', p_restaurant_id
            using errcode = 'no_data_found', column = 'restaurant';
    end if;
    return v_settings;
end;
$$;
comment on function loyverse._price_sync_restaurant(uuid) is
    'Internal: the price-sync settings row of a restaurant; raises an error naming "restaurant" when there is none.';

-- ---------------------------------------------------------------------------------------
-- sql/0355_function_trigger_price_sync.sql
-- ---------------------------------------------------------------------------------------
-- SQL API: "sync this restaurant now". Its pending rows become due at once with a priority
-- above routine changes; p_full also queues every mapped product whose price in Loyverse
-- (as last synced) differs from ours, or was never synced.
create function loyverse.trigger_price_sync(p_restaurant_id uuid, p_full boolean default false)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_settings loyverse.loyverse_price_sync_settings := loyverse._price_sync_restaurant(p_restaurant_id);
    v_account bigint;
    v_count integer;
begin
    if not v_settings.enabled or v_settings.sync_direction = 'FROM_LOYVERSE' then
        raise exception 'restaurant: price sync to Loyverse is disabled for % (enabled=%, sync_direction=%)',
            p_restaurant_id, v_settings.enabled, v_settings.sync_direction
            using errcode = 'object_not_in_prerequisite_state', column = 'restaurant';
    end if;
    if v_settings.paused then
        raise exception 'restaurant: price sync is paused for %; resume it first', p_restaurant_id
            using errcode = 'object_not_in_prerequisite_state', column = 'restaurant';
    end if;
    select l.account_id into v_account from loyverse.loyverse_restaurant_links l where l.restaurant_id = p_restaurant_id;

    if p_full then
        perform loyverse.enqueue_current_prices(array(
            select m.product_id
              from loyverse.loyverse_item_mappings m
              join public.products p on p.id = m.product_id
              join loyverse.accounts a on a.id = m.account_id
             where m.restaurant_id = p_restaurant_id
               and m.last_synced_price is distinct from
                   round(loyverse.round_price(p.price, v_settings.price_rounding_rule, a.decimal_places), 2)
               and not exists (select 1 from loyverse.loyverse_price_sync_queue q
                                where q.product_id = m.product_id and q.status in ('pending', 'processing', 'conflict'))),
            'manual', 200);
    end if;

    update loyverse.loyverse_price_sync_queue q
       set next_attempt_at = now(),
           priority = greatest(q.priority, v_settings.priority + 200),
           updated_at = now()
     where q.restaurant_id = p_restaurant_id and q.status = 'pending';
    get diagnostics v_count = row_count;

    insert into loyverse.loyverse_sync_logs (restaurant_id, account_id, sync_type, status, items_total, details, completed_at)
    values (p_restaurant_id, v_account, 'MANUAL_TRIGGER', 'SUCCESS', v_count,
            jsonb_build_object('full', p_full), now());
    if v_count > 0 and v_account is not null then
        perform loyverse.wake_price_sync(v_account);
    end if;
    return v_count;
end;
$$;
comment on function loyverse.trigger_price_sync(uuid, boolean) is
    'Sync a restaurant now: its pending changes become due with priority + 200 (p_full: also queue every '
    'mapped product not known to be in sync). Returns the rows due. Example: select loyverse.trigger_price_sync(''<uuid>'');';

-- ---------------------------------------------------------------------------------------
-- sql/0360_function_retry_price_sync.sql
-- ---------------------------------------------------------------------------------------
-- SQL API: retry failed and dead-lettered changes. The old rows are closed as 'cancelled'
-- (their error stays readable) and the product's CURRENT price is queued, due now, with a
-- priority above routine changes.
create function loyverse.retry_price_sync(
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
    if p_product_id is not null and not exists (select 1 from public.products p where p.id = p_product_id) then
        raise exception 'product: no product with id %', p_product_id
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

-- ---------------------------------------------------------------------------------------
-- sql/0365_function_price_sync_settings.sql
-- ---------------------------------------------------------------------------------------
-- SQL API: a restaurant's price-sync settings as one jsonb document.
create function loyverse.price_sync_settings(p_restaurant_id uuid)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return to_jsonb(loyverse._price_sync_restaurant(p_restaurant_id)) - 'created_at';
end;
$$;
comment on function loyverse.price_sync_settings(uuid) is
    'A restaurant''s price-sync settings as jsonb. Example: select loyverse.price_sync_settings(''<uuid>'');';

-- ---------------------------------------------------------------------------------------
-- sql/0366_function_update_price_sync_settings.sql
-- ---------------------------------------------------------------------------------------
-- SQL API: change some price-sync settings of a restaurant. Every key is validated; a bad
-- one raises an error naming it (diagnostics column = the key) and nothing changes. Pending
-- rows follow the new settings (frequency, rounding, disabled).
create function loyverse.update_price_sync_settings(p_restaurant_id uuid, p_changes jsonb)
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
    v_account bigint;
    v_editable constant text[] := array['enabled', 'sync_direction', 'sync_frequency', 'include_category_ids',
        'exclude_category_ids', 'price_rounding_rule', 'notify_on_error', 'notification_email', 'max_attempts',
        'priority', 'prices_include_tax', 'alert_failure_rate', 'alert_queue_depth',
        'alert_oldest_pending_seconds', 'alert_dead_letters'];
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
            when 'notify_on_error_needs_an_email' then 'notification_email'
            when 'categories_are_not_both_included_and_excluded' then 'exclude_category_ids'
            else 'settings' end;
        raise exception '%: invalid value (%)', v_field, v_constraint
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
               set price_to_send = loyverse.round_price(q.new_price, v_new.price_rounding_rule, a.decimal_places),
                   version = q.version + 1, updated_at = now()
              from loyverse.accounts a
             where a.id = q.account_id and q.restaurant_id = p_restaurant_id and q.status = 'pending';
        end if;
        if v_new.sync_frequency <> v_old.sync_frequency then
            update loyverse.loyverse_price_sync_queue q
               set next_attempt_at = loyverse.price_sync_due_at(v_new.sync_frequency), updated_at = now()
             where q.restaurant_id = p_restaurant_id and q.status = 'pending' and q.attempts = 0
               and q.source = 'trigger';
            if v_new.sync_frequency = 'REALTIME' and not v_new.paused then
                select l.account_id into v_account from loyverse.loyverse_restaurant_links l
                 where l.restaurant_id = p_restaurant_id;
                if v_account is not null then
                    perform loyverse.wake_price_sync(v_account);
                end if;
            end if;
        end if;
    end if;
    return loyverse.price_sync_settings(p_restaurant_id);
end;
$$;
comment on function loyverse.update_price_sync_settings(uuid, jsonb) is
    'Change price-sync settings: p_changes = {"setting": value, ...}. Validated; an error names the field '
    '(its message starts with it; diagnostics column too) and nothing changes. Returns the new settings. '
    'Example: select loyverse.update_price_sync_settings(''<uuid>'', ''{"price_rounding_rule": "UP"}'');';

-- ---------------------------------------------------------------------------------------
-- sql/0370_function_pause_price_sync.sql
-- ---------------------------------------------------------------------------------------
-- SQL API: pause a restaurant's price sync. Changes keep being queued; nothing is sent.
create function loyverse.pause_price_sync(p_restaurant_id uuid)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_settings loyverse.loyverse_price_sync_settings := loyverse._price_sync_restaurant(p_restaurant_id);
begin
    if v_settings.paused then
        return false;
    end if;
    update loyverse.loyverse_price_sync_settings s
       set paused = true, paused_at = now(), updated_at = now()
     where s.restaurant_id = p_restaurant_id;
    return true;
end;
$$;
comment on function loyverse.pause_price_sync(uuid) is
    'Pause a restaurant''s price sync (changes are still queued, none is sent); false when already paused.';

-- ---------------------------------------------------------------------------------------
-- sql/0371_function_resume_price_sync.sql
-- ---------------------------------------------------------------------------------------
-- SQL API: resume a paused restaurant; what is due is sent at once.
create function loyverse.resume_price_sync(p_restaurant_id uuid)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_settings loyverse.loyverse_price_sync_settings := loyverse._price_sync_restaurant(p_restaurant_id);
    v_account bigint;
begin
    if not v_settings.paused then
        return false;
    end if;
    update loyverse.loyverse_price_sync_settings s
       set paused = false, paused_at = null, updated_at = now()
     where s.restaurant_id = p_restaurant_id;
    select q.account_id into v_account from loyverse.loyverse_price_sync_queue q
     where q.restaurant_id = p_restaurant_id and q.status = 'pending' and q.next_attempt_at <= now()
     limit 1;
    if v_account is not null then
        perform loyverse.wake_price_sync(v_account);
    end if;
    return true;
end;
$$;
comment on function loyverse.resume_price_sync(uuid) is
    'Resume a paused restaurant''s price sync and wake its worker; false when it was not paused.';

-- ---------------------------------------------------------------------------------------
-- sql/0375_function_resolve_price_sync_conflicts.sql
-- ---------------------------------------------------------------------------------------
-- SQL API: decide held conflicts (BIDIRECTIONAL restaurants, price edited in Loyverse).
-- ours: push our current price (overwriting Loyverse). theirs: take Loyverse's price into
-- our product (marked as coming from Loyverse, so it is not queued back).
create function loyverse.resolve_price_sync_conflicts(p_restaurant_id uuid, p_keep text, p_product_id uuid default null)
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

-- ---------------------------------------------------------------------------------------
-- sql/0380_function_sweep_price_sync.sql
-- ---------------------------------------------------------------------------------------
-- The periodic safety net (every minute, from the worker's periodic task): release expired
-- leases, close pending rows whose product lost its mapping, and wake every account with
-- due rows (BATCH_* restaurants at their boundary, backoffs that ended, lost wake-ups).
create function loyverse.sweep_price_sync()
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_released integer;
    v_orphans integer;
    v_woken integer := 0;
    v_account bigint;
begin
    v_released := loyverse.release_expired_price_sync_leases(null);
    update loyverse.loyverse_price_sync_queue q
       set status = 'cancelled', completed_at = now(), updated_at = now(),
           last_error = 'product no longer mapped to Loyverse'
     where q.status = 'pending'
       and not exists (select 1 from loyverse.loyverse_item_mappings m where m.product_id = q.product_id);
    get diagnostics v_orphans = row_count;
    for v_account in
        select distinct q.account_id
          from loyverse.loyverse_price_sync_queue q
          join loyverse.loyverse_price_sync_settings s on s.restaurant_id = q.restaurant_id
         where q.status = 'pending' and q.next_attempt_at <= now() and not s.paused
    loop
        if loyverse.wake_price_sync(v_account) then
            v_woken := v_woken + 1;
        end if;
    end loop;
    return jsonb_build_object('released', v_released, 'orphans', v_orphans, 'woken', v_woken);
end;
$$;
comment on function loyverse.sweep_price_sync() is
    'Periodic safety net: release expired leases, cancel unmapped pending rows, wake accounts with due rows.';

-- ---------------------------------------------------------------------------------------
-- sql/0385_function_prune_price_sync_queue.sql
-- ---------------------------------------------------------------------------------------
-- Retention: completed rows (done, cancelled) older than p_older_than are deleted in
-- bounded chunks; failed, dead and conflict rows stay until retried or resolved.
create function loyverse.prune_price_sync_queue(p_older_than interval default '7 days', p_limit integer default 50000)
returns integer
language sql
security definer
set search_path = ''
as $$
    with doomed as (
        select q.id from loyverse.loyverse_price_sync_queue q
         where q.status in ('done', 'cancelled') and q.completed_at < now() - p_older_than
         order by q.completed_at
         limit p_limit
    ), deleted as (
        delete from loyverse.loyverse_price_sync_queue q using doomed d where q.id = d.id returning 1
    )
    select count(*)::integer from deleted
$$;
comment on function loyverse.prune_price_sync_queue(interval, integer) is
    'Delete done and cancelled queue rows completed more than p_older_than ago (at most p_limit per call).';

-- ---------------------------------------------------------------------------------------
-- sql/0390_function_enqueue_price_sync_digests.sql
-- ---------------------------------------------------------------------------------------
-- Notifications: one error digest per restaurant (notify_on_error) per interval, listing the
-- changes that failed or were dead-lettered since its previous digest. dedupe_key makes a
-- second call in the same interval a no-op.
create function loyverse.enqueue_price_sync_digests(p_interval interval default '1 hour')
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

-- ---------------------------------------------------------------------------------------
-- sql/0420_trigger_products_price_sync.sql
-- ---------------------------------------------------------------------------------------
-- Price changes on public.products feed the price-sync queue. Only UPDATE: a mapping
-- references an existing product, so an inserted product is never mapped yet (an INSERT
-- ... ON CONFLICT DO UPDATE fires this UPDATE trigger for the rows it updates).
create trigger _100_enqueue_price_sync
    after update on public.products
    referencing old table as old_rows new table as new_rows
    for each statement
    execute function loyverse.tg_products__enqueue_price_sync();
comment on trigger _100_enqueue_price_sync on public.products is
    'Queues price changes for the Loyverse price sync (statement-level, transition tables).';

-- ---------------------------------------------------------------------------------------
-- sql/0520_view_price_sync_status.sql
-- ---------------------------------------------------------------------------------------
-- Per-restaurant price-sync status for DBAs and the CLI (`sync status`).
create view loyverse.price_sync_status as
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
       q.last_success_at,
       coalesce(q.synced_last_hour, 0) as synced_last_hour,
       round(q.synced_last_hour::numeric / nullif(q.finished_last_hour, 0), 3) as success_rate_last_hour,
       coalesce(q.synced_last_day, 0) as synced_last_day,
       round(q.synced_last_day::numeric / nullif(q.finished_last_day, 0), 3) as success_rate_last_day,
       coalesce(rate.requests_last_5min, 0) / 5.0 as requests_per_minute,
       round((a.rate_limit_requests * 60 / a.rate_limit_window_seconds)::numeric, 1) as budget_per_minute
  from public.restaurants r
  join loyverse.loyverse_price_sync_settings s on s.restaurant_id = r.id
  left join loyverse.loyverse_restaurant_links l on l.restaurant_id = r.id
  left join loyverse.accounts a on a.id = l.account_id
  left join lateral (
      select count(*) filter (where x.status = 'pending') as pending,
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
       where x.restaurant_id = r.id
         and (x.status in ('pending', 'processing', 'failed', 'dead', 'conflict')
              or x.completed_at > now() - interval '1 day'
              or x.id = (select max(y.id) from loyverse.loyverse_price_sync_queue y
                          where y.restaurant_id = r.id and y.status = 'done'))
  ) q on true
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

-- ---------------------------------------------------------------------------------------
-- sql/0525_view_price_sync_history.sql
-- ---------------------------------------------------------------------------------------
-- Sync history: one row per price-sync batch, manual trigger and retry.
create view loyverse.price_sync_history as
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

-- ---------------------------------------------------------------------------------------
-- sql/0530_view_price_sync_problems.sql
-- ---------------------------------------------------------------------------------------
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

-- ---------------------------------------------------------------------------------------
-- sql/0535_view_price_sync_queue_health.sql
-- ---------------------------------------------------------------------------------------
-- Queue health per account: backlog, leases, and the procrastinate jobs that drain it.
create view loyverse.price_sync_queue_health as
select a.id as account_id,
       a.name as account_name,
       coalesce(q.pending, 0) as pending,
       coalesce(q.due, 0) as due,
       coalesce(q.processing, 0) as processing,
       coalesce(q.expired_leases, 0) as expired_leases,
       coalesce(q.retrying, 0) as retrying,
       now() - q.oldest_due as oldest_due_age,
       (select count(*) from public.procrastinate_jobs j
         where j.queueing_lock = 'loyverse_price_sync:' || a.id and j.status = 'todo') as jobs_queued,
       (select count(*) from public.procrastinate_jobs j
         where j.lock = 'loyverse_price_sync:' || a.id and j.status = 'doing') as jobs_running,
       st.throttled_until,
       st.rate_limited_total
  from loyverse.accounts a
  left join loyverse.account_rate_state st on st.account_id = a.id
  left join lateral (
      select count(*) filter (where x.status = 'pending') as pending,
             count(*) filter (where x.status = 'pending' and x.next_attempt_at <= now()) as due,
             count(*) filter (where x.status = 'processing') as processing,
             count(*) filter (where x.status = 'processing' and x.lease_until < now()) as expired_leases,
             count(*) filter (where x.status = 'pending' and x.attempts > 0) as retrying,
             min(x.next_attempt_at) filter (where x.status = 'pending' and x.next_attempt_at <= now()) as oldest_due
        from loyverse.loyverse_price_sync_queue x
       where x.account_id = a.id and x.status in ('pending', 'processing')
  ) q on true;
comment on view loyverse.price_sync_queue_health is
    'Per account: pending / due / processing rows, expired leases (a worker died; the next claim or sweep '
    'frees them), rows retrying, age of the oldest due row, queued and running sync jobs, 429 state.';

-- ---------------------------------------------------------------------------------------
-- sql/0920_grants_price_sync.sql
-- ---------------------------------------------------------------------------------------
-- Grants of the price-sync objects. Functions are not executable by PUBLIC; the SQL API is
-- for the main app (loyverse_app) and the worker/CLI (loyverse_worker); the views are what
-- loyverse_readonly may read.
revoke execute on function
    loyverse.round_price(numeric, text, integer),
    loyverse.price_sync_due_at(text),
    loyverse.wake_price_sync(bigint),
    loyverse.tg_products__enqueue_price_sync(),
    loyverse.enqueue_current_prices(uuid[], text, integer),
    loyverse.release_expired_price_sync_leases(bigint),
    loyverse.claim_price_sync_batch(bigint, text, integer, double precision, integer),
    loyverse.extend_price_sync_lease(text, double precision),
    loyverse.complete_price_sync_batch(text, jsonb, integer, jsonb, timestamptz, double precision, double precision),
    loyverse._price_sync_restaurant(uuid),
    loyverse.trigger_price_sync(uuid, boolean),
    loyverse.retry_price_sync(uuid, uuid, text),
    loyverse.price_sync_settings(uuid),
    loyverse.update_price_sync_settings(uuid, jsonb),
    loyverse.pause_price_sync(uuid),
    loyverse.resume_price_sync(uuid),
    loyverse.resolve_price_sync_conflicts(uuid, text, uuid),
    loyverse.sweep_price_sync(),
    loyverse.prune_price_sync_queue(interval, integer),
    loyverse.enqueue_price_sync_digests(interval)
  from public;

grant execute on function
    loyverse.round_price(numeric, text, integer),
    loyverse.trigger_price_sync(uuid, boolean),
    loyverse.retry_price_sync(uuid, uuid, text),
    loyverse.price_sync_settings(uuid),
    loyverse.update_price_sync_settings(uuid, jsonb),
    loyverse.pause_price_sync(uuid),
    loyverse.resume_price_sync(uuid),
    loyverse.resolve_price_sync_conflicts(uuid, text, uuid)
  to loyverse_app, loyverse_worker;

grant execute on function
    loyverse.price_sync_due_at(text),
    loyverse.wake_price_sync(bigint),
    loyverse.enqueue_current_prices(uuid[], text, integer),
    loyverse.release_expired_price_sync_leases(bigint),
    loyverse.claim_price_sync_batch(bigint, text, integer, double precision, integer),
    loyverse.extend_price_sync_lease(text, double precision),
    loyverse.complete_price_sync_batch(text, jsonb, integer, jsonb, timestamptz, double precision, double precision),
    loyverse.sweep_price_sync(),
    loyverse.prune_price_sync_queue(interval, integer),
    loyverse.enqueue_price_sync_digests(interval)
  to loyverse_worker;

-- (revoke first: in a build from sql/, 0900's "all tables in schema" grant already reached them)
revoke all on loyverse.price_sync_status, loyverse.price_sync_history, loyverse.price_sync_problems,
    loyverse.price_sync_queue_health
  from loyverse_app, loyverse_worker, loyverse_readonly;
grant select on loyverse.price_sync_status, loyverse.price_sync_history, loyverse.price_sync_problems,
    loyverse.price_sync_queue_health
  to loyverse_readonly, loyverse_worker;

