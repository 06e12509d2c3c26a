-- Undo 0062: OAuth accounts are deleted (they cannot work without their refresh token), then
-- the columns go and account_overview is back to its 0002 shape.

drop view loyverse.account_overview;

delete from loyverse.accounts where auth_kind = 'oauth';

alter table loyverse.accounts
    drop constraint oauth_fields_match_auth_kind,
    drop column auth_kind,
    drop column oauth_client_id,
    drop column oauth_token_url,
    drop column oauth_ciphertext,
    drop column token_expires_at,
    drop column token_refreshed_at,
    drop column token_refreshes;

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
       a.created_at
  from loyverse.accounts a
  left join loyverse.account_rate_state s on s.account_id = a.id;

comment on view loyverse.account_overview is 'Loyverse accounts without their tokens: currency, rate budget, 429s, linked restaurants.';

grant select on loyverse.account_overview to loyverse_readonly, loyverse_worker;
