-- The last hour of Loyverse API calls per account and endpoint: counts, mean, p50, p95, max.
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
  join loyverse.loyverse_accounts a on a.id = s.account_id
 where s.bucket_start > now() - interval '1 hour'
 group by s.account_id, a.name, s.method, s.endpoint;

comment on view loyverse.api_latency is
    'Loyverse API calls of the last hour per account, method and endpoint: counts by outcome, mean, '
    'p50 and p95 (upper bound of the histogram bucket) and max response time in seconds.';

comment on column loyverse.api_latency.p95_seconds is 'Histogram quantile: 95% of calls took at most this long.';
