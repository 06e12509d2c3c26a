-- A sellable item with its variants (one Loyverse item): the products of a group are its
-- variants, so a whole item can be rebuilt for Loyverse.
create table public.product_groups (
    id uuid primary key default gen_random_uuid(),
    restaurant_id uuid not null references public.restaurants (id) on delete cascade,
    category_id uuid references public.categories (id) on delete set null,
    name text not null
        constraint product_group_name_is_not_blank check (btrim(name) <> ''),
    description text,
    option1_name text,
    option2_name text,
    option3_name text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create index product_groups_restaurant_id_idx on public.product_groups (restaurant_id);

comment on table public.product_groups is
    'A sellable item with its variants (one Loyverse item); its products are the variants, so a '
    'whole item can be rebuilt for Loyverse.';
