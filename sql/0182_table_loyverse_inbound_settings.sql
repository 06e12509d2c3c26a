-- How Loyverse reaches us, per account: the unguessable secret in the webhook URL, the OAuth
-- app's client secret that signs deliveries (encrypted like tokens), and the polling cursor.
create table loyverse.loyverse_inbound_settings (
    account_id bigint primary key references loyverse.loyverse_accounts (id) on delete cascade,
    -- two v4 UUIDs: 244 random bits, hex
    url_secret text not null default replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '')
        constraint url_secret_is_long check (length(url_secret) >= 32),
    client_secret_ciphertext bytea,
    client_secret_key_id text,
    webhook_url text,
    poll_enabled boolean not null default true,
    poll_interval_seconds integer not null default 300
        constraint poll_interval_seconds_is_between_10_and_86400 check (poll_interval_seconds between 10 and 86400),
    poll_overlap_seconds integer not null default 120
        constraint poll_overlap_seconds_is_between_0_and_86400 check (poll_overlap_seconds between 0 and 86400),
    polled_until timestamptz,
    last_polled_at timestamptz,
    -- Loyverse's clock minus ours (ms), estimated from webhook deliveries: see the comment below
    loyverse_clock_offset_ms bigint,
    loyverse_clock_offset_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint loyverse_inbound_settings_url_secret_key unique (url_secret),
    constraint client_secret_has_a_key check ((client_secret_ciphertext is null) = (client_secret_key_id is null))
);

comment on table loyverse.loyverse_inbound_settings is
    'Per account: how Loyverse''s changes reach us (webhook URL secret, signing secret, polling cursor). '
    'A row is made on first use (loyverse.inbound_settings_row).';
comment on column loyverse.loyverse_inbound_settings.url_secret is
    'The last path segment of the webhook URL: authenticates unsigned deliveries (personal-token subscriptions).';
comment on column loyverse.loyverse_inbound_settings.client_secret_ciphertext is
    'The OAuth app''s client secret (Fernet, like account tokens): when set, every delivery must carry a '
    'valid X-Loyverse-Signature.';
comment on column loyverse.loyverse_inbound_settings.polled_until is
    'Polling cursor: the newest Loyverse updated_at read; the next poll reads from it minus poll_overlap_seconds.';
comment on column loyverse.loyverse_inbound_settings.loyverse_clock_offset_ms is
    'How far Loyverse''s clock is ahead of ours (ms; negative: behind), estimated as the largest '
    'created_at - received_at of the account''s webhook deliveries in the last hour (a delivery is never '
    'received before it is made, so this is the offset minus the shortest delivery time). The '
    '`latest` conflict policy and echo detection subtract it from Loyverse''s updated_at.';
comment on column loyverse.loyverse_inbound_settings.loyverse_clock_offset_at is
    'When loyverse_clock_offset_ms was last raised (an estimate older than an hour is replaced by the next sample).';
