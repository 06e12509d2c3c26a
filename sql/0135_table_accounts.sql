-- Loyverse merchant accounts: the encrypted token, currency and the rate budget every
-- process on the account shares. Internal; loyverse.account_overview shows it without tokens.
create table loyverse.accounts (
    id bigint generated always as identity primary key,
    name text not null
        constraint account_name_is_valid check (btrim(name) <> '' and length(name) <= 100),
    merchant_id text,
    business_name text,
    currency_code text not null default 'EUR'
        constraint currency_code_is_iso4217 check (currency_code ~ '^[A-Z]{3}$'),
    decimal_places smallint not null default 2
        constraint decimal_places_is_between_0_and_3 check (decimal_places between 0 and 3),
    base_url text not null default 'https://api.loyverse.com/v1.0'
        constraint base_url_is_http check (base_url ~ '^https?://'),
    token_ciphertext bytea not null,
    token_key_id text not null,
    token_checked_at timestamptz,
    token_valid boolean,
    rate_limit_requests integer not null default 300
        constraint rate_limit_requests_is_positive check (rate_limit_requests > 0),
    rate_limit_window_seconds double precision not null default 300
        constraint rate_limit_window_is_positive check (rate_limit_window_seconds > 0),
    rate_limit_safety double precision not null default 0.97
        constraint rate_limit_safety_is_between_half_and_one check (rate_limit_safety > 0.5 and rate_limit_safety <= 1),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint accounts_name_key unique (name)
);

comment on table loyverse.accounts is
    'Loyverse merchant accounts. The token is encrypted by the application (Fernet); the key never '
    'reaches the database. Internal: query loyverse.account_overview.';

comment on column loyverse.accounts.token_key_id is 'Fingerprint of the key that encrypted the token (not the key).';

comment on column loyverse.accounts.rate_limit_safety is
    'Share of the documented budget the governor spends (0.97 = 291 of 300 per window).';
