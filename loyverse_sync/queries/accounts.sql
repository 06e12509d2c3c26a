-- Accounts, restaurants and links (loyverse_sync/accounts.py).

-- name: insert_account
insert into loyverse.accounts
    (name, merchant_id, business_name, currency_code, decimal_places, base_url,
     token_ciphertext, token_key_id, rate_limit_requests, rate_limit_window_seconds)
values
    (%(name)s, %(merchant_id)s, %(business_name)s, %(currency_code)s, %(decimal_places)s,
     %(base_url)s, %(token_ciphertext)s, %(token_key_id)s, %(rate_limit_requests)s,
     %(rate_limit_window_seconds)s)
returning id

-- name: resolve_account
select id from loyverse.accounts
 where name = %(ref)s or id = %(id)s::bigint
 order by (name = %(ref)s) desc
 limit 1

-- name: get_account
select id, name, base_url, merchant_id, currency_code, decimal_places,
       token_ciphertext, token_key_id
  from loyverse.accounts where id = %(id)s

-- name: list_accounts
select account_id, name, merchant_id, business_name, currency_code, decimal_places, base_url,
       token_valid, token_checked_at, restaurants, requests_total, rate_limited_total
  from loyverse.account_overview order by account_id

-- name: update_merchant
update loyverse.accounts
   set merchant_id = coalesce(%(merchant_id)s, merchant_id),
       business_name = coalesce(%(business_name)s, business_name),
       currency_code = coalesce(%(currency_code)s, currency_code),
       decimal_places = coalesce(%(decimal_places)s, decimal_places),
       token_valid = true,
       token_checked_at = now(),
       updated_at = now()
 where id = %(id)s

-- name: all_ciphertexts_for_update
select id, name, token_ciphertext, token_key_id from loyverse.accounts order by id for update

-- name: set_ciphertext
update loyverse.accounts
   set token_ciphertext = %(token_ciphertext)s, token_key_id = %(token_key_id)s, updated_at = now()
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
