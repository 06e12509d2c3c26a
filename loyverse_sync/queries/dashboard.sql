-- The terminal dashboard (cli/dashboard.py). %(restaurant_id)s null = every restaurant.

-- name: status
select * from loyverse.price_sync_status
 where %(restaurant_id)s::uuid is null or restaurant_id = %(restaurant_id)s::uuid
 order by restaurant_name

-- name: accounts
select h.account_name, h.pending, h.processing, h.retrying, h.rate_limited_total, h.throttled_until,
       coalesce(max(s.requests_per_minute), 0) as requests_per_minute,
       coalesce(max(s.budget_per_minute), round((a.rate_limit_requests * 60 / a.rate_limit_window_seconds)::numeric, 1)) as budget_per_minute
  from loyverse.price_sync_queue_health h
  join loyverse.loyverse_accounts a on a.id = h.account_id
  left join loyverse.price_sync_status s on s.account_id = h.account_id
 where %(restaurant_id)s::uuid is null or s.restaurant_id = %(restaurant_id)s::uuid
 group by h.account_id, h.account_name, h.pending, h.processing, h.retrying, h.rate_limited_total,
          h.throttled_until, a.rate_limit_requests, a.rate_limit_window_seconds
 order by h.account_name

-- name: history
select * from loyverse.price_sync_history
 where %(restaurant_id)s::uuid is null or %(restaurant_id)s::uuid = any(restaurant_ids)
 order by started_at desc limit 8

-- name: problems
select * from loyverse.price_sync_problems
 where status in ('failed', 'dead', 'conflict')
   and (%(restaurant_id)s::uuid is null or restaurant_id = %(restaurant_id)s::uuid)
 order by completed_at desc nulls last limit 10

-- name: throughput
-- Price changes completed per minute over the last hour; minute_index 59 = the current minute.
select 59 - floor(extract(epoch from date_trunc('minute', now()) - date_trunc('minute', completed_at)) / 60)::int as minute_index,
       count(*) as n
  from loyverse.loyverse_price_sync_queue
 where status = 'done' and completed_at > date_trunc('minute', now()) - interval '59 minutes'
   and (%(restaurant_id)s::uuid is null or restaurant_id = %(restaurant_id)s::uuid)
 group by 1

-- name: retry
select loyverse.retry_price_sync(%(restaurant_id)s::uuid, null, null) as n

-- name: trigger
select coalesce(sum(loyverse.trigger_price_sync(s.restaurant_id, false)), 0) as n
  from loyverse.loyverse_price_sync_settings s
 where s.enabled and (%(restaurant_id)s::uuid is null or s.restaurant_id = %(restaurant_id)s::uuid)
