-- The HTTP server's key check: the live key with this SHA-256.
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
