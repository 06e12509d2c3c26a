-- Retention of the inbox: applied and failed deliveries older than the retention go (in
-- batches); the audit trail (loyverse_inbound_audit) keeps its rows, its inbox_id set null.
create function loyverse.prune_loyverse_inbox(p_older_than interval, p_limit integer default 50000)
returns integer
language sql
security definer
set search_path = ''
as $$
    with gone as (
        delete from loyverse.loyverse_inbox i
         where i.id in (select x.id from loyverse.loyverse_inbox x
                         where x.status in ('applied', 'failed') and x.received_at < now() - p_older_than
                         order by x.received_at
                         limit p_limit)
        returning 1
    )
    select count(*)::integer from gone;
$$;
comment on function loyverse.prune_loyverse_inbox(interval, integer) is
    'Delete applied and failed deliveries received before now() - p_older_than (at most p_limit); returns the count.';
