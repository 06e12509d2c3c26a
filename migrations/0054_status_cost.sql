-- depends: 0053_lease_cost
-- Status cost: loyverse.price_sync_status counted each restaurant's queue rows in a lateral
-- subquery that scanned the whole queue once per restaurant (no index on restaurant_id for
-- every status): 50 restaurants x 162,000 rows, 1.7 s per select and 2.2 s per
-- evaluate_alerts, which the worker runs every minute. The view now aggregates the rows
-- that count in one grouped pass through the partial indexes and joins it by restaurant_id;
-- a last success older than a day is looked up only for the restaurants that need it.
-- Same columns, values and comments; dependent views and grants are unchanged.

create or replace view loyverse.price_sync_status as
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
