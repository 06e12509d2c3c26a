-- The main app's restaurants: the catalogue's root. loyverse-sync reads id and name and links
-- each restaurant to one Loyverse store (loyverse_restaurant_links).
create table public.restaurants (
    id uuid primary key default gen_random_uuid(),
    name text not null
        constraint restaurant_name_is_not_blank check (btrim(name) <> '')
        constraint restaurant_name_is_at_most_200_characters check (length(name) <= 200),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

comment on table public.restaurants is 'The main app''s restaurants. loyverse-sync reads id and name.';
