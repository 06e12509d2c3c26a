-- After a drain: make sure the account is woken when its next pending row becomes due (a
-- retry's backoff, a BATCH_* boundary), instead of at the once-a-minute sweep. A second
-- queueing lock per account keeps this scheduled job apart from wake_price_sync's immediate one.
create function loyverse.wake_price_sync_when_due(p_account_id bigint)
returns timestamptz
language plpgsql
security definer
-- procrastinate's own functions name their tables unqualified (as in wake_price_sync)
set search_path = public, pg_temp
as $$
declare
    v_lock text := 'loyverse_price_sync:' || p_account_id;
    v_due_lock text := 'loyverse_price_sync_due:' || p_account_id;
    v_due timestamptz;
    v_job record;
begin
    select min(q.next_attempt_at) into v_due
      from loyverse.loyverse_price_sync_queue q
     where q.account_id = p_account_id and q.status = 'pending' and q.next_attempt_at > now();
    if v_due is null then
        return null;  -- nothing waits: what is due now is the running drain's or a queued job's
    end if;
    select j.id, j.scheduled_at into v_job
      from public.procrastinate_jobs j
     where j.queueing_lock = v_due_lock and j.status = 'todo';
    if found then
        if v_job.scheduled_at is not null and v_job.scheduled_at <= v_due then
            return v_job.scheduled_at;  -- an earlier wake is already booked; it re-books itself
        end if;
        perform public.procrastinate_cancel_job_v1(v_job.id, false, true);  -- too late: replace it
    end if;
    begin
        -- the same lock as the immediate job: never two drains of one account at once
        perform public.procrastinate_defer_jobs_v1(array[
            row('price_sync', 'sync_loyverse_prices', 0, v_lock, v_due_lock,
                jsonb_build_object('account_id', p_account_id), v_due)::public.procrastinate_job_to_defer_v1]);
    exception when unique_violation then
        null;  -- a concurrent drain booked it first
    end;
    return v_due;
end;
$$;

comment on function loyverse.wake_price_sync_when_due(bigint) is
    'Book a sync_loyverse_prices job for the moment the account''s next pending row is due (backoff, '
    'batch boundary); returns that moment, or null when nothing waits. Called by the worker after each drain.';

revoke execute on function loyverse.wake_price_sync_when_due(bigint) from public;
grant execute on function loyverse.wake_price_sync_when_due(bigint) to loyverse_worker;
