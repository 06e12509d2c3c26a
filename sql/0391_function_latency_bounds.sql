-- The latency histogram's bucket bounds, in one place for the recorder and the views.
create function loyverse.latency_bounds()
returns double precision[]
language sql
immutable
parallel safe
set search_path = ''
as $$
    select array[0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 'Infinity']::double precision[]
$$;

comment on function loyverse.latency_bounds() is 'Upper bounds (seconds) of loyverse_api_call_stats.latency_buckets.';
