-- SQL API: revoke an API key by name; it stops working at once (console sessions too,
-- which look their key up on every request). Writes an API_KEY row to loyverse_sync_logs.
create function loyverse.revoke_api_key(p_name text)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_restaurant uuid;
begin
    if not exists (select 1 from loyverse.loyverse_api_keys k where k.name = p_name) then
        raise exception 'name: no API key named %', p_name using errcode = 'no_data_found', column = 'name';
    end if;
    update loyverse.loyverse_api_keys k
       set revoked_at = now(), revoked_by = loyverse.current_actor()
     where k.name = p_name and k.revoked_at is null
    returning k.restaurant_id into v_restaurant;
    if not found then
        return false;
    end if;
    insert into loyverse.loyverse_sync_logs (restaurant_id, sync_type, status, details, completed_at)
    values (v_restaurant, 'API_KEY', 'SUCCESS', jsonb_build_object('action', 'revoke', 'key', p_name), now());
    return true;
end;
$$;
comment on function loyverse.revoke_api_key(text) is
    'Revoke an API key by name (it stops working at once). False when it was revoked already.';
