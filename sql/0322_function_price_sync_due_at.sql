-- When a freshly queued change becomes due under a restaurant's sync frequency: the queue's
-- next_attempt_at carries the frequency, so one claim query serves every frequency.
create function loyverse.price_sync_due_at(p_frequency text)
returns timestamptz
language sql
stable
set search_path = ''
as $$
    select case p_frequency
        when 'REALTIME' then now()
        when 'BATCH_5MIN' then date_bin('5 minutes', now(), timestamptz '2000-01-01 00:00+00') + interval '5 minutes'
        when 'BATCH_HOURLY' then date_bin('1 hour', now(), timestamptz '2000-01-01 00:00+00') + interval '1 hour'
        else 'infinity'::timestamptz  -- MANUAL: only loyverse.trigger_price_sync() makes it due
    end
$$;
comment on function loyverse.price_sync_due_at(text) is
    'next_attempt_at of a new queue row: REALTIME now; BATCH_5MIN / BATCH_HOURLY the next 5-minute / '
    'hour boundary (UTC); MANUAL infinity (due only after an explicit trigger).';
