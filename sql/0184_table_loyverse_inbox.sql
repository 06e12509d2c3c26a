-- Every delivery from Loyverse (webhook, poll page) stored as received, before anything is
-- parsed: one INSERT, idempotent on redelivery (same account, same body bytes = one row).
create table loyverse.loyverse_inbox (
    id bigint generated always as identity primary key,
    account_id bigint not null references loyverse.loyverse_accounts (id) on delete cascade,
    source text not null
        constraint inbox_source_is_valid check (source in ('webhook', 'poll', 'refresh', 'reconcile')),
    received_at timestamptz not null default now(),
    headers jsonb not null default '{}',
    body bytea not null,
    body_sha256 bytea not null generated always as (sha256(body)) stored,
    status text not null default 'pending'
        constraint inbox_status_is_valid check (status in ('pending', 'applied', 'failed')),
    attempts integer not null default 0
        constraint inbox_attempts_is_nonnegative check (attempts >= 0),
    next_attempt_at timestamptz not null default now(),
    applied_at timestamptz,
    result jsonb,
    last_error text,
    constraint loyverse_inbox_account_id_body_sha256_key unique (account_id, body_sha256)
);

-- The apply job: an account's pending deliveries in arrival order.
create index loyverse_inbox_account_id_id_idx on loyverse.loyverse_inbox (account_id, id) where status = 'pending';

create index loyverse_inbox_received_at_idx on loyverse.loyverse_inbox (received_at);

comment on table loyverse.loyverse_inbox is
    'Deliveries from Loyverse as received (webhooks, poll pages), applied by the apply_loyverse_inbox job; '
    'status pending -> applied | failed (result: counts of each decision; the decisions are in '
    'loyverse_inbound_audit).';
