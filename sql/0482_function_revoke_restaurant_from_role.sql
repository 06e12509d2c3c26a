-- SQL API for DBAs: take back restaurants granted to a role (`loyverse-sync restaurant revoke-role`).
create function loyverse.revoke_restaurant_from_role(p_role text, p_restaurant_id uuid default null)
returns integer
language sql
security definer
set search_path = ''
as $$
    with gone as (
        delete from loyverse.loyverse_restaurant_roles m
         where m.role_name = p_role and (p_restaurant_id is null or m.restaurant_id = p_restaurant_id)
        returning 1)
    select count(*)::integer from gone;
$$;
comment on function loyverse.revoke_restaurant_from_role(text, uuid) is
    'Take back the restaurant (null: every restaurant) granted to role p_role. Returns how many grants went.';
