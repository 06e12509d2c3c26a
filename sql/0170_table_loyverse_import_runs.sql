-- Menu imports from Loyverse with their live progress (items_done of items_total) and outcome.
create table loyverse.loyverse_import_runs (
    id bigint generated always as identity primary key,
    restaurant_id uuid not null references public.restaurants (id) on delete cascade,
    account_id bigint references loyverse.loyverse_accounts (id) on delete set null,
    snapshot_id bigint,
    status text not null default 'PENDING'
        constraint import_run_status_is_valid check (status in ('PENDING', 'RUNNING', 'SUCCESS', 'PARTIAL', 'FAILED', 'UNDONE')),
    dry_run boolean not null default false,
    options jsonb not null default '{}',
    items_total integer not null default 0,
    items_done integer not null default 0,
    created_count integer not null default 0,
    updated_count integer not null default 0,
    skipped_count integer not null default 0,
    duplicated_count integer not null default 0,
    failed_count integer not null default 0,
    report jsonb not null default '{}',
    error text,
    started_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    completed_at timestamptz,
    undone_at timestamptz
);

create index loyverse_import_runs_restaurant_id_idx on loyverse.loyverse_import_runs (restaurant_id, started_at desc);

comment on table loyverse.loyverse_import_runs is 'Menu imports from Loyverse, with live progress (items_done of items_total).';
