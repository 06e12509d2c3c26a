-- A quantile of a latency histogram (the bucket's upper bound), for the latency views.
create function loyverse._latency_quantile(p_buckets bigint[], p_q double precision)
returns double precision
language sql
immutable
parallel safe
set search_path = ''
as $$
    -- The upper bound of the first bucket whose cumulative count reaches q of the total
    -- (a histogram quantile, as Prometheus computes it without interpolation).
    select (loyverse.latency_bounds())[min(x.n)]
      from (select n, sum(c) over (order by n) as cum, sum(c) over () as total
              from unnest(p_buckets) with ordinality u(c, n)) x
     where x.total > 0 and x.cum >= p_q * x.total
$$;

comment on function loyverse._latency_quantile(bigint[], double precision) is
    'Internal: quantile (upper bucket bound, seconds) of a latency_buckets histogram.';
