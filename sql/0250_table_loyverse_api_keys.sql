-- API keys of `loyverse-sync serve` (JSON API and console sign-in). Only the SHA-256 of a
-- key is stored; a restaurant key reaches its restaurant, an admin key every restaurant.
create table loyverse.loyverse_api_keys (
    id bigint generated always as identity primary key,
    name text not null
        constraint api_key_name_is_not_blank check (btrim(name) <> ''),
    key_hash bytea not null
        constraint api_key_hash_is_sha256 check (length(key_hash) = 32),
    restaurant_id uuid references public.restaurants (id) on delete cascade,
    is_admin boolean not null default false,
    created_at timestamptz not null default now(),
    created_by text not null default loyverse.current_actor(),
    last_used_at timestamptz,
    revoked_at timestamptz,
    revoked_by text,
    constraint api_key_is_admin_or_one_restaurant check (is_admin = (restaurant_id is null))
);

create unique index loyverse_api_keys_key_hash_idx on loyverse.loyverse_api_keys (key_hash);

create unique index loyverse_api_keys_name_idx on loyverse.loyverse_api_keys (name);

comment on table loyverse.loyverse_api_keys is
    'API keys of the HTTP server (sha256 only). Manage with `loyverse-sync apikey create|list|revoke` '
    'or loyverse.create_api_key / revoke_api_key; read loyverse.api_keys.';
