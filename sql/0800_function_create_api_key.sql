-- SQL API: register an API key of the HTTP server by its SHA-256 (the caller makes the key:
-- the key itself never reaches the database). Writes an API_KEY row to loyverse_sync_logs.
create function loyverse.create_api_key(p_name text, p_key_hash bytea, p_restaurant_id uuid, p_admin boolean)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_id bigint;
begin
    if p_name is null or btrim(p_name) = '' then
        raise exception 'name: must not be blank' using errcode = 'invalid_parameter_value', column = 'name';
    end if;
    if coalesce(p_admin, false) = (p_restaurant_id is not null) then
        raise exception 'restaurant: give a restaurant or admin, not both or neither'
            using errcode = 'invalid_parameter_value', column = 'restaurant';
    end if;
    if p_restaurant_id is not null and not exists (select 1 from public.restaurants r where r.id = p_restaurant_id) then
        raise exception 'restaurant: no restaurant %', p_restaurant_id using errcode = 'no_data_found', column = 'restaurant';
    end if;
    if exists (select 1 from loyverse.loyverse_api_keys k where k.name = p_name) then
        raise exception 'name: an API key named % exists (names stay taken after revoking)', p_name
            using errcode = 'unique_violation', column = 'name';
    end if;
    insert into loyverse.loyverse_api_keys (name, key_hash, restaurant_id, is_admin)
    values (p_name, p_key_hash, p_restaurant_id, coalesce(p_admin, false))
    returning id into v_id;
    insert into loyverse.loyverse_sync_logs (restaurant_id, sync_type, status, details, completed_at)
    values (p_restaurant_id, 'API_KEY', 'SUCCESS',
            jsonb_build_object('action', 'create', 'key', p_name, 'admin', coalesce(p_admin, false)), now());
    return v_id;
end;
$$;
comment on function loyverse.create_api_key(text, bytea, uuid, boolean) is
    'Register an API key by its SHA-256 (32 bytes): a restaurant key (p_restaurant_id) or an admin key '
    '(p_admin). Returns its id. `loyverse-sync apikey create` makes the key and calls this.';
