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
