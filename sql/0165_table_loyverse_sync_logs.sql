-- The audit of every sync batch, import run and undo, with counts and error details.
create table loyverse.loyverse_sync_logs (
    id bigint generated always as identity primary key,
    restaurant_id uuid references public.restaurants (id) on delete set null,
    account_id bigint references loyverse.loyverse_accounts (id) on delete set null,
    sync_type text not null
        constraint sync_type_is_valid check (sync_type in ('PRICE_SYNC', 'MENU_IMPORT', 'IMPORT_UNDO', 'MANUAL_TRIGGER', 'RETRY', 'NOTIFICATION',
                                                             'SETTINGS_CHANGE', 'API_KEY', 'APPROVE', 'REJECT', 'MAKE_FIXED')),
    status text not null default 'RUNNING'
        constraint sync_log_status_is_valid check (status in ('RUNNING', 'SUCCESS', 'FAILED', 'PARTIAL')),
    items_total integer not null default 0,
    items_succeeded integer not null default 0,
    items_failed integer not null default 0,
    items_skipped integer not null default 0,
    requests_made integer not null default 0,
    error_details jsonb not null default '[]',
    details jsonb not null default '{}',
    started_at timestamptz not null default now(),
    completed_at timestamptz,
    actor text default loyverse.current_actor(),  -- who (api-key:, console:, cli:, sql:); null before 0063
    db_role text default session_user,
    constraint sync_log_counts_are_nonnegative check (items_total >= 0 and items_succeeded >= 0 and items_failed >= 0 and items_skipped >= 0 and requests_made >= 0),
    constraint sync_log_completes_after_it_starts check (completed_at is null or completed_at >= started_at)
);

create index loyverse_sync_logs_restaurant_id_started_at_idx on loyverse.loyverse_sync_logs (restaurant_id, started_at desc);

create index loyverse_sync_logs_started_at_idx on loyverse.loyverse_sync_logs (started_at desc);

comment on table loyverse.loyverse_sync_logs is 'One row per sync batch, import run or undo, with counts and error details.';

comment on column loyverse.loyverse_sync_logs.actor is
    'Who made the change: api-key:<name>, console:<key name>, cli:<os user>, worker, or sql:<role> (loyverse.current_actor()).';

comment on column loyverse.loyverse_sync_logs.db_role is 'The database role (session user) that wrote the row.';
