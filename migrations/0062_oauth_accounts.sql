-- depends: 0060_queue_without_product_fk
-- Accounts connected through a Loyverse OAuth app, besides personal access tokens: the access
-- token (token_ciphertext) expires (12 h) and is refreshed with a refresh token. The client
-- secret and the refresh token are encrypted together (oauth_ciphertext, same key as the
-- token); the new pair is written in the transaction that holds the account's row lock while
-- refreshing (loyverse_sync/oauth.py). account_overview shows the kind and the expiry.

alter table loyverse.accounts
    add column auth_kind text not null default 'personal'
        constraint auth_kind_is_valid check (auth_kind in ('personal', 'oauth')),
    add column oauth_client_id text,
    add column oauth_token_url text
        constraint oauth_token_url_is_http check (oauth_token_url ~ '^https?://'),
    add column oauth_ciphertext bytea,
    add column token_expires_at timestamptz,
    add column token_refreshed_at timestamptz,
    add column token_refreshes bigint not null default 0,
    add constraint oauth_fields_match_auth_kind check (
        case auth_kind
            when 'oauth' then oauth_client_id is not null and btrim(oauth_client_id) <> ''
                          and oauth_token_url is not null and oauth_ciphertext is not null
            else oauth_client_id is null and oauth_token_url is null and oauth_ciphertext is null
                 and token_expires_at is null
        end);

comment on column loyverse.accounts.auth_kind is
    'personal: a personal access token that does not expire; oauth: an OAuth app''s access token, '
    'refreshed before token_expires_at and on a 401.';
comment on column loyverse.accounts.oauth_ciphertext is
    'OAuth accounts: the client secret and the refresh token, encrypted with the token''s key (token_key_id).';
comment on column loyverse.accounts.token_expires_at is
    'OAuth accounts: when the stored access token expires (null: not known; refreshed on first use).';
comment on column loyverse.accounts.token_refreshes is
    'OAuth accounts: how many times the access token was refreshed.';

create or replace view loyverse.account_overview as
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
  from loyverse.accounts a
  left join loyverse.account_rate_state s on s.account_id = a.id;
