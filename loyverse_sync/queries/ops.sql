-- Operators' view: metrics, health and API statistics (loyverse_sync/ops.py).

-- name: record_api_calls
select loyverse.record_api_calls(%(account_id)s, %(calls)s::jsonb)

-- name: metrics_status
select restaurant_name, pending, processing, failed, dead, conflicts, oldest_pending_age,
       requests_per_minute, budget_per_minute
  from loyverse.price_sync_status

-- name: metrics_outcomes
-- Cumulative (a counter): times queue rows entered each outcome, kept by the database
-- (loyverse.loyverse_price_sync_outcome_totals, migration 0056); never reads the queue.
select r.name as restaurant_name, t.outcome, sum(t.total) as n
  from loyverse.loyverse_price_sync_outcome_totals t
  join public.restaurants r on r.id = t.restaurant_id
 group by r.name, t.outcome

-- name: metrics_api_calls
select a.name as account_name, s.method, s.endpoint, s.status,
       sum(s.calls) as calls, sum(s.total_seconds) as total_seconds,
       loyverse.sum_buckets(s.latency_buckets) as latency_buckets
  from loyverse.loyverse_api_call_stats s
  join loyverse.loyverse_accounts a on a.id = s.account_id
 group by a.name, s.method, s.endpoint, s.status

-- name: metrics_accounts
select name, rate_limited_total from loyverse.account_overview

-- name: metrics_import_runs
select status, count(*) as n from loyverse.loyverse_import_runs group by status

-- name: metrics_alerts
select restaurant_name, alert from loyverse.alerts where open

-- name: worker_heartbeat
select count(*) as workers, extract(epoch from now() - max(last_heartbeat))::float8 as age_seconds
  from public.procrastinate_workers

-- name: health_restaurants
-- How old the oldest pending change may be: its frequency's period plus a 2-minute grace.
select st.restaurant_name, st.sync_frequency, st.pending,
       extract(epoch from st.oldest_pending_age)::float8 as oldest_pending_seconds,
       case st.sync_frequency when 'REALTIME' then 120 when 'BATCH_5MIN' then 420
                              when 'BATCH_HOURLY' then 3720 end::float8 as allowed_seconds,
       1 - st.success_rate_last_hour::float8 as failure_rate,
       s.alert_failure_rate
  from loyverse.price_sync_status st
  join loyverse.loyverse_price_sync_settings s on s.restaurant_id = st.restaurant_id
 where st.enabled and not st.paused
 order by st.restaurant_name

-- name: health_accounts
select id as account_id, name, token_valid,
       extract(epoch from now() - token_checked_at)::float8 as checked_seconds_ago
  from loyverse.loyverse_accounts order by id

-- name: record_token_check
update loyverse.loyverse_accounts set token_valid = %(valid)s, token_checked_at = now() where id = %(id)s
