-- The restaurants a role may read in the status and history views: null (every one) for the
-- operators, else those granted to it or to a role it belongs to. The views call it once per
-- query (an uncorrelated subquery) with current_user.
create function loyverse.readable_restaurants(p_role name)
returns uuid[]
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    -- Operators read every restaurant: superusers and the schema's owner, loyverse_worker and
    -- loyverse_readonly members (pg_has_role is true for a superuser whatever the role), and
    -- any role outside loyverse_app (the views grant it nothing anyway).
    if not pg_catalog.pg_has_role(p_role, 'loyverse_app', 'MEMBER')
       or pg_catalog.pg_has_role(p_role, 'loyverse_worker', 'MEMBER')
       or pg_catalog.pg_has_role(p_role, 'loyverse_readonly', 'MEMBER')
       or pg_catalog.pg_has_role(p_role, (select n.nspowner from pg_catalog.pg_namespace n
                                           where n.nspname = 'loyverse'), 'MEMBER') then
        return null;
    end if;
    -- A session learns only the restaurants of a role it may act as (itself, or one it may SET ROLE to).
    if not pg_catalog.pg_has_role(session_user, p_role, 'MEMBER') then
        return '{}';
    end if;
    return coalesce((select array_agg(distinct m.restaurant_id)
                       from loyverse.loyverse_restaurant_roles m
                       join pg_catalog.pg_roles r on r.rolname = m.role_name
                      where pg_catalog.pg_has_role(p_role, r.oid, 'MEMBER')), '{}');
end;
$$;
comment on function loyverse.readable_restaurants(name) is
    'The restaurants role p_role may read in price_sync_status, price_sync_history, import_runs and audit_trail: '
    'null = every one (superusers, the owner, loyverse_worker and loyverse_readonly members), else the ids '
    'granted to it or a role it belongs to (none granted: none). Example: select loyverse.readable_restaurants(current_user);';
