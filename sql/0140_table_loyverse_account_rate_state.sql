-- The shared token bucket of each account (rate_governor_take): one row per account, so
-- every process on it paces its requests against the same budget.
create table loyverse.loyverse_account_rate_state (
    account_id bigint primary key references loyverse.loyverse_accounts (id) on delete cascade,
    tokens double precision not null,
    refreshed_at timestamptz not null,
    throttled_until timestamptz,
    slow_until timestamptz,
    requests_total bigint not null default 0,
    rate_limited_total bigint not null default 0,
    last_rate_limited_at timestamptz
);

comment on table loyverse.loyverse_account_rate_state is
    'The shared token bucket of each account (see rate_governor_take). Negative tokens are '
    'reservations already handed out.';
