-- Add a batch of Loyverse API calls to the per-minute statistics (one statement per flush).
create function loyverse.record_api_calls(p_account_id bigint, p_calls jsonb)
returns integer
language plpgsql
set search_path = ''
as $$
-- p_calls: [{"method": "GET", "endpoint": "/items", "status": 200, "seconds": 0.12, "at": "..."}].
-- Aggregated set-based into minute buckets; returns the number of calls recorded.
declare
    v_bounds double precision[] := loyverse.latency_bounds();
begin
    if jsonb_typeof(p_calls) is distinct from 'array' then
        raise exception 'record_api_calls: p_calls must be a JSON array, got %', jsonb_typeof(p_calls)
            using errcode = 'invalid_parameter_value';
    end if;
    with calls as (
        select date_trunc('minute', coalesce((c ->> 'at')::timestamptz, now())) as bucket_start,
               upper(c ->> 'method') as method,
               c ->> 'endpoint' as endpoint,
               coalesce((c ->> 'status')::integer, 0) as status,
               greatest(coalesce((c ->> 'seconds')::double precision, 0), 0) as seconds
          from jsonb_array_elements(p_calls) c
    ), bucketed as (
        select c.*, (select min(i) from generate_series(1, 10) i where c.seconds <= v_bounds[i]) as bucket
          from calls c
    )
    insert into loyverse.loyverse_api_call_stats as s
        (account_id, bucket_start, method, endpoint, status, calls, total_seconds, max_seconds, latency_buckets)
    select p_account_id, b.bucket_start, b.method, b.endpoint, b.status,
           count(*), sum(b.seconds), max(b.seconds),
           array[count(*) filter (where b.bucket = 1), count(*) filter (where b.bucket = 2),
                 count(*) filter (where b.bucket = 3), count(*) filter (where b.bucket = 4),
                 count(*) filter (where b.bucket = 5), count(*) filter (where b.bucket = 6),
                 count(*) filter (where b.bucket = 7), count(*) filter (where b.bucket = 8),
                 count(*) filter (where b.bucket = 9), count(*) filter (where b.bucket = 10)]
      from bucketed b
     group by b.bucket_start, b.method, b.endpoint, b.status
    on conflict (account_id, bucket_start, method, endpoint, status) do update
       set calls = s.calls + excluded.calls,
           total_seconds = s.total_seconds + excluded.total_seconds,
           max_seconds = greatest(s.max_seconds, excluded.max_seconds),
           latency_buckets = array(select x.a + x.b
                                     from unnest(s.latency_buckets, excluded.latency_buckets) with ordinality x(a, b, n)
                                    order by x.n);
    return jsonb_array_length(p_calls);
end;
$$;

comment on function loyverse.record_api_calls(bigint, jsonb) is
    'Add Loyverse API calls (method, endpoint, status, seconds) to the per-minute statistics of an account.';
