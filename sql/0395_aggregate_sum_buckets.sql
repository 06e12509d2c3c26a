-- sum_buckets(histogram): adds latency histograms across minutes and endpoints.
create aggregate loyverse.sum_buckets(bigint[]) (
    sfunc = loyverse._sum_buckets,
    stype = bigint[],
    initcond = '{0,0,0,0,0,0,0,0,0,0}'
);

comment on aggregate loyverse.sum_buckets(bigint[]) is 'Element-wise sum of latency histograms.';
