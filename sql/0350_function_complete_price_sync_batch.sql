-- The worker reports a claimed batch in one call: every row's outcome, applied atomically,
-- plus one loyverse_sync_logs row. Rows no longer held by this claim (lease lost) are left
-- alone; if we wrote them to Loyverse, the product's current price is queued again so the
-- final price is always the last one written. The rows entering done, failed or dead are
-- added to loyverse.loyverse_price_sync_outcome_totals here, one statement per outcome; the
-- SET clause loyverse_sync.outcomes_counted tells the queue's row trigger not to count them
-- one by one. A retry's wait comes from the row's restaurant settings (backoff_base_seconds,
-- backoff_cap_seconds), beside max_attempts: the database owns the whole retry policy of a row.
create function loyverse.complete_price_sync_batch(
    p_claimed_by text,
    p_results jsonb,
    p_requests_made integer default 0,
    p_details jsonb default '{}',
    p_started_at timestamptz default null
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
           -- the price we hold is now in Loyverse: that resolves a failed sync's flag, never
           -- a VARIABLE price's (a mapping turned VARIABLE while the row was in flight)
           needs_attention = case when m.loyverse_pricing_type = 'FIXED' then false else m.needs_attention end,
           attention_reason = case when m.loyverse_pricing_type = 'FIXED' then null else m.attention_reason end,
           updated_at = now()
      from pg_temp.price_sync_results r
      join loyverse.loyverse_price_sync_queue q on q.id = r.id
     where r.mine and r.outcome = 'done' and m.product_id = q.product_id;

    -- retry (429, 5xx, timeouts) and release (graceful stop, not an attempt): back to pending,
    -- unless a newer change is pending already, which then carries the price. A retry waits
    -- min(cap, base * 2^attempts) * (0.5..1.0) s, from its restaurant's settings (the
    -- defaults when the settings row is gone); the worker books a wake for that moment.
    with moved as (
        update loyverse.loyverse_price_sync_queue q
           set status = case when r.superseded then 'cancelled'
                             when r.outcome = 'retry' and q.attempts + 1 >= q.max_attempts then 'dead'
                             else 'pending' end,
               attempts = q.attempts + case when r.outcome = 'retry' then 1 else 0 end,
               next_attempt_at = case when r.outcome = 'release' then now()
                                      else now() + make_interval(secs =>
                                          least(coalesce(s.backoff_cap_seconds, 900),
                                                coalesce(s.backoff_base_seconds, 2) * power(2, q.attempts))
                                          * (0.5 + random() * 0.5)) end,
               lease_until = null,
               claimed_by = null,
               last_error = case when r.superseded then coalesce(r.error || '; ', '') || 'superseded by a newer change'
                                 else coalesce(r.error, q.last_error) end,
               last_error_code = coalesce(r.code, q.last_error_code),
               error_details = coalesce(r.details, q.error_details),
               in_doubt_prices = case when r.sent and r.outcome = 'retry' then q.in_doubt_prices || q.price_to_send
                                      else q.in_doubt_prices end,
               completed_at = case when r.superseded or (r.outcome = 'retry' and q.attempts + 1 >= q.max_attempts)
                                   then now() end,
               updated_at = now()
          from pg_temp.price_sync_results r
          left join loyverse.loyverse_price_sync_settings s on s.restaurant_id = r.restaurant_id
         where r.id = q.id and r.mine and r.outcome in ('retry', 'release')
        returning q.restaurant_id, q.status
    )
    select loyverse._add_outcome_totals(array_agg(m.restaurant_id), array_agg(m.status))
      into v_ignored
      from moved m;

    -- failed: not retryable (variant gone, validation, verification); the mapping is flagged,
    -- and a price found VARIABLE in Loyverse (set so at the counter or in the back office) makes
    -- the mapping VARIABLE: it is not queued again until a person makes it fixed
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
           loyverse_pricing_type = case when r.code = 'VARIABLE_IN_LOYVERSE' then 'VARIABLE'
                                        else m.loyverse_pricing_type end,
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

    -- A newer price of ours written to Loyverse makes an older held conflict of the product
    -- moot: it compared an older price of ours with a Loyverse price this write replaced.
    -- (Found by the two-way chaos test under `latest`: both sides equal, a stale conflict left.)
    update loyverse.loyverse_price_sync_queue q
       set status = 'cancelled', completed_at = now(), updated_at = now(),
           last_error = 'conflict superseded: a newer price of ours was written to Loyverse'
      from pg_temp.price_sync_results r
     where r.mine and r.outcome = 'done' and q.product_id = r.product_id
       and q.status = 'conflict' and q.id < r.id;

    if v_lost_products is not null then
        perform loyverse.enqueue_current_prices(v_lost_products, 'requeue', 0);
    end if;

    -- A write that may have landed goes with the product's pending row as in doubt (as for an
    -- expired lease), so that Loyverse showing it is no edit at the counter: one sent without
    -- an answer (timeout, dropped connection; retried above, which put it in its own row's
    -- in_doubt_prices) that a newer change superseded, and one that went out after its claim
    -- was lost (found by the two-way chaos test under load: the requeue carried a price
    -- Loyverse had sent meanwhile, over our late write, whose webhook then looked newer).
    update loyverse.loyverse_price_sync_queue p
       set in_doubt_prices = p.in_doubt_prices
                             || case when r.mine then q.in_doubt_prices else array[q.price_to_send] end
      from pg_temp.price_sync_results r
      join loyverse.loyverse_price_sync_queue q on q.id = r.id
     where r.sent and p.product_id = q.product_id and p.status = 'pending' and p.id <> q.id
       and (r.mine is not true or (r.outcome = 'retry' and r.superseded));

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
comment on function loyverse.complete_price_sync_batch(text, jsonb, integer, jsonb, timestamptz) is
    'Apply a worker''s outcomes for one claim (done / retry after the restaurant''s backoff '
    '(backoff_base_seconds, backoff_cap_seconds) with jitter, dead at '
    'max_attempts / failed / conflict / release / cancel), update the mappings, write one sync log row. '
    'Rows lost by this claim are not touched; the ones we wrote are queued again. Adds the rows that '
    'entered done, failed or dead to loyverse.loyverse_price_sync_outcome_totals.';
