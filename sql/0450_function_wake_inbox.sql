-- Wake the inbox job of one account: defer procrastinate's apply_loyverse_inbox job with a
-- queueing lock and a lock per account (one queued, one running), like wake_price_sync.
create function loyverse.wake_inbox(p_account_id bigint)
returns boolean
language plpgsql
security definer
-- procrastinate's functions name their tables unqualified (see wake_price_sync)
set search_path = public, pg_temp
as $$
declare
    v_lock text := 'loyverse_inbox:' || p_account_id;
begin
    if exists (select 1 from public.procrastinate_jobs j
                where j.queueing_lock = v_lock and j.status = 'todo') then
        return false;
    end if;
    begin
        perform public.procrastinate_defer_jobs_v1(array[
            row('price_sync', 'apply_loyverse_inbox', 0, v_lock, v_lock,
                jsonb_build_object('account_id', p_account_id), null)::public.procrastinate_job_to_defer_v1]);
    exception when unique_violation then
        return false;  -- a concurrent transaction queued it first
    end;
    return true;
end;
$$;
comment on function loyverse.wake_inbox(bigint) is
    'Queue one apply_loyverse_inbox job for the account unless one is already queued; true when a job was queued.';
