-- Element-wise sum of two latency histograms: the state function of loyverse.sum_buckets.
create function loyverse._sum_buckets(p_a bigint[], p_b bigint[])
returns bigint[]
language sql
immutable
parallel safe
set search_path = ''
as $$
    select array(select coalesce(x.a, 0) + coalesce(x.b, 0)
                   from unnest(p_a, p_b) with ordinality x(a, b, n) order by x.n)
$$;
