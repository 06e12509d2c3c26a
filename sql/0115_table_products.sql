-- The main app's products, one per sellable Loyverse variant. The main app's
-- UPDATE products SET price = ... is what price sync starts from (triggers in sql/04xx).
create table public.products (
    id uuid primary key default gen_random_uuid(),
    restaurant_id uuid not null references public.restaurants (id) on delete cascade,
    category_id uuid references public.categories (id) on delete set null,
    product_group_id uuid references public.product_groups (id) on delete set null,
    name text not null
        constraint product_name_is_not_blank check (btrim(name) <> ''),
    sku text
        constraint product_sku_is_not_blank check (sku is null or btrim(sku) <> ''),
    price numeric(12, 2) not null
        constraint product_price_is_nonnegative check (price >= 0)
        -- NaN passes "price >= 0" (NaN sorts above every number); a price of 10^8 or more cannot
        -- be sent (the queue's price_to_send, after a tax factor, and Loyverse's own range)
        constraint product_price_is_a_number_below_100000000 check (price <> 'NaN' and price < 100000000),
    is_active boolean not null default true,
    option1_value text,
    option2_value text,
    option3_value text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    stock_quantity numeric(12, 3)
);

create index products_restaurant_id_idx on public.products (restaurant_id);

create index products_category_id_idx on public.products (category_id);

create index products_product_group_id_idx on public.products (product_group_id);

create unique index products_restaurant_id_sku_idx on public.products (restaurant_id, sku)
    where sku is not null;

comment on table public.products is
    'The main app''s products: one product = one sellable Loyverse variant. The main app changes '
    'prices with UPDATE products SET price = ...; loyverse-sync does the rest.';

comment on column public.products.price is 'Price in major units of the account currency, as sold at the counter.';

comment on column public.products.product_group_id is 'The item this product is a variant of (null: a one-variant item).';

comment on column public.products.stock_quantity is
    'Stock in the restaurant''s linked Loyverse store as of the last `import run --with-inventory` '
    '(may be negative: Loyverse allows selling below zero); null = never imported.';
