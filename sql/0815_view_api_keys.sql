-- API keys without their hashes: for `apikey list` and DBAs.
create view loyverse.api_keys as
select k.id,
       k.name,
       case when k.is_admin then 'admin' else 'restaurant' end as scope,
       k.restaurant_id,
       r.name as restaurant_name,
       case when k.revoked_at is null then 'active' else 'revoked' end as status,
       k.created_at,
       k.created_by,
       k.last_used_at,
       k.revoked_at,
       k.revoked_by
  from loyverse.loyverse_api_keys k
  left join public.restaurants r on r.id = k.restaurant_id;
comment on view loyverse.api_keys is
    'API keys of the HTTP server (never the key or its hash): scope admin|restaurant, active|revoked, who made it.';
