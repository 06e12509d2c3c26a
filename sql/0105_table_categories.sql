-- The main app's menu categories; the import maps a Loyverse category to one per restaurant.
create table public.categories (
    id uuid primary key default gen_random_uuid(),
    restaurant_id uuid not null references public.restaurants (id) on delete cascade,
    name text not null
        constraint category_name_is_not_blank check (btrim(name) <> ''),
    sort_order integer not null default 0,
    is_active boolean not null default true,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create index categories_restaurant_id_idx on public.categories (restaurant_id);

comment on table public.categories is 'The main app''s menu categories (a Loyverse category, per restaurant).';
