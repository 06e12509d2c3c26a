-- The audit trail of changes heard from Loyverse: every decision the apply job (and the
-- receiver, reconciliation) took, with the prices it compared.
create table loyverse.loyverse_inbound_audit (
    id bigint generated always as identity primary key,
    at timestamptz not null default now(),
    account_id bigint references loyverse.loyverse_accounts (id) on delete cascade,
    restaurant_id uuid references public.restaurants (id) on delete set null,
    inbox_id bigint references loyverse.loyverse_inbox (id) on delete set null,
    product_id uuid,
    loyverse_id text,
    decision text not null
        constraint inbound_decision_is_valid check (decision in (
            'PRICE_APPLIED', 'ECHO_IGNORED', 'AGREED', 'CONFLICT_HELD', 'CONFLICT_KEPT_OURS',
            'CONFLICT_KEPT_THEIRS', 'STALE_IGNORED', 'TOMBSTONE_IGNORED', 'ITEM_CREATED', 'ITEM_RENAMED',
            'ITEM_DELETED', 'VARIANT_DELETED', 'STOCK_APPLIED', 'DELIVERY_REJECTED', 'DELIVERY_FAILED',
            'DRIFT_FOUND', 'DRIFT_REPAIRED')),
    applied boolean not null default false,
    our_price numeric(12, 2),
    loyverse_price numeric(12, 3),
    details jsonb not null default '{}'
);

create index loyverse_inbound_audit_restaurant_id_at_idx on loyverse.loyverse_inbound_audit (restaurant_id, at desc);

create index loyverse_inbound_audit_inbox_id_idx on loyverse.loyverse_inbound_audit (inbox_id);

create index loyverse_inbound_audit_at_idx on loyverse.loyverse_inbound_audit (at);

comment on table loyverse.loyverse_inbound_audit is
    'Every decision on a change heard from Loyverse: prices applied, echoes of our own writes ignored, '
    'conflicts and how the restaurant''s conflict_policy decided them, stale or tombstoned deliveries, '
    'catalog changes (reported, or applied: applied = true), rejected deliveries, reconciliation drift.';
comment on column loyverse.loyverse_inbound_audit.our_price is 'products.price when the decision was taken.';
comment on column loyverse.loyverse_inbound_audit.loyverse_price is 'The store price Loyverse reported.';
