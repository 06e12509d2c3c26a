-- Wake the worker for one Loyverse account: defer procrastinate's sync_loyverse_prices job,
-- coalesced by a queueing lock per account (at most one queued job) and a lock per account
-- (one running job). The only place that knows procrastinate's composite type.
create function loyverse.wake_price_sync(p_account_id bigint)
returns boolean
language plpgsql
security definer
-- procrastinate's own functions name their tables unqualified: they need public on the path
-- (PostgreSQL 15 gives PUBLIC no CREATE on schema public, so this path is not hijackable).
set search_path = public, pg_temp
as $$
declare
    v_lock text := 'loyverse_price_sync:' || p_account_id;
begin
    -- Check first: a swallowed unique_violation costs a subtransaction, a sequence value
    -- and a dead tuple (STACK.md), and a queued job already drains everything due.
    if exists (select 1 from public.procrastinate_jobs j
                where j.queueing_lock = v_lock and j.status = 'todo') then
        return false;
    end if;
    begin
        perform public.procrastinate_defer_jobs_v1(array[
            row('price_sync', 'sync_loyverse_prices', 0, v_lock, v_lock,
                jsonb_build_object('account_id', p_account_id), null)::public.procrastinate_job_to_defer_v1]);
    exception when unique_violation then
        return false;  -- a concurrent transaction queued it first
    end;
    return true;
end;
$$;
comment on function loyverse.wake_price_sync(bigint) is
    'Queue one sync_loyverse_prices job for the account unless one is already queued; true when a job was queued.';
