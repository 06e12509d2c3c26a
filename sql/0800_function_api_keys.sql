-- SQL API of the HTTP server's keys: create (the caller hashes a random key: the key itself
-- never reaches the database), revoke, and look up a key by its hash. Each change writes an
-- API_KEY row to loyverse_sync_logs (who, which key, what scope).
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

-- last_used_at is written at most once a minute per key: a lookup per request stays a read.
create function loyverse.api_key_lookup(p_key_hash bytea)
returns table (key_id bigint, name text, restaurant_id uuid, is_admin boolean)
language plpgsql
security definer
set search_path = ''
as $$
begin
    update loyverse.loyverse_api_keys k set last_used_at = now()
     where k.key_hash = p_key_hash and k.revoked_at is null
       and (k.last_used_at is null or k.last_used_at < now() - interval '1 minute');
    return query
        select k.id, k.name, k.restaurant_id, k.is_admin
          from loyverse.loyverse_api_keys k
         where k.key_hash = p_key_hash and k.revoked_at is null;
end;
$$;
comment on function loyverse.api_key_lookup(bytea) is
    'The live (not revoked) API key with this SHA-256, if any: id, name, restaurant_id (null for admin), is_admin.';
