-- Menu snapshots fetched from Loyverse (import fetch): one row per fetch, with its time, so
-- preview and run reuse a recent snapshot instead of fetching the whole menu again.
create table loyverse.loyverse_snapshots (
    id bigint generated always as identity primary key,
    account_id bigint not null references loyverse.loyverse_accounts (id) on delete cascade,
    restaurant_id uuid references public.restaurants (id) on delete cascade,
    store_id text,
    merchant jsonb not null default '{}',
    with_inventory boolean not null default false,
    show_deleted boolean not null default true,
    requests_made integer not null default 0,
    pages integer not null default 0,
    counts jsonb not null default '{}',
    fetch_seconds double precision,
    fetched_at timestamptz not null default now(),
    constraint snapshot_requests_are_nonnegative check (requests_made >= 0 and pages >= 0)
);

create index loyverse_snapshots_account_id_fetched_at_idx on loyverse.loyverse_snapshots (account_id, fetched_at desc);

comment on table loyverse.loyverse_snapshots is
    'A whole Loyverse menu as fetched at fetched_at (raw objects in loyverse_snapshot_objects). '
    'A snapshot row exists only once every page arrived: a failed fetch writes nothing.';
comment on column loyverse.loyverse_snapshots.counts is 'Objects fetched per kind, e.g. {"item": 120, "category": 8}.';
