-- What the last reconciliation of a restaurant found: each mapped product whose price or
-- availability differs from Loyverse (or whose item is gone there), until repaired.
create table loyverse.loyverse_price_drift (
    restaurant_id uuid not null references public.restaurants (id) on delete cascade,
    product_id uuid not null references public.products (id) on delete cascade,
    account_id bigint not null references loyverse.loyverse_accounts (id) on delete cascade,
    loyverse_item_id text not null,
    loyverse_variant_id text not null,
    kind text not null
        constraint drift_kind_is_valid check (kind in ('price', 'availability', 'missing')),
    our_price numeric(12, 3),
    loyverse_price numeric(12, 3),
    our_available boolean,
    loyverse_available boolean,
    found_at timestamptz not null default now(),
    repaired_at timestamptz,
    repair text,
    primary key (restaurant_id, product_id, kind)
);

comment on table loyverse.loyverse_price_drift is
    'Drift found by `sync reconcile` (replaced per restaurant on each run); read it through loyverse.price_drift.';
