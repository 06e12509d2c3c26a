-- Which Loyverse account and store each restaurant sells through (one store per
-- restaurant): the key from a price change to the store whose price it sets.
create table loyverse.loyverse_restaurant_links (
    restaurant_id uuid primary key references public.restaurants (id) on delete cascade,
    account_id bigint not null references loyverse.loyverse_accounts (id) on delete cascade,
    store_id text not null
        constraint store_id_is_not_blank check (btrim(store_id) <> ''),
    store_name text,
    linked_at timestamptz not null default now(),
    constraint loyverse_restaurant_links_account_id_store_id_key unique (account_id, store_id)
);

create index loyverse_restaurant_links_account_id_idx on loyverse.loyverse_restaurant_links (account_id);

comment on table loyverse.loyverse_restaurant_links is
    'Which Loyverse account and store each restaurant sells through (one store per restaurant).';
