-- The dashboard's chart: queue depth at the end of each of p_buckets equal slices of the
-- last p_minutes, and the changes synced and failed within each. One pass over the
-- restaurant's rows that were open at some point in the window.
create function loyverse.price_sync_timeline(p_restaurant_id uuid, p_minutes integer default 60, p_buckets integer default 12)
returns table (bucket_end timestamptz, queue_depth bigint, synced bigint, failed bigint)
language sql
stable
security definer
set search_path = ''
as $$
    with b as (
        select now() - make_interval(mins => p_minutes) * (p_buckets - i) / p_buckets as t,
               make_interval(mins => p_minutes) / p_buckets as width
          from generate_series(0, least(greatest(p_buckets, 1), 240)) i
    ), q as (
        select y.created_at, y.completed_at, y.status
          from loyverse.loyverse_price_sync_queue y
         where y.restaurant_id = p_restaurant_id
           and (y.completed_at is null or y.completed_at > now() - make_interval(mins => p_minutes))
    )
    select b.t,
           count(q.status) filter (where q.created_at <= b.t and (q.completed_at is null or q.completed_at > b.t)),
           count(q.status) filter (where q.status = 'done' and q.completed_at > b.t - b.width and q.completed_at <= b.t),
           count(q.status) filter (where q.status in ('failed', 'dead')
                                     and q.completed_at > b.t - b.width and q.completed_at <= b.t)
      from b left join q on true
     group by b.t
     order by b.t
$$;
comment on function loyverse.price_sync_timeline(uuid, integer, integer) is
    'Queue depth and changes synced/failed over the last p_minutes in p_buckets slices (the console''s chart). '
    'Example: select * from loyverse.price_sync_timeline(''<uuid>'', 60, 12);';
