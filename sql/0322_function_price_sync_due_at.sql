-- When a freshly queued change becomes due under a restaurant's sync frequency: the queue's
-- next_attempt_at carries the frequency, so one claim query serves every frequency.
-- No SET search_path on purpose (like loyverse.round_price): the trigger calls it per row and
-- only an inlined SQL function is cheap there; every name is schema-qualified instead.
create function loyverse.price_sync_due_at(p_frequency text)
returns timestamptz
language sql
stable
as $$
    select case
        when p_frequency operator(pg_catalog.=) 'REALTIME' then pg_catalog.now()
        when p_frequency operator(pg_catalog.=) 'BATCH_5MIN' then
            pg_catalog.date_bin('5 minutes'::pg_catalog.interval, pg_catalog.now(), '2000-01-01 00:00+00'::pg_catalog.timestamptz)
                operator(pg_catalog.+) '5 minutes'::pg_catalog.interval
        when p_frequency operator(pg_catalog.=) 'BATCH_HOURLY' then
            pg_catalog.date_bin('1 hour'::pg_catalog.interval, pg_catalog.now(), '2000-01-01 00:00+00'::pg_catalog.timestamptz)
                operator(pg_catalog.+) '1 hour'::pg_catalog.interval
        else 'infinity'::pg_catalog.timestamptz  -- MANUAL: only loyverse.trigger_price_sync() makes it due
    end
$$;
comment on function loyverse.price_sync_due_at(text) is
    'next_attempt_at of a new queue row: REALTIME now; BATCH_5MIN / BATCH_HOURLY the next 5-minute / '
    'hour boundary (UTC); MANUAL infinity (due only after an explicit trigger).';
