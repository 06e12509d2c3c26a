-- The newest version of each Loyverse object we applied, and tombstones: a delivery older
-- than what we have (reordered, retried for 48 h) or about a deleted object changes nothing.
create table loyverse.loyverse_inbound_objects (
    account_id bigint not null references loyverse.loyverse_accounts (id) on delete cascade,
    kind text not null
        constraint inbound_object_kind_is_valid check (kind in ('item', 'variant', 'inventory_level')),
    loyverse_id text not null,
    updated_at timestamptz,
    deleted_at timestamptz,
    name text,
    seen_at timestamptz not null default now(),
    primary key (account_id, kind, loyverse_id)
);

comment on table loyverse.loyverse_inbound_objects is
    'Per Loyverse item / variant / inventory level (variant_id/store_id): the updated_at of the newest '
    'version applied and, once deleted, its tombstone (deleted_at). Deletions in Loyverse are final.';
