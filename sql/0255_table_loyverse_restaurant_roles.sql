-- Which restaurants each of the main app's database roles may read in the status and history
-- views (a member of loyverse_app sees only these; operators see all). A DBA manages it with
-- loyverse.grant_restaurant_to_role / revoke_restaurant_from_role (`loyverse-sync restaurant grant-role`).
create table loyverse.loyverse_restaurant_roles (
    role_name text not null,
    restaurant_id uuid not null references public.restaurants (id) on delete cascade,
    granted_at timestamptz not null default now(),
    granted_by text not null default loyverse.current_actor(),
    primary key (role_name, restaurant_id)
);

create index loyverse_restaurant_roles_restaurant_id_idx on loyverse.loyverse_restaurant_roles (restaurant_id);

comment on table loyverse.loyverse_restaurant_roles is
    'Restaurants a database role of the main app may read in the status and history views (by role name: '
    'a grant to a group role reaches its members). Managed with loyverse.grant_restaurant_to_role.';
