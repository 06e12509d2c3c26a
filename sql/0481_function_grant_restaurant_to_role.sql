-- SQL API for DBAs: let a role of the main app read a restaurant in the status and history
-- views (`loyverse-sync restaurant grant-role`). Refuses a role that does not exist or is
-- not a member of loyverse_app (a grant to it would change nothing), naming the field.
create function loyverse.grant_restaurant_to_role(p_role text, p_restaurant_id uuid)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_oid oid;
begin
    select r.oid into v_oid from pg_catalog.pg_roles r where r.rolname = p_role;
    if v_oid is null then
        raise exception 'role: no database role %', coalesce(p_role, '(null)')
            using errcode = 'invalid_parameter_value', column = 'role';
    end if;
    if not pg_catalog.pg_has_role(v_oid, 'loyverse_app', 'MEMBER') then
        raise exception 'role: % is not a member of loyverse_app (grant loyverse_app to % first)', p_role, p_role
            using errcode = 'invalid_parameter_value', column = 'role';
    end if;
    if not exists (select 1 from public.restaurants x where x.id = p_restaurant_id) then
        raise exception 'restaurant: no restaurant %', p_restaurant_id
            using errcode = 'no_data_found', column = 'restaurant';
    end if;
    insert into loyverse.loyverse_restaurant_roles (role_name, restaurant_id)
    values (p_role, p_restaurant_id)
    on conflict do nothing;
    return found;
end;
$$;
comment on function loyverse.grant_restaurant_to_role(text, uuid) is
    'Let database role p_role (a member of loyverse_app) read restaurant p_restaurant_id in the status and history '
    'views. Returns false when it already could. Example: select loyverse.grant_restaurant_to_role(''app_bistro'', ''<uuid>'');';
