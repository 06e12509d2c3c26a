-- Loyverse merchant accounts: the encrypted token, currency and the rate budget every
-- process on the account shares. Internal; loyverse.account_overview shows it without tokens.
create table loyverse.loyverse_accounts (
    id bigint generated always as identity primary key,
    name text not null
        constraint account_name_is_valid check (btrim(name) <> '' and length(name) <= 100),
    merchant_id text
        constraint merchant_id_is_at_most_200_characters check (length(merchant_id) <= 200),
    business_name text
        constraint business_name_is_at_most_200_characters check (length(business_name) <= 200),
    currency_code text not null default 'EUR'
        constraint currency_code_is_iso4217 check (currency_code ~ '^[A-Z]{3}$'),
    decimal_places smallint not null default 2
        constraint decimal_places_is_between_0_and_3 check (decimal_places between 0 and 3),
    base_url text not null default 'https://api.loyverse.com/v1.0'
        constraint base_url_is_http check (base_url ~ '^https?://')
        constraint base_url_is_at_most_2000_characters check (length(base_url) <= 2000),
    token_ciphertext bytea not null,
    token_key_id text not null,
    token_checked_at timestamptz,
    token_valid boolean,
    rate_limit_requests integer not null default 300
        constraint rate_limit_requests_is_positive check (rate_limit_requests > 0)
        constraint rate_limit_requests_is_at_most_100000 check (rate_limit_requests <= 100000),
    rate_limit_window_seconds double precision not null default 300
        -- NaN and infinity fail "between" (both sort above every number)
        constraint rate_limit_window_is_between_1_and_86400_seconds check (rate_limit_window_seconds between 1 and 86400),
    rate_limit_safety double precision not null default 0.97
        constraint rate_limit_safety_is_between_half_and_one check (rate_limit_safety > 0.5 and rate_limit_safety <= 1),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint loyverse_accounts_name_key unique (name),
    -- OAuth accounts (0062): the access token above expires and is refreshed with the
    -- refresh token, kept with the client secret in oauth_ciphertext (loyverse_sync/oauth.py)
    auth_kind text not null default 'personal'
        constraint auth_kind_is_valid check (auth_kind in ('personal', 'oauth')),
    oauth_client_id text,
    oauth_token_url text
        constraint oauth_token_url_is_http check (oauth_token_url ~ '^https?://'),
    oauth_ciphertext bytea,
    token_expires_at timestamptz,
    token_refreshed_at timestamptz,
    token_refreshes bigint not null default 0,
    constraint oauth_fields_match_auth_kind check (
        case auth_kind
            when 'oauth' then oauth_client_id is not null and btrim(oauth_client_id) <> ''
                          and oauth_token_url is not null and oauth_ciphertext is not null
            else oauth_client_id is null and oauth_token_url is null and oauth_ciphertext is null
                 and token_expires_at is null
        end)
);

comment on table loyverse.loyverse_accounts is
    'Loyverse merchant accounts. The token is encrypted by the application (Fernet); the key never '
    'reaches the database. Internal: query loyverse.account_overview.';

comment on column loyverse.loyverse_accounts.token_key_id is 'Fingerprint of the key that encrypted the token (not the key).';

comment on column loyverse.loyverse_accounts.rate_limit_safety is
    'Share of the documented budget the governor spends (0.97 = 291 of 300 per window).';

comment on column loyverse.loyverse_accounts.auth_kind is
    'personal: a personal access token that does not expire; oauth: an OAuth app''s access token, '
    'refreshed before token_expires_at and on a 401.';
comment on column loyverse.loyverse_accounts.oauth_ciphertext is
    'OAuth accounts: the client secret and the refresh token, encrypted with the token''s key (token_key_id).';
comment on column loyverse.loyverse_accounts.token_expires_at is
    'OAuth accounts: when the stored access token expires (null: not known; refreshed on first use).';
comment on column loyverse.loyverse_accounts.token_refreshes is
    'OAuth accounts: how many times the access token was refreshed.';
