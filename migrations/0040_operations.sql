-- Operators' view: Loyverse API response times aggregated per minute (for p50/p95 in views
-- and metrics, never a row per request), alert state with breach/recovery notifications,
-- and the views the dashboard, `health` and `metrics` read.
-- depends: 0002_foundation 0020_price_sync

create table loyverse.loyverse_api_call_stats (
    account_id bigint not null references loyverse.accounts (id) on delete cascade,
    bucket_start timestamptz not null,
    method text not null,
    endpoint text not null,
    status integer not null,
    calls bigint not null default 0
        constraint api_calls_is_nonnegative check (calls >= 0),
    total_seconds double precision not null default 0,
    max_seconds double precision not null default 0,
    latency_buckets bigint[] not null default '{0,0,0,0,0,0,0,0,0,0}',
    constraint loyverse_api_call_stats_pkey primary key (account_id, bucket_start, method, endpoint, status),
    constraint latency_buckets_has_ten_bounds check (cardinality(latency_buckets) = 10)
);
create index loyverse_api_call_stats_bucket_start_idx on loyverse.loyverse_api_call_stats (bucket_start);
comment on table loyverse.loyverse_api_call_stats is
    'Loyverse API calls per account, minute, method, endpoint and HTTP status (0 = no response). '
    'latency_buckets counts calls at or under 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 s and above. '
    'Internal: query loyverse.api_latency.';

create function loyverse.latency_bounds()
returns double precision[]
language sql
immutable
parallel safe
set search_path = ''
as $$
    select array[0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 'Infinity']::double precision[]
$$;
comment on function loyverse.latency_bounds() is 'Upper bounds (seconds) of loyverse_api_call_stats.latency_buckets.';

create function loyverse.record_api_calls(p_account_id bigint, p_calls jsonb)
returns integer
language plpgsql
set search_path = ''
as $$
-- p_calls: [{"method": "GET", "endpoint": "/items", "status": 200, "seconds": 0.12, "at": "..."}].
-- Aggregated set-based into minute buckets; returns the number of calls recorded.
declare
    v_bounds double precision[] := loyverse.latency_bounds();
begin
    if jsonb_typeof(p_calls) is distinct from 'array' then
        raise exception 'record_api_calls: p_calls must be a JSON array, got %', jsonb_typeof(p_calls)
            using errcode = 'invalid_parameter_value';
    end if;
    with calls as (
        select date_trunc('minute', coalesce((c ->> 'at')::timestamptz, now())) as bucket_start,
               upper(c ->> 'method') as method,
               c ->> 'endpoint' as endpoint,
               coalesce((c ->> 'status')::integer, 0) as status,
               greatest(coalesce((c ->> 'seconds')::double precision, 0), 0) as seconds
          from jsonb_array_elements(p_calls) c
    ), bucketed as (
        select c.*, (select min(i) from generate_series(1, 10) i where c.seconds <= v_bounds[i]) as bucket
          from calls c
    )
    insert into loyverse.loyverse_api_call_stats as s
        (account_id, bucket_start, method, endpoint, status, calls, total_seconds, max_seconds, latency_buckets)
    select p_account_id, b.bucket_start, b.method, b.endpoint, b.status,
           count(*), sum(b.seconds), max(b.seconds),
           array[count(*) filter (where b.bucket = 1), count(*) filter (where b.bucket = 2),
                 count(*) filter (where b.bucket = 3), count(*) filter (where b.bucket = 4),
                 count(*) filter (where b.bucket = 5), count(*) filter (where b.bucket = 6),
                 count(*) filter (where b.bucket = 7), count(*) filter (where b.bucket = 8),
                 count(*) filter (where b.bucket = 9), count(*) filter (where b.bucket = 10)]
      from bucketed b
     group by b.bucket_start, b.method, b.endpoint, b.status
    on conflict (account_id, bucket_start, method, endpoint, status) do update
       set calls = s.calls + excluded.calls,
           total_seconds = s.total_seconds + excluded.total_seconds,
           max_seconds = greatest(s.max_seconds, excluded.max_seconds),
           latency_buckets = array(select x.a + x.b
                                     from unnest(s.latency_buckets, excluded.latency_buckets) with ordinality x(a, b, n)
                                    order by x.n);
    return jsonb_array_length(p_calls);
end;
$$;
comment on function loyverse.record_api_calls(bigint, jsonb) is
    'Add Loyverse API calls (method, endpoint, status, seconds) to the per-minute statistics of an account.';

create function loyverse._latency_quantile(p_buckets bigint[], p_q double precision)
returns double precision
language sql
immutable
parallel safe
set search_path = ''
as $$
    -- The upper bound of the first bucket whose cumulative count reaches q of the total
    -- (a histogram quantile, as Prometheus computes it without interpolation).
    select (loyverse.latency_bounds())[min(x.n)]
      from (select n, sum(c) over (order by n) as cum, sum(c) over () as total
              from unnest(p_buckets) with ordinality u(c, n)) x
     where x.total > 0 and x.cum >= p_q * x.total
$$;
comment on function loyverse._latency_quantile(bigint[], double precision) is
    'Internal: quantile (upper bucket bound, seconds) of a latency_buckets histogram.';

create function loyverse._sum_buckets(p_a bigint[], p_b bigint[])
returns bigint[]
language sql
immutable
parallel safe
set search_path = ''
as $$
    select array(select coalesce(x.a, 0) + coalesce(x.b, 0)
                   from unnest(p_a, p_b) with ordinality x(a, b, n) order by x.n)
$$;

create aggregate loyverse.sum_buckets(bigint[]) (
    sfunc = loyverse._sum_buckets,
    stype = bigint[],
    initcond = '{0,0,0,0,0,0,0,0,0,0}'
);
comment on aggregate loyverse.sum_buckets(bigint[]) is 'Element-wise sum of latency histograms.';

create view loyverse.api_latency as
select s.account_id,
       a.name as account_name,
       s.method,
       s.endpoint,
       sum(s.calls) as calls,
       sum(s.calls) filter (where s.status between 200 and 299) as ok,
       sum(s.calls) filter (where s.status = 429) as rate_limited,
       sum(s.calls) filter (where s.status >= 500 or s.status = 0) as server_or_network_errors,
       round((sum(s.total_seconds) / nullif(sum(s.calls), 0))::numeric, 4) as mean_seconds,
       loyverse._latency_quantile(loyverse.sum_buckets(s.latency_buckets), 0.5) as p50_seconds,
       loyverse._latency_quantile(loyverse.sum_buckets(s.latency_buckets), 0.95) as p95_seconds,
       max(s.max_seconds) as max_seconds
  from loyverse.loyverse_api_call_stats s
  join loyverse.accounts a on a.id = s.account_id
 where s.bucket_start > now() - interval '1 hour'
 group by s.account_id, a.name, s.method, s.endpoint;
comment on view loyverse.api_latency is
    'Loyverse API calls of the last hour per account, method and endpoint: counts by outcome, mean, '
    'p50 and p95 (upper bound of the histogram bucket) and max response time in seconds.';
comment on column loyverse.api_latency.p95_seconds is 'Histogram quantile: 95% of calls took at most this long.';

-- ---------------------------------------------------------------------------------------
-- Alerts: thresholds live in loyverse_price_sync_settings (alert_*); evaluate_alerts()
-- compares loyverse.price_sync_status with them, remembers what is breached, and puts one
-- ALERT per breach and one RECOVERY per recovery into the notification outbox.
-- ---------------------------------------------------------------------------------------
create table loyverse.loyverse_alert_state (
    restaurant_id uuid not null references public.restaurants (id) on delete cascade,
    alert text not null
        constraint alert_is_known check (alert in ('FAILURE_RATE', 'QUEUE_DEPTH', 'OLDEST_PENDING', 'DEAD_LETTERS')),
    breached_at timestamptz not null default now(),
    recovered_at timestamptz,
    value double precision,
    threshold double precision,
    constraint loyverse_alert_state_pkey primary key (restaurant_id, alert, breached_at)
);
create unique index loyverse_alert_state_open_idx on loyverse.loyverse_alert_state (restaurant_id, alert)
    where recovered_at is null;
comment on table loyverse.loyverse_alert_state is 'Alert breaches per restaurant: open while recovered_at is null.';

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
      ('DEAD_LETTERS', st.dead::double precision, s.alert_dead_letters::double precision)
  ) m(alert, value, threshold)
 where s.enabled and not s.paused;
comment on view loyverse.alert_measurements is
    'Each restaurant''s alert conditions now: the measured value, its threshold from the settings, breached or not.';

create function loyverse.evaluate_alerts()
returns table (restaurant_id uuid, alert text, change text, value double precision)
language plpgsql
set search_path = ''
as $$
-- Open a breach (and queue an ALERT email) for every condition newly over its threshold;
-- close it (and queue a RECOVERY email) when it is back under. Once per breach, whatever
-- how often this runs: the open breach is remembered in loyverse_alert_state.
begin
    create temporary table if not exists pg_temp.alert_changes (
        restaurant_id uuid, alert text, change text, value double precision, threshold double precision
    ) on commit drop;
    truncate pg_temp.alert_changes;

    with opened as (
        insert into loyverse.loyverse_alert_state as a (restaurant_id, alert, value, threshold)
        select m.restaurant_id, m.alert, m.value, m.threshold
          from loyverse.alert_measurements m
         where m.breached
           and not exists (select 1 from loyverse.loyverse_alert_state o
                            where o.restaurant_id = m.restaurant_id and o.alert = m.alert
                              and o.recovered_at is null)
        on conflict do nothing
        returning a.restaurant_id, a.alert, a.value, a.threshold
    )
    insert into pg_temp.alert_changes select o.restaurant_id, o.alert, 'BREACHED', o.value, o.threshold from opened o;

    with closed as (
        update loyverse.loyverse_alert_state a
           set recovered_at = now(), value = m.value
          from loyverse.alert_measurements m
         where a.restaurant_id = m.restaurant_id and a.alert = m.alert
           and a.recovered_at is null and not m.breached
        returning a.restaurant_id, a.alert, m.value, a.threshold
    )
    insert into pg_temp.alert_changes select c.restaurant_id, c.alert, 'RECOVERED', c.value, c.threshold from closed c;

    insert into loyverse.loyverse_notification_outbox (restaurant_id, kind, recipient, subject, body, payload, dedupe_key)
    select c.restaurant_id,
           case c.change when 'BREACHED' then 'ALERT' else 'RECOVERY' end,
           s.notification_email,
           format('[loyverse-sync] %s: %s %s', r.name, replace(lower(c.alert), '_', ' '),
                  case c.change when 'BREACHED' then 'over its threshold' else 'back to normal' end),
           format(E'Restaurant: %s
Condition: %s
Value: %s
Threshold: %s
At: %s

%s',
                  r.name, c.alert, round(c.value::numeric, 3), round(c.threshold::numeric, 3), now(),
                  case c.change when 'BREACHED'
                       then 'See `loyverse-sync sync status --restaurant ' || r.id || '` for details.'
                       else 'No action needed.' end),
           jsonb_build_object('alert', c.alert, 'change', c.change, 'value', c.value, 'threshold', c.threshold),
           format('alert:%s:%s:%s:%s', c.restaurant_id, c.alert, c.change,
                  (select max(a.breached_at) from loyverse.loyverse_alert_state a
                    where a.restaurant_id = c.restaurant_id and a.alert = c.alert))
      from pg_temp.alert_changes c
      join public.restaurants r on r.id = c.restaurant_id
      join loyverse.loyverse_price_sync_settings s on s.restaurant_id = c.restaurant_id
     where s.notification_email is not null
    on conflict (dedupe_key) do nothing;

    return query select c.restaurant_id, c.alert, c.change, c.value from pg_temp.alert_changes c;
end;
$$;
comment on function loyverse.evaluate_alerts() is
    'Compare every restaurant''s alert conditions with its thresholds; open/close breaches and queue one '
    'ALERT or RECOVERY email per change. Run periodically by the worker.';

create view loyverse.alerts as
select a.restaurant_id, r.name as restaurant_name, a.alert, a.breached_at, a.recovered_at, a.value, a.threshold,
       a.recovered_at is null as open
  from loyverse.loyverse_alert_state a
  join public.restaurants r on r.id = a.restaurant_id;
comment on view loyverse.alerts is 'Alert breaches, open and recovered, per restaurant.';

grant select, insert, update, delete on loyverse.loyverse_api_call_stats, loyverse.loyverse_alert_state to loyverse_worker;
grant execute on function loyverse.record_api_calls(bigint, jsonb), loyverse.evaluate_alerts() to loyverse_worker;
grant select on loyverse.api_latency, loyverse.alert_measurements, loyverse.alerts to loyverse_readonly, loyverse_worker;
