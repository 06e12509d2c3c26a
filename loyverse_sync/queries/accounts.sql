-- Accounts, restaurants and links (loyverse_sync/accounts.py).

-- name: insert_account
insert into loyverse.loyverse_accounts
    (name, merchant_id, business_name, currency_code, decimal_places, base_url,
     token_ciphertext, token_key_id, rate_limit_requests, rate_limit_window_seconds)
values
    (%(name)s, %(merchant_id)s, %(business_name)s, %(currency_code)s, %(decimal_places)s,
     %(base_url)s, %(token_ciphertext)s, %(token_key_id)s, %(rate_limit_requests)s,
     %(rate_limit_window_seconds)s)
returning id

-- name: resolve_account
select id from loyverse.loyverse_accounts
 where name = %(ref)s or id = %(id)s::bigint
 order by (name = %(ref)s) desc
 limit 1

-- name: get_account
select id, name, base_url, merchant_id, currency_code, decimal_places,
       token_ciphertext, token_key_id, auth_kind
  from loyverse.loyverse_accounts where id = %(id)s

-- name: list_accounts
select account_id, name, merchant_id, business_name, currency_code, decimal_places, base_url,
       token_valid, token_checked_at, restaurants, requests_total, rate_limited_total,
       auth_kind, token_expires_at, token_refreshes
  from loyverse.account_overview order by account_id

-- name: update_merchant
update loyverse.loyverse_accounts
   set merchant_id = coalesce(%(merchant_id)s, merchant_id),
       business_name = coalesce(%(business_name)s, business_name),
       currency_code = coalesce(%(currency_code)s, currency_code),
       decimal_places = coalesce(%(decimal_places)s, decimal_places),
       token_valid = true,
       token_checked_at = now(),
       updated_at = now()
 where id = %(id)s

-- name: all_ciphertexts_for_update
select id, name, token_ciphertext, token_key_id, oauth_ciphertext
  from loyverse.loyverse_accounts order by id for update

-- name: set_ciphertext
update loyverse.loyverse_accounts
   set token_ciphertext = %(token_ciphertext)s, token_key_id = %(token_key_id)s,
       oauth_ciphertext = %(oauth_ciphertext)s, updated_at = now()
 where id = %(id)s

-- name: inbound_ciphertexts_for_update
-- The webhook signing secrets (an OAuth app's client secret), encrypted like tokens.
select s.account_id, a.name, s.client_secret_ciphertext, s.client_secret_key_id
  from loyverse.loyverse_inbound_settings s
  join loyverse.loyverse_accounts a on a.id = s.account_id
 where s.client_secret_ciphertext is not null
 order by s.account_id
   for update of s

-- name: set_inbound_ciphertext
update loyverse.loyverse_inbound_settings
   set client_secret_ciphertext = %(ciphertext)s, client_secret_key_id = %(key_id)s, updated_at = now()
 where account_id = %(account_id)s

-- name: insert_oauth_account
-- token_expires_at null with an empty access token: the first use refreshes.
insert into loyverse.loyverse_accounts
    (name, base_url, token_ciphertext, token_key_id, rate_limit_requests,
     rate_limit_window_seconds, auth_kind, oauth_client_id, oauth_token_url, oauth_ciphertext,
     token_expires_at)
values
    (%(name)s, %(base_url)s, %(token_ciphertext)s, %(token_key_id)s, %(rate_limit_requests)s,
     %(rate_limit_window_seconds)s, 'oauth', %(client_id)s, %(token_url)s, %(oauth_ciphertext)s,
     now() + make_interval(secs => %(expires_in)s))
returning id

-- name: connect_oauth
-- An existing account (personal, or OAuth locked out) connected with an OAuth app's tokens.
update loyverse.loyverse_accounts
   set auth_kind = 'oauth', oauth_client_id = %(client_id)s, oauth_token_url = %(token_url)s,
       oauth_ciphertext = %(oauth_ciphertext)s, token_ciphertext = %(token_ciphertext)s,
       token_key_id = %(token_key_id)s,
       token_expires_at = now() + make_interval(secs => %(expires_in)s),
       token_refreshed_at = null, token_valid = null, token_checked_at = null, updated_at = now()
 where id = %(id)s
returning id

-- name: delete_account
delete from loyverse.loyverse_accounts where id = %(id)s

-- name: oauth_tokens
-- The stored access token of an OAuth account, its expiry and lifetime (epoch seconds).
select id, name, token_ciphertext, token_key_id,
       extract(epoch from token_expires_at)::float8 as expires_at,
       extract(epoch from token_expires_at - token_refreshed_at)::float8 as lifetime
  from loyverse.loyverse_accounts where id = %(id)s and auth_kind = 'oauth'

-- name: oauth_tokens_for_refresh
-- Serialises refreshes of one account across processes: the lock is held while the refresh
-- token is spent and until the new pair is committed. NO KEY UPDATE: links to the account
-- (FOR KEY SHARE) can still be made meanwhile.
select id, name, token_ciphertext, token_key_id, oauth_ciphertext, oauth_client_id,
       oauth_token_url,
       extract(epoch from token_expires_at)::float8 as expires_at,
       extract(epoch from token_expires_at - token_refreshed_at)::float8 as lifetime
  from loyverse.loyverse_accounts where id = %(id)s and auth_kind = 'oauth'
   for no key update

-- name: store_refreshed_tokens
-- now() is the transaction's start, before the token request left: the expiry errs early.
update loyverse.loyverse_accounts
   set token_ciphertext = %(token_ciphertext)s, oauth_ciphertext = %(oauth_ciphertext)s,
       token_key_id = %(token_key_id)s,
       token_expires_at = case when %(expires_in)s::float8 is null then null
                               else now() + make_interval(secs => %(expires_in)s) end,
       token_refreshed_at = now(), token_refreshes = token_refreshes + 1,
       token_valid = true, token_checked_at = now(), updated_at = now()
 where id = %(id)s
returning extract(epoch from token_expires_at)::float8 as expires_at,
          extract(epoch from token_expires_at - token_refreshed_at)::float8 as lifetime

-- name: store_refreshed_tokens_if_unchanged
-- The same, on a fresh connection after the refresh transaction's commit failed: only over
-- the pair that was spent (never over one another process stored since), or over itself
-- (the commit did land, only its answer was lost).
update loyverse.loyverse_accounts
   set token_ciphertext = %(token_ciphertext)s, oauth_ciphertext = %(oauth_ciphertext)s,
       token_key_id = %(token_key_id)s,
       token_expires_at = case when %(expires_in)s::float8 is null then null
                               else now() + make_interval(secs => %(expires_in)s) end,
       token_refreshed_at = now(),
       token_refreshes = token_refreshes + (oauth_ciphertext = %(spent)s)::int,
       token_valid = true, token_checked_at = now(), updated_at = now()
 where id = %(id)s and oauth_ciphertext in (%(spent)s, %(oauth_ciphertext)s)
returning extract(epoch from token_expires_at)::float8 as expires_at,
          extract(epoch from token_expires_at - token_refreshed_at)::float8 as lifetime

-- name: refresh_rejected
update loyverse.loyverse_accounts set token_valid = false, token_checked_at = now(), updated_at = now()
 where id = %(id)s

-- name: insert_restaurant
insert into public.restaurants (name) values (%(name)s) returning id

-- name: resolve_restaurant
select id from public.restaurants
 where id::text = %(ref)s or name = %(ref)s
 order by (id::text = %(ref)s) desc

-- name: list_restaurants
select restaurant_id, name, account_name, store_id, store_name, products, mapped_products,
       sync_enabled, sync_frequency, paused
  from loyverse.restaurant_overview order by name, restaurant_id

-- name: link_restaurant
insert into loyverse.loyverse_restaurant_links (restaurant_id, account_id, store_id, store_name)
values (%(restaurant_id)s, %(account_id)s, %(store_id)s, %(store_name)s)
on conflict (restaurant_id) do update
   set account_id = excluded.account_id, store_id = excluded.store_id,
       store_name = excluded.store_name, linked_at = now()

-- name: ensure_settings
insert into loyverse.loyverse_price_sync_settings (restaurant_id) values (%(restaurant_id)s)
on conflict (restaurant_id) do nothing

-- name: grant_restaurant_to_role
select loyverse.grant_restaurant_to_role(%(role)s, %(restaurant_id)s::uuid) as granted

-- name: revoke_restaurant_from_role
select loyverse.revoke_restaurant_from_role(%(role)s, %(restaurant_id)s::uuid) as revoked

-- name: restaurant_roles
select role_name as role, restaurant_name, restaurant_id, role_exists, granted_at, granted_by
  from loyverse.restaurant_roles
 where %(role)s::text is null or role_name = %(role)s::text
 order by role_name, restaurant_name, restaurant_id
