-- Our product <-> a Loyverse variant in the restaurant's store: how price sync knows where
-- to write, and why a re-import updates in place instead of duplicating.
create table loyverse.loyverse_item_mappings (
    id bigint generated always as identity primary key,
    product_id uuid not null references public.products (id) on delete cascade,
    restaurant_id uuid not null references public.restaurants (id) on delete cascade,
    account_id bigint not null references loyverse.loyverse_accounts (id) on delete cascade,
    loyverse_item_id text not null,
    loyverse_variant_id text not null,
    loyverse_store_id text not null,
    last_synced_price numeric(12, 2),
    last_synced_at timestamptz,
    last_synced_version bigint,
    sync_direction text not null default 'FROM_LOYVERSE'
        constraint mapping_direction_is_valid check (sync_direction in ('TO_LOYVERSE', 'FROM_LOYVERSE', 'BIDIRECTIONAL')),
    needs_attention boolean not null default false,
    attention_reason text,
    import_run_id bigint,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint loyverse_item_mappings_product_id_key unique (product_id),
    constraint loyverse_item_mappings_restaurant_id_variant_id_key unique (restaurant_id, loyverse_variant_id),
    price_factor numeric(12, 6) not null default 1,
    loyverse_pricing_type text not null default 'FIXED'
        constraint mapping_pricing_type_is_valid check (loyverse_pricing_type in ('FIXED', 'VARIABLE'))
);

create index loyverse_item_mappings_account_id_item_id_idx on loyverse.loyverse_item_mappings (account_id, loyverse_item_id);

comment on table loyverse.loyverse_item_mappings is
    'Our product <-> a Loyverse variant (of an item) in the restaurant''s store. A re-import '
    'updates mapped products in place through this table, so nothing is ever duplicated.';

comment on column loyverse.loyverse_item_mappings.last_synced_price is
    'The price we last saw in (or wrote to) Loyverse for this store: the base for detecting edits made at the counter.';

comment on column loyverse.loyverse_item_mappings.sync_direction is
    'How the mapping was last synced: FROM_LOYVERSE (import) or TO_LOYVERSE (price sync).';

comment on column loyverse.loyverse_item_mappings.loyverse_pricing_type is
    'FIXED: Loyverse holds a price for this store, and price sync keeps it equal to ours. VARIABLE: the '
    'price is entered at the counter; price sync never queues or sends it (the import sets it from '
    'Loyverse; loyverse.make_price_fixed turns it into a fixed price on purpose).';

comment on column loyverse.loyverse_item_mappings.price_factor is
    'Our price / the Loyverse store price, as the menu import converted it for the restaurant''s '
    'prices_include_tax (1 + ADDED rate, or 1 / (1 + INCLUDED rate); 1 when no conversion). Price '
    'sync sends round(products.price / price_factor, currency decimals).';
