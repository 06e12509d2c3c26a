-- Accounts as operators see them: currency, rate budget, 429s and linked restaurants, never tokens.
create view loyverse.account_overview as
select a.id as account_id,
       a.name,
       a.merchant_id,
       a.business_name,
       a.currency_code,
       a.decimal_places,
       a.base_url,
       a.token_valid,
       a.token_checked_at,
       a.rate_limit_requests,
       a.rate_limit_window_seconds,
       coalesce(s.requests_total, 0) as requests_total,
       coalesce(s.rate_limited_total, 0) as rate_limited_total,
       s.last_rate_limited_at,
       (select count(*) from loyverse.loyverse_restaurant_links l where l.account_id = a.id) as restaurants,
       a.created_at,
       a.auth_kind,
       a.token_expires_at,
       a.token_refreshed_at,
       a.token_refreshes
  from loyverse.loyverse_accounts a
  left join loyverse.loyverse_account_rate_state s on s.account_id = a.id;

comment on view loyverse.account_overview is 'Loyverse accounts without their tokens: currency, rate budget, 429s, linked restaurants.';
