-- Which role of the main app reads which restaurant (`loyverse-sync restaurant roles`).
create view loyverse.restaurant_roles as
select m.role_name,
       m.restaurant_id,
       r.name as restaurant_name,
       exists (select 1 from pg_catalog.pg_roles x where x.rolname = m.role_name) as role_exists,
       m.granted_at,
       m.granted_by
  from loyverse.loyverse_restaurant_roles m
  join public.restaurants r on r.id = m.restaurant_id;
comment on view loyverse.restaurant_roles is
    'Restaurants each role of the main app may read in the status and history views '
    '(loyverse.grant_restaurant_to_role); role_exists is false for a grant left by a dropped role.';
