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
