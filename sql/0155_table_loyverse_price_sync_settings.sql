-- Per-restaurant price-sync settings (the plan's PriceSyncSettings), changed only through
-- loyverse.update_price_sync_settings so every change is validated and logged.
create table loyverse.loyverse_price_sync_settings (
    restaurant_id uuid primary key references public.restaurants (id) on delete cascade,
    enabled boolean not null default true,
    sync_direction text not null default 'TO_LOYVERSE'
        constraint sync_direction_is_valid check (sync_direction in ('TO_LOYVERSE', 'FROM_LOYVERSE', 'BIDIRECTIONAL')),
    sync_frequency text not null default 'REALTIME'
        constraint sync_frequency_is_valid check (sync_frequency in ('REALTIME', 'BATCH_5MIN', 'BATCH_HOURLY', 'MANUAL')),
    include_category_ids uuid[] not null default '{}',
    exclude_category_ids uuid[] not null default '{}',
    price_rounding_rule text not null default 'NONE'
        constraint price_rounding_rule_is_valid check (price_rounding_rule in ('NONE', 'NEAREST_0.05', 'NEAREST_0.10', 'UP', 'DOWN')),
    notify_on_error boolean not null default false,
    notification_email text
        constraint notification_email_is_valid check (notification_email is null or notification_email ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$')
        constraint notification_email_is_at_most_254_characters check (length(notification_email) <= 254),
    max_attempts integer not null default 8
        constraint max_attempts_is_between_1_and_50 check (max_attempts between 1 and 50),
    -- a failed write waits min(cap, base * 2^attempts) * (0.5..1.0) seconds before its retry
    backoff_base_seconds double precision not null default 2
        constraint backoff_base_seconds_is_between_0_01_and_3600 check (backoff_base_seconds between 0.01 and 3600),
    backoff_cap_seconds double precision not null default 900
        constraint backoff_cap_seconds_is_between_0_01_and_86400 check (backoff_cap_seconds between 0.01 and 86400),
    priority integer not null default 0
        constraint priority_is_between_minus_100_and_100 check (priority between -100 and 100),
    paused boolean not null default false,
    paused_at timestamptz,
    prices_include_tax boolean not null default true,
    alert_failure_rate double precision not null default 0.2
        constraint alert_failure_rate_is_a_fraction check (alert_failure_rate > 0 and alert_failure_rate <= 1),
    alert_queue_depth integer not null default 1000
        constraint alert_queue_depth_is_positive check (alert_queue_depth > 0),
    alert_oldest_pending_seconds integer not null default 900
        constraint alert_oldest_pending_seconds_is_positive check (alert_oldest_pending_seconds > 0),
    alert_dead_letters integer not null default 1
        constraint alert_dead_letters_is_positive check (alert_dead_letters > 0),
    conflict_policy text not null default 'hold'
        constraint conflict_policy_is_valid check (conflict_policy in ('hold', 'ours', 'theirs', 'latest')),
    catalog_changes text not null default 'report'
        constraint catalog_changes_is_valid check (catalog_changes in ('report', 'apply')),
    sync_stock boolean not null default false,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint notify_on_error_needs_an_email check (not notify_on_error or notification_email is not null),
    constraint categories_are_not_both_included_and_excluded check (not (include_category_ids && exclude_category_ids)),
    constraint backoff_cap_is_at_least_the_base check (backoff_cap_seconds >= backoff_base_seconds),
    -- Guardrails (null = off): a change past one of them is held for a person (sync approve / reject).
    hold_change_percent numeric(8, 2) default 100
        constraint hold_change_percent_is_between_1_and_100000 check (hold_change_percent between 1 and 100000),
    hold_change_amount numeric(12, 2)
        constraint hold_change_amount_is_between_0_01_and_99999999 check (hold_change_amount between 0.01 and 99999999),
    hold_below_price numeric(12, 2)
        constraint hold_below_price_is_between_0_and_99999999 check (hold_below_price between 0 and 99999999)
);

comment on table loyverse.loyverse_price_sync_settings is
    'Per-restaurant price-sync settings (the plan''s PriceSyncSettings). Change them through '
    'loyverse.update_price_sync_settings() or `loyverse-sync sync settings set`.';

comment on column loyverse.loyverse_price_sync_settings.include_category_ids is 'Empty = every category.';

comment on column loyverse.loyverse_price_sync_settings.hold_change_percent is
    'Hold (do not send) a change that moves the price Loyverse holds up by more than this %, or down to '
    'less than 1 / (1 + this / 100) of it (100: a price may double or halve; a x100 or x10 typo is held). '
    'Null: no limit.';

comment on column loyverse.loyverse_price_sync_settings.hold_change_amount is
    'Hold a change that moves the price Loyverse holds by more than this amount (currency units). Null: no limit.';

comment on column loyverse.loyverse_price_sync_settings.hold_below_price is
    'Hold a change to a price below this floor (our price, currency units). Null: no floor.';

comment on column loyverse.loyverse_price_sync_settings.prices_include_tax is
    'Whether our prices include tax; decides how imported prices treat Loyverse ADDED taxes.';

comment on column loyverse.loyverse_price_sync_settings.conflict_policy is
    'BIDIRECTIONAL: what a price changed on both sides since the last agreed price becomes: hold (a '
    'conflict row for `sync resolve`), ours, theirs, or latest (the later of Loyverse''s updated_at and '
    'our change wins).';

comment on column loyverse.loyverse_price_sync_settings.catalog_changes is
    'Items/variants renamed or deleted in Loyverse: report (audit only) or apply (rename our product, '
    'deactivate it when deleted).';

comment on column loyverse.loyverse_price_sync_settings.sync_stock is
    'Copy Loyverse inventory levels (webhooks) into products.stock_quantity.';

comment on column loyverse.loyverse_price_sync_settings.max_attempts is
    'Attempts of one queued change (a failed write, an expired lease) before it is dead; copied onto each '
    'queue row when it is queued.';

comment on column loyverse.loyverse_price_sync_settings.backoff_base_seconds is
    'A failed write (429, 5xx, timeout) is retried after min(backoff_cap_seconds, this * 2^attempts) '
    'seconds, times a jitter of 0.5 to 1.0 (default 2: about 1-2 s, 2-4 s, 4-8 s, ...). Read by '
    'loyverse.complete_price_sync_batch.';

comment on column loyverse.loyverse_price_sync_settings.backoff_cap_seconds is
    'The longest wait before a failed write is retried (default 900 s), before jitter; at least '
    'backoff_base_seconds.';
