-- A Loyverse modifier (e.g. "Milk") per restaurant, as the menu import brings it.
create table public.modifier_groups (
    id uuid primary key default gen_random_uuid(),
    restaurant_id uuid not null references public.restaurants (id) on delete cascade,
    name text not null
        constraint modifier_group_name_is_not_blank check (btrim(name) <> ''),
    position integer not null default 0,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create index modifier_groups_restaurant_id_idx on public.modifier_groups (restaurant_id);

comment on table public.modifier_groups is 'A Loyverse modifier (e.g. "Milk"), per restaurant.';
