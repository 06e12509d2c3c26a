-- Per-minute statistics of Loyverse API calls (counts and latency histograms), aggregated in
-- SQL so recording a call is one upsert, not one row per request.
create table loyverse.loyverse_api_call_stats (
    account_id bigint not null references loyverse.loyverse_accounts (id) on delete cascade,
    bucket_start timestamptz not null,
    method text not null,
    endpoint text not null,
    status integer not null,
    calls bigint not null default 0
        constraint api_calls_is_nonnegative check (calls >= 0),
    total_seconds double precision not null default 0,
    max_seconds double precision not null default 0,
    latency_buckets bigint[] not null default '{0,0,0,0,0,0,0,0,0,0}',
    constraint loyverse_api_call_stats_pkey primary key (account_id, bucket_start, method, endpoint, status),
    constraint latency_buckets_has_ten_bounds check (cardinality(latency_buckets) = 10)
);

create index loyverse_api_call_stats_bucket_start_idx on loyverse.loyverse_api_call_stats (bucket_start);

comment on table loyverse.loyverse_api_call_stats is
    'Loyverse API calls per account, minute, method, endpoint and HTTP status (0 = no response). '
    'latency_buckets counts calls at or under 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 s and above. '
    'Internal: query loyverse.api_latency.';
