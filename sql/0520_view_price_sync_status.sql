-- Per-restaurant price-sync status for DBAs and the CLI (`sync status`).
-- One grouped pass over the queue rows that count (pending, processing, failed, dead,
-- conflict, and done in the last day: each arm matches a partial index), joined by
-- restaurant_id: the cost does not multiply by the number of restaurants. A restaurant
-- whose last success is older than a day takes it from last_done, read only for such a
-- restaurant (and only when last_success_at is selected): one pass for all of them. A role of
-- the main app sees only the restaurants granted to it (loyverse.readable_restaurants).
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
       round((a.rate_limit_requests * 60 / a.rate_limit_window_seconds)::numeric, 1) as budget_per_minute,
       coalesce(q.held, 0) as held
  from public.restaurants r
  join loyverse.loyverse_price_sync_settings s on s.restaurant_id = r.id
  left join loyverse.loyverse_restaurant_links l on l.restaurant_id = r.id
  left join loyverse.loyverse_accounts a on a.id = l.account_id
  left join (
      select x.restaurant_id,
             count(*) filter (where x.status = 'pending') as pending,
             count(*) filter (where x.status = 'pending' and x.next_attempt_at <= now()) as due,
             count(*) filter (where x.status = 'processing') as processing,
             count(*) filter (where x.status = 'failed') as failed,
             count(*) filter (where x.status = 'dead') as dead,
             count(*) filter (where x.status = 'conflict') as conflicts,
             count(*) filter (where x.status = 'held') as held,
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
          or x.status = 'held'
          or (x.status = 'done' and x.completed_at > now() - interval '1 day')
       group by x.restaurant_id
  ) q on q.restaurant_id = r.id
  left join lateral (
      select sum(g.requests_made) as requests_last_5min
        from loyverse.loyverse_sync_logs g
       where g.account_id = l.account_id and g.sync_type = 'PRICE_SYNC'
         and g.started_at > now() - interval '5 minutes'
  ) rate on true
 -- a role of the main app reads only its restaurants (loyverse.readable_restaurants: null = all)
 where (select loyverse.readable_restaurants(current_user)) is null or r.id = any ((select loyverse.readable_restaurants(current_user))::uuid[]);
comment on view loyverse.price_sync_status is
    'Price sync per restaurant: queue counts (pending, due, processing, failed, dead, conflicts, held), oldest pending '
    'age, last success, items synced and success rate over the last hour and day, the account''s current '
    'price-sync send rate (requests/min over 5 min) against its budget.';
comment on column loyverse.price_sync_status.held is
    'Changes held by the guardrails, waiting for a person (loyverse.price_sync_held; `sync approve` / `sync reject`).';
comment on column loyverse.price_sync_status.due is 'Pending rows whose time has come (REALTIME at once, BATCH_* at their boundary, retries after their backoff).';
comment on column loyverse.price_sync_status.success_rate_last_hour is 'done / (done + failed + dead) completed in the last hour; null when none.';
comment on column loyverse.price_sync_status.requests_per_minute is 'Loyverse requests made by price sync for this restaurant''s account, per minute over the last 5 minutes.';
