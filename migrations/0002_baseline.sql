-- depends: 0001_procrastinate_schema
-- The baseline: the whole schema of loyverse-sync as sql/ describes it (one file per object,
-- in dependency order), after procrastinate's own schema (0001). Built by
-- scripts/build_baseline.py from sql/; do not edit by hand. From 0.1.0 on it is frozen and
-- every change is a new migration that says why.

-- ---- sql/0000_roles.sql ----
-- Roles are cluster-wide: created only when missing, so a second database migrates. Two
-- databases migrating at once (parallel test workers, two deploys) may both find a role
-- missing: the loser's duplicate is ignored.
do $$
declare
  v_role text;
begin
  foreach v_role in array array['loyverse_app', 'loyverse_worker', 'loyverse_readonly'] loop
    if not exists (select 1 from pg_roles where rolname = v_role) then
      begin
        execute format('create role %I nologin', v_role);
      exception when duplicate_object or unique_violation then
        null;  -- created meanwhile by a concurrent migration
      end;
    end if;
  end loop;
end $$;

-- ---- sql/0010_schema.sql ----
-- The integration's own schema, and the record of which procrastinate migration files this
-- database contains. Migration 0001 runs this file before procrastinate's schema.sql (it
-- records into the table), so both statements are idempotent.
create schema if not exists loyverse;

comment on schema loyverse is
    'loyverse-sync: the integration with the Loyverse POS (queue, mappings, logs, settings). '
    'Tables are internal; query the views.';

create table if not exists loyverse.procrastinate_migrations (
    name text primary key,
    procrastinate_version text not null,
    applied_at timestamptz not null default now(),
    applied_how text not null
        constraint applied_how_is_valid check (applied_how in ('schema', 'migration'))
);

comment on table loyverse.procrastinate_migrations is
    'Which of procrastinate''s own migration files this database contains: "schema" = part of the '
    'schema.sql installed by migration 0001, "migration" = applied later by db migrate after a '
    'procrastinate upgrade.';

-- ---- sql/0095_function_current_actor.sql ----
-- Who is making a change: the session setting loyverse.actor (set by `serve` per request,
-- by the CLI and by the worker per import), else "sql:<session user>". The audit trail's
-- default, so every loyverse_sync_logs row written by any path names its author.
create function loyverse.current_actor()
returns text
language sql
stable
set search_path = ''
as $$
    select coalesce(nullif(pg_catalog.current_setting('loyverse.actor', true), ''),
                    'sql:' operator(pg_catalog.||) session_user)
$$;
comment on function loyverse.current_actor() is
    'Who is acting: current_setting(''loyverse.actor'') (api-key:<name>, console:<key name>, cli:<os user>), '
    'else sql:<session user>. Example: begin; set local loyverse.actor = ''cli:alice''; ...; commit;';

-- ---- sql/0100_table_restaurants.sql ----
-- The main app's restaurants: the catalogue's root. loyverse-sync reads id and name and links
-- each restaurant to one Loyverse store (loyverse_restaurant_links).
create table public.restaurants (
    id uuid primary key default gen_random_uuid(),
    name text not null
        constraint restaurant_name_is_not_blank check (btrim(name) <> '')
        constraint restaurant_name_is_at_most_200_characters check (length(name) <= 200),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

comment on table public.restaurants is 'The main app''s restaurants. loyverse-sync reads id and name.';

-- ---- sql/0105_table_categories.sql ----
-- The main app's menu categories; the import maps a Loyverse category to one per restaurant.
create table public.categories (
    id uuid primary key default gen_random_uuid(),
    restaurant_id uuid not null references public.restaurants (id) on delete cascade,
    name text not null
        constraint category_name_is_not_blank check (btrim(name) <> ''),
    sort_order integer not null default 0,
    is_active boolean not null default true,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create index categories_restaurant_id_idx on public.categories (restaurant_id);

comment on table public.categories is 'The main app''s menu categories (a Loyverse category, per restaurant).';

-- ---- sql/0110_table_product_groups.sql ----
-- A sellable item with its variants (one Loyverse item): the products of a group are its
-- variants, so a whole item can be rebuilt for Loyverse.
create table public.product_groups (
    id uuid primary key default gen_random_uuid(),
    restaurant_id uuid not null references public.restaurants (id) on delete cascade,
    category_id uuid references public.categories (id) on delete set null,
    name text not null
        constraint product_group_name_is_not_blank check (btrim(name) <> ''),
    description text,
    option1_name text,
    option2_name text,
    option3_name text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create index product_groups_restaurant_id_idx on public.product_groups (restaurant_id);

comment on table public.product_groups is
    'A sellable item with its variants (one Loyverse item); its products are the variants, so a '
    'whole item can be rebuilt for Loyverse.';

-- ---- sql/0115_table_products.sql ----
-- The main app's products, one per sellable Loyverse variant. The main app's
-- UPDATE products SET price = ... is what price sync starts from (triggers in sql/04xx).
create table public.products (
    id uuid primary key default gen_random_uuid(),
    restaurant_id uuid not null references public.restaurants (id) on delete cascade,
    category_id uuid references public.categories (id) on delete set null,
    product_group_id uuid references public.product_groups (id) on delete set null,
    name text not null
        constraint product_name_is_not_blank check (btrim(name) <> ''),
    sku text
        constraint product_sku_is_not_blank check (sku is null or btrim(sku) <> ''),
    price numeric(12, 2) not null
        constraint product_price_is_nonnegative check (price >= 0)
        -- NaN passes "price >= 0" (NaN sorts above every number); a price of 10^8 or more cannot
        -- be sent (the queue's price_to_send, after a tax factor, and Loyverse's own range)
        constraint product_price_is_a_number_below_100000000 check (price <> 'NaN' and price < 100000000),
    is_active boolean not null default true,
    option1_value text,
    option2_value text,
    option3_value text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    stock_quantity numeric(12, 3)
);

create index products_restaurant_id_idx on public.products (restaurant_id);

create index products_category_id_idx on public.products (category_id);

create index products_product_group_id_idx on public.products (product_group_id);

create unique index products_restaurant_id_sku_idx on public.products (restaurant_id, sku)
    where sku is not null;

comment on table public.products is
    'The main app''s products: one product = one sellable Loyverse variant. The main app changes '
    'prices with UPDATE products SET price = ...; loyverse-sync does the rest.';

comment on column public.products.price is 'Price in major units of the account currency, as sold at the counter.';

comment on column public.products.product_group_id is 'The item this product is a variant of (null: a one-variant item).';

comment on column public.products.stock_quantity is
    'Stock in the restaurant''s linked Loyverse store as of the last `import run --with-inventory` '
    '(may be negative: Loyverse allows selling below zero); null = never imported.';

-- ---- sql/0120_table_modifier_groups.sql ----
-- A Loyverse modifier (e.g. "Milk") per restaurant, as the menu import brings it.
create table public.modifier_groups (
    id uuid primary key default gen_random_uuid(),
    restaurant_id uuid not null references public.restaurants (id) on delete cascade,
    name text not null
        constraint modifier_group_name_is_not_blank check (btrim(name) <> ''),
    position integer not null default 0,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create index modifier_groups_restaurant_id_idx on public.modifier_groups (restaurant_id);

comment on table public.modifier_groups is 'A Loyverse modifier (e.g. "Milk"), per restaurant.';

-- ---- sql/0125_table_modifier_options.sql ----
-- The options of a modifier (e.g. "Oat milk" +0.50), as the menu import brings them.
create table public.modifier_options (
    id uuid primary key default gen_random_uuid(),
    modifier_group_id uuid not null references public.modifier_groups (id) on delete cascade,
    name text not null
        constraint modifier_option_name_is_not_blank check (btrim(name) <> ''),
    price numeric(12, 2) not null default 0
        constraint modifier_option_price_is_nonnegative check (price >= 0),
    position integer not null default 0,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create index modifier_options_modifier_group_id_idx on public.modifier_options (modifier_group_id);

comment on table public.modifier_options is 'An option of a modifier (e.g. "Oat milk" +0.50).';

-- ---- sql/0130_table_product_modifier_groups.sql ----
-- Which modifier groups a product offers (Loyverse's item modifier_ids, per product).
create table public.product_modifier_groups (
    product_id uuid not null references public.products (id) on delete cascade,
    modifier_group_id uuid not null references public.modifier_groups (id) on delete cascade,
    primary key (product_id, modifier_group_id)
);

create index product_modifier_groups_modifier_group_id_idx on public.product_modifier_groups (modifier_group_id);

comment on table public.product_modifier_groups is 'Which modifier groups a product offers.';

-- ---- sql/0135_table_loyverse_accounts.sql ----
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

-- ---- sql/0140_table_loyverse_account_rate_state.sql ----
-- The shared token bucket of each account (rate_governor_take): one row per account, so
-- every process on it paces its requests against the same budget.
create table loyverse.loyverse_account_rate_state (
    account_id bigint primary key references loyverse.loyverse_accounts (id) on delete cascade,
    tokens double precision not null,
    refreshed_at timestamptz not null,
    throttled_until timestamptz,
    slow_until timestamptz,
    requests_total bigint not null default 0,
    rate_limited_total bigint not null default 0,
    last_rate_limited_at timestamptz
);

comment on table loyverse.loyverse_account_rate_state is
    'The shared token bucket of each account (see rate_governor_take). Negative tokens are '
    'reservations already handed out.';

-- ---- sql/0145_table_loyverse_restaurant_links.sql ----
-- Which Loyverse account and store each restaurant sells through (one store per
-- restaurant): the key from a price change to the store whose price it sets.
create table loyverse.loyverse_restaurant_links (
    restaurant_id uuid primary key references public.restaurants (id) on delete cascade,
    account_id bigint not null references loyverse.loyverse_accounts (id) on delete cascade,
    store_id text not null
        constraint store_id_is_not_blank check (btrim(store_id) <> ''),
    store_name text,
    linked_at timestamptz not null default now(),
    constraint loyverse_restaurant_links_account_id_store_id_key unique (account_id, store_id)
);

create index loyverse_restaurant_links_account_id_idx on loyverse.loyverse_restaurant_links (account_id);

comment on table loyverse.loyverse_restaurant_links is
    'Which Loyverse account and store each restaurant sells through (one store per restaurant).';

-- ---- sql/0150_table_loyverse_item_mappings.sql ----
-- Our product <-> a Loyverse variant in the restaurant's store: how price sync knows where
-- to write, and why a re-import updates in place instead of duplicating.
create table loyverse.loyverse_item_mappings (
    id bigint generated always as identity primary key,
    product_id uuid not null references public.products (id) on delete cascade,
    restaurant_id uuid not null references public.restaurants (id) on delete cascade,
    account_id bigint not null references loyverse.loyverse_accounts (id) on delete cascade,
    loyverse_item_id text not null,
    loyverse_variant_id text not null,
    loyverse_store_id text not null,
    last_synced_price numeric(12, 2),
    last_synced_at timestamptz,
    last_synced_version bigint,
    sync_direction text not null default 'FROM_LOYVERSE'
        constraint mapping_direction_is_valid check (sync_direction in ('TO_LOYVERSE', 'FROM_LOYVERSE', 'BIDIRECTIONAL')),
    needs_attention boolean not null default false,
    attention_reason text,
    import_run_id bigint,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint loyverse_item_mappings_product_id_key unique (product_id),
    constraint loyverse_item_mappings_restaurant_id_variant_id_key unique (restaurant_id, loyverse_variant_id),
    price_factor numeric(12, 6) not null default 1,
    loyverse_pricing_type text not null default 'FIXED'
        constraint mapping_pricing_type_is_valid check (loyverse_pricing_type in ('FIXED', 'VARIABLE'))
);

create index loyverse_item_mappings_account_id_item_id_idx on loyverse.loyverse_item_mappings (account_id, loyverse_item_id);

comment on table loyverse.loyverse_item_mappings is
    'Our product <-> a Loyverse variant (of an item) in the restaurant''s store. A re-import '
    'updates mapped products in place through this table, so nothing is ever duplicated.';

comment on column loyverse.loyverse_item_mappings.last_synced_price is
    'The price we last saw in (or wrote to) Loyverse for this store: the base for detecting edits made at the counter.';

comment on column loyverse.loyverse_item_mappings.sync_direction is
    'How the mapping was last synced: FROM_LOYVERSE (import) or TO_LOYVERSE (price sync).';

comment on column loyverse.loyverse_item_mappings.loyverse_pricing_type is
    'FIXED: Loyverse holds a price for this store, and price sync keeps it equal to ours. VARIABLE: the '
    'price is entered at the counter; price sync never queues or sends it (the import sets it from '
    'Loyverse; loyverse.make_price_fixed turns it into a fixed price on purpose).';

comment on column loyverse.loyverse_item_mappings.price_factor is
    'Our price / the Loyverse store price, as the menu import converted it for the restaurant''s '
    'prices_include_tax (1 + ADDED rate, or 1 / (1 + INCLUDED rate); 1 when no conversion). Price '
    'sync sends round(products.price / price_factor, currency decimals).';

-- ---- sql/0155_table_loyverse_price_sync_settings.sql ----
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

-- ---- sql/0160_table_loyverse_price_sync_queue.sql ----
-- The coalescing price-sync queue: one pending row per product (partial unique index), claimed
-- by workers with FOR UPDATE SKIP LOCKED; a claimed row is never rewritten, a new one is made.
create table loyverse.loyverse_price_sync_queue (
    id bigint generated always as identity primary key,
    -- No foreign keys here: each cost a check per queued row in a bulk UPDATE's trigger.
    -- product_id is read from public.products while it is locked (loyverse.tg_products__
    -- delete_price_sync_rows explains how); deleting products deletes their rows through
    -- that statement trigger, which is also how a restaurant's rows go with its products.
    -- restaurant_id and account_id are the mapping's (which has their foreign keys), copied
    -- when the row is queued; an account's rows go with loyverse.tg_accounts__delete_price_sync_rows.
    product_id uuid not null,
    restaurant_id uuid not null,
    account_id bigint not null,
    status text not null default 'pending'
        constraint queue_status_is_valid check (status in ('pending', 'processing', 'done', 'failed', 'dead', 'conflict', 'cancelled', 'held')),
    source text not null default 'trigger'
        constraint queue_source_is_valid check (source in ('trigger', 'manual', 'retry', 'resolve', 'requeue', 'settings', 'make_fixed')),
    priority integer not null default 0,
    version bigint not null default 1
        constraint queue_version_is_positive check (version > 0),
    old_price numeric(12, 2),
    new_price numeric(12, 2) not null
        constraint queue_new_price_is_nonnegative check (new_price >= 0),
    -- wider than our price: a tax factor may raise it past numeric(12, 3), which must not fail
    -- the main app's UPDATE; the worker refuses such a row alone (PRICE_OUT_OF_RANGE)
    price_to_send numeric(15, 3) not null
        constraint queue_price_to_send_is_nonnegative check (price_to_send >= 0),
    attempts integer not null default 0
        constraint queue_attempts_is_nonnegative check (attempts >= 0),
    max_attempts integer not null default 8
        constraint queue_max_attempts_is_positive check (max_attempts > 0),
    last_error text,
    last_error_code text,
    error_details jsonb,
    next_attempt_at timestamptz not null default now(),
    lease_until timestamptz,
    claimed_by text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    completed_at timestamptz,
    constraint processing_rows_have_a_lease check (status <> 'processing' or lease_until is not null),
    loyverse_item_id text,
    approved_at timestamptz,
    approved_by text,
    -- Prices of ours whose write to Loyverse is in doubt (sent, then no answer: a worker that
    -- died holding the claim, or a timeout): Loyverse showing one is no edit at the counter.
    -- Kept on the row whose write it was and on the product's pending row that carries the
    -- product on (the claim returns them to the planner; apply_loyverse_price reads them).
    -- NULL when none (no bytes in a bulk UPDATE's rows).
    in_doubt_prices numeric(15, 3)[],
    -- NaN passes ">= 0": a row that can never be sent is refused here too
    constraint queue_prices_are_numbers check (new_price <> 'NaN' and price_to_send <> 'NaN')
) with (fillfactor = 50);  -- room on the page for a new version of every row on it: coalescing
                           -- changes into pending rows stays a HOT update, even when a bulk
                           -- UPDATE coalesces into every row of the page at once

-- One pending row per product: the coalescing unit. Claimed rows are never mutated; a
-- change that arrives meanwhile makes a new pending row.
create unique index loyverse_price_sync_queue_product_id_pending_idx
    on loyverse.loyverse_price_sync_queue (product_id) where status = 'pending';

-- The claim: due pending rows of one account, highest priority first.
create index loyverse_price_sync_queue_claim_idx
    on loyverse.loyverse_price_sync_queue (account_id, priority desc, next_attempt_at, id) where status = 'pending';

-- The claim picks whole Loyverse items: every pending row of an item, found without the mappings.
create index loyverse_price_sync_queue_account_id_loyverse_item_id_idx
    on loyverse.loyverse_price_sync_queue (account_id, loyverse_item_id) where status = 'pending';

-- An item with a row in flight is not claimed again (writes restate every variant of an item).
create index loyverse_price_sync_queue_account_id_loyverse_item_id_processing_idx
    on loyverse.loyverse_price_sync_queue (account_id, loyverse_item_id) where status = 'processing';

-- A claim's rows, for the lease heartbeat and completion. lease_until itself is not indexed:
-- extending a lease then changes no indexed column, so it is a HOT update (no index
-- entries); expired leases are found among an account's few processing rows.
create index loyverse_price_sync_queue_claimed_by_idx
    on loyverse.loyverse_price_sync_queue (claimed_by) where status = 'processing';

create index loyverse_price_sync_queue_product_id_processing_idx
    on loyverse.loyverse_price_sync_queue (product_id) where status = 'processing';

create index loyverse_price_sync_queue_restaurant_id_status_idx
    on loyverse.loyverse_price_sync_queue (restaurant_id, status) where status in ('failed', 'dead', 'conflict');

-- Held changes (guardrails): superseded by a newer change of the product, listed per restaurant.
create index loyverse_price_sync_queue_product_id_held_idx
    on loyverse.loyverse_price_sync_queue (product_id) where status = 'held';

-- Echo suppression (loyverse._apply_loyverse_price): is this price of this product one of
-- ours in doubt (rare rows: a tiny index)?
create index loyverse_price_sync_queue_product_id_in_doubt_idx
    on loyverse.loyverse_price_sync_queue (product_id) where in_doubt_prices is not null;

-- Echo suppression: did we write this price of this product, and when did that write
-- complete? Partial: only rows entering done pay for it.
create index loyverse_price_sync_queue_product_id_done_idx
    on loyverse.loyverse_price_sync_queue (product_id, completed_at) where status = 'done';

create index loyverse_price_sync_queue_completed_at_idx
    on loyverse.loyverse_price_sync_queue (completed_at) where status in ('done', 'cancelled');

-- One restaurant's recent successes (price_sync_status for one restaurant, the console's
-- chart): without it, sync/status read every restaurant's last day of done rows (0063).
create index loyverse_price_sync_queue_restaurant_id_completed_at_idx
    on loyverse.loyverse_price_sync_queue (restaurant_id, completed_at) where status = 'done';

comment on table loyverse.loyverse_price_sync_queue is
    'Price changes waiting for, in, or done with their write to Loyverse. Internal: query '
    'loyverse.price_sync_status and the other views.';

comment on column loyverse.loyverse_price_sync_queue.old_price is 'Price before the first change this row coalesces.';

comment on column loyverse.loyverse_price_sync_queue.new_price is 'Price after the last change this row coalesces.';

comment on column loyverse.loyverse_price_sync_queue.price_to_send is 'new_price after the restaurant''s rounding rule and the currency''s decimals.';

comment on column loyverse.loyverse_price_sync_queue.version is 'Bumped by each coalesced change.';

comment on column loyverse.loyverse_price_sync_queue.approved_at is
    'When a person released this change past the guardrails (loyverse.approve_held_price_changes, or '
    'loyverse.make_price_fixed); the claim does not hold an approved row again.';

comment on column loyverse.loyverse_price_sync_queue.loyverse_item_id is
    'The mapping''s Loyverse item when the row was queued (copied when queued), so a claim groups whole '
    'items through an index. Null only for rows inserted by hand: the claim copies it from the mapping.';

-- ---- sql/0162_table_loyverse_price_sync_outcome_totals.sql ----
-- Cumulative outcomes of price changes per restaurant: what `loyverse-sync metrics` exports as
-- the counter loyverse_sync_items_total. Kept apart from the queue so that a scrape reads a
-- few rows per restaurant, and so that pruning the queue, retrying or resolving rows, or
-- deleting an account never lowers a total. A restaurant's totals go with the restaurant.
create table loyverse.loyverse_price_sync_outcome_totals (
    restaurant_id uuid not null references public.restaurants (id) on delete cascade,
    outcome text not null
        constraint outcome_total_outcome_is_valid check (outcome in ('done', 'failed', 'dead')),
    total bigint not null default 0
        constraint outcome_total_is_nonnegative check (total >= 0),
    constraint loyverse_price_sync_outcome_totals_pkey primary key (restaurant_id, outcome)
);

comment on table loyverse.loyverse_price_sync_outcome_totals is
    'How many times a price-sync queue row of each restaurant entered status done, failed or dead '
    '(a row that enters one again counts again). Only ever increases: kept by '
    'loyverse.complete_price_sync_batch and the queue''s trigger _100_count_outcome; '
    'seeded by migration 0056 from the queue rows retained then. '
    'Read by `loyverse-sync metrics`.';

comment on column loyverse.loyverse_price_sync_outcome_totals.total is
    'Times a row of this restaurant entered this outcome (loyverse_sync_items_total).';

-- ---- sql/0165_table_loyverse_sync_logs.sql ----
-- The audit of every sync batch, import run and undo, with counts and error details.
create table loyverse.loyverse_sync_logs (
    id bigint generated always as identity primary key,
    restaurant_id uuid references public.restaurants (id) on delete set null,
    account_id bigint references loyverse.loyverse_accounts (id) on delete set null,
    sync_type text not null
        constraint sync_type_is_valid check (sync_type in ('PRICE_SYNC', 'MENU_IMPORT', 'IMPORT_UNDO', 'MANUAL_TRIGGER', 'RETRY', 'NOTIFICATION',
                                                             'SETTINGS_CHANGE', 'API_KEY', 'APPROVE', 'REJECT', 'MAKE_FIXED')),
    status text not null default 'RUNNING'
        constraint sync_log_status_is_valid check (status in ('RUNNING', 'SUCCESS', 'FAILED', 'PARTIAL')),
    items_total integer not null default 0,
    items_succeeded integer not null default 0,
    items_failed integer not null default 0,
    items_skipped integer not null default 0,
    requests_made integer not null default 0,
    error_details jsonb not null default '[]',
    details jsonb not null default '{}',
    started_at timestamptz not null default now(),
    completed_at timestamptz,
    actor text default loyverse.current_actor(),  -- who (api-key:, console:, cli:, sql:); null before 0063
    db_role text default session_user,
    constraint sync_log_counts_are_nonnegative check (items_total >= 0 and items_succeeded >= 0 and items_failed >= 0 and items_skipped >= 0 and requests_made >= 0),
    constraint sync_log_completes_after_it_starts check (completed_at is null or completed_at >= started_at)
);

create index loyverse_sync_logs_restaurant_id_started_at_idx on loyverse.loyverse_sync_logs (restaurant_id, started_at desc);

create index loyverse_sync_logs_started_at_idx on loyverse.loyverse_sync_logs (started_at desc);

comment on table loyverse.loyverse_sync_logs is 'One row per sync batch, import run or undo, with counts and error details.';

comment on column loyverse.loyverse_sync_logs.actor is
    'Who made the change: api-key:<name>, console:<key name>, cli:<os user>, worker, or sql:<role> (loyverse.current_actor()).';

comment on column loyverse.loyverse_sync_logs.db_role is 'The database role (session user) that wrote the row.';

-- ---- sql/0170_table_loyverse_import_runs.sql ----
-- Menu imports from Loyverse with their live progress (items_done of items_total) and outcome.
create table loyverse.loyverse_import_runs (
    id bigint generated always as identity primary key,
    restaurant_id uuid not null references public.restaurants (id) on delete cascade,
    account_id bigint references loyverse.loyverse_accounts (id) on delete set null,
    snapshot_id bigint,
    status text not null default 'PENDING'
        constraint import_run_status_is_valid check (status in ('PENDING', 'RUNNING', 'SUCCESS', 'PARTIAL', 'FAILED', 'UNDONE')),
    dry_run boolean not null default false,
    options jsonb not null default '{}',
    items_total integer not null default 0,
    items_done integer not null default 0,
    created_count integer not null default 0,
    updated_count integer not null default 0,
    skipped_count integer not null default 0,
    duplicated_count integer not null default 0,
    failed_count integer not null default 0,
    report jsonb not null default '{}',
    error text,
    started_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    completed_at timestamptz,
    undone_at timestamptz
);

create index loyverse_import_runs_restaurant_id_idx on loyverse.loyverse_import_runs (restaurant_id, started_at desc);

comment on table loyverse.loyverse_import_runs is 'Menu imports from Loyverse, with live progress (items_done of items_total).';

-- ---- sql/0175_table_loyverse_import_journal.sql ----
-- Before- and after-images of every row an import touched, so `import undo` restores them exactly.
create table loyverse.loyverse_import_journal (
    id bigint generated always as identity primary key,
    run_id bigint not null references loyverse.loyverse_import_runs (id) on delete cascade,
    table_name text not null
        constraint journal_table_is_known check (table_name in ('categories', 'product_groups', 'products', 'modifier_groups', 'modifier_options', 'product_modifier_groups', 'loyverse_item_mappings')),
    row_key text not null,
    action text not null
        constraint journal_action_is_valid check (action in ('INSERT', 'UPDATE', 'DELETE')),
    before_image jsonb,
    after_image jsonb,
    created_at timestamptz not null default now(),
    constraint loyverse_import_journal_run_id_table_name_row_key_key unique (run_id, table_name, row_key),
    constraint updates_keep_a_before_image check (action = 'INSERT' or before_image is not null)
);

comment on table loyverse.loyverse_import_journal is
    'Before- and after-images of every row an import run touched, so `import undo` can restore them.';
comment on column loyverse.loyverse_import_journal.row_key is
    'The row''s key (id, or product_id:modifier_group_id for a link); for rows an import created, '
    'journaled set-based, ''#<xid>.<batch>.<chunk>'' with after_image a JSON array of up to 5,000 row images.';

-- ---- sql/0180_table_loyverse_notification_outbox.sql ----
-- Emails waiting to be sent (error digests, alerts, recoveries): written in the transaction
-- that decides them, sent by the worker, so none is lost or sent for a rolled-back change.
create table loyverse.loyverse_notification_outbox (
    id bigint generated always as identity primary key,
    restaurant_id uuid references public.restaurants (id) on delete cascade,
    kind text not null
        constraint notification_kind_is_valid check (kind in ('ERROR_DIGEST', 'ALERT', 'RECOVERY')),
    recipient text not null
        constraint notification_recipient_is_an_email check (recipient ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$'),
    subject text not null,
    body text not null,
    payload jsonb not null default '{}',
    dedupe_key text,
    status text not null default 'pending'
        constraint notification_status_is_valid check (status in ('pending', 'sending', 'sent', 'failed')),
    attempts integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    last_error text,
    created_at timestamptz not null default now(),
    sent_at timestamptz,
    constraint loyverse_notification_outbox_dedupe_key_key unique (dedupe_key)
);

create index loyverse_notification_outbox_pending_idx on loyverse.loyverse_notification_outbox (next_attempt_at) where status = 'pending';

comment on table loyverse.loyverse_notification_outbox is 'Emails waiting to be sent (error digests, alerts, recoveries); sent by the worker.';

-- ---- sql/0182_table_loyverse_inbound_settings.sql ----
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

-- ---- sql/0184_table_loyverse_inbox.sql ----
-- Every delivery from Loyverse (webhook, poll page) stored as received, before anything is
-- parsed: one INSERT, idempotent on redelivery (same account, same body bytes = one row).
create table loyverse.loyverse_inbox (
    id bigint generated always as identity primary key,
    account_id bigint not null references loyverse.loyverse_accounts (id) on delete cascade,
    source text not null
        constraint inbox_source_is_valid check (source in ('webhook', 'poll', 'refresh', 'reconcile')),
    received_at timestamptz not null default now(),
    headers jsonb not null default '{}',
    body bytea not null,
    body_sha256 bytea not null generated always as (sha256(body)) stored,
    status text not null default 'pending'
        constraint inbox_status_is_valid check (status in ('pending', 'applied', 'failed')),
    attempts integer not null default 0
        constraint inbox_attempts_is_nonnegative check (attempts >= 0),
    next_attempt_at timestamptz not null default now(),
    applied_at timestamptz,
    result jsonb,
    last_error text,
    constraint loyverse_inbox_account_id_body_sha256_key unique (account_id, body_sha256)
);

-- The apply job: an account's pending deliveries in arrival order.
create index loyverse_inbox_account_id_id_idx on loyverse.loyverse_inbox (account_id, id) where status = 'pending';

create index loyverse_inbox_received_at_idx on loyverse.loyverse_inbox (received_at);

comment on table loyverse.loyverse_inbox is
    'Deliveries from Loyverse as received (webhooks, poll pages), applied by the apply_loyverse_inbox job; '
    'status pending -> applied | failed (result: counts of each decision; the decisions are in '
    'loyverse_inbound_audit).';

-- ---- sql/0186_table_loyverse_inbound_objects.sql ----
-- The newest version of each Loyverse object we applied, and tombstones: a delivery older
-- than what we have (reordered, retried for 48 h) or about a deleted object changes nothing.
create table loyverse.loyverse_inbound_objects (
    account_id bigint not null references loyverse.loyverse_accounts (id) on delete cascade,
    kind text not null
        constraint inbound_object_kind_is_valid check (kind in ('item', 'variant', 'inventory_level')),
    loyverse_id text not null,
    updated_at timestamptz,
    deleted_at timestamptz,
    name text,
    seen_at timestamptz not null default now(),
    primary key (account_id, kind, loyverse_id)
);

comment on table loyverse.loyverse_inbound_objects is
    'Per Loyverse item / variant / inventory level (variant_id/store_id): the updated_at of the newest '
    'version applied and, once deleted, its tombstone (deleted_at). Deletions in Loyverse are final.';

-- ---- sql/0188_table_loyverse_inbound_audit.sql ----
-- The audit trail of changes heard from Loyverse: every decision the apply job (and the
-- receiver, reconciliation) took, with the prices it compared.
create table loyverse.loyverse_inbound_audit (
    id bigint generated always as identity primary key,
    at timestamptz not null default now(),
    account_id bigint references loyverse.loyverse_accounts (id) on delete cascade,
    restaurant_id uuid references public.restaurants (id) on delete set null,
    inbox_id bigint references loyverse.loyverse_inbox (id) on delete set null,
    product_id uuid,
    loyverse_id text,
    decision text not null
        constraint inbound_decision_is_valid check (decision in (
            'PRICE_APPLIED', 'ECHO_IGNORED', 'AGREED', 'CONFLICT_HELD', 'CONFLICT_KEPT_OURS',
            'CONFLICT_KEPT_THEIRS', 'STALE_IGNORED', 'TOMBSTONE_IGNORED', 'ITEM_CREATED', 'ITEM_RENAMED',
            'ITEM_DELETED', 'VARIANT_DELETED', 'STOCK_APPLIED', 'DELIVERY_REJECTED', 'DELIVERY_FAILED',
            'DRIFT_FOUND', 'DRIFT_REPAIRED')),
    applied boolean not null default false,
    our_price numeric(12, 2),
    loyverse_price numeric(12, 3),
    details jsonb not null default '{}'
);

create index loyverse_inbound_audit_restaurant_id_at_idx on loyverse.loyverse_inbound_audit (restaurant_id, at desc);

create index loyverse_inbound_audit_inbox_id_idx on loyverse.loyverse_inbound_audit (inbox_id);

create index loyverse_inbound_audit_at_idx on loyverse.loyverse_inbound_audit (at);

comment on table loyverse.loyverse_inbound_audit is
    'Every decision on a change heard from Loyverse: prices applied, echoes of our own writes ignored, '
    'conflicts and how the restaurant''s conflict_policy decided them, stale or tombstoned deliveries, '
    'catalog changes (reported, or applied: applied = true), rejected deliveries, reconciliation drift.';
comment on column loyverse.loyverse_inbound_audit.our_price is 'products.price when the decision was taken.';
comment on column loyverse.loyverse_inbound_audit.loyverse_price is 'The store price Loyverse reported.';

-- ---- sql/0190_table_loyverse_price_drift.sql ----
-- What the last reconciliation of a restaurant found: each mapped product whose price or
-- availability differs from Loyverse (or whose item is gone there), until repaired.
create table loyverse.loyverse_price_drift (
    restaurant_id uuid not null references public.restaurants (id) on delete cascade,
    product_id uuid not null references public.products (id) on delete cascade,
    account_id bigint not null references loyverse.loyverse_accounts (id) on delete cascade,
    loyverse_item_id text not null,
    loyverse_variant_id text not null,
    kind text not null
        constraint drift_kind_is_valid check (kind in ('price', 'availability', 'missing')),
    our_price numeric(12, 3),
    loyverse_price numeric(12, 3),
    our_available boolean,
    loyverse_available boolean,
    found_at timestamptz not null default now(),
    repaired_at timestamptz,
    repair text,
    primary key (restaurant_id, product_id, kind)
);

comment on table loyverse.loyverse_price_drift is
    'Drift found by `sync reconcile` (replaced per restaurant on each run); read it through loyverse.price_drift.';

-- ---- sql/0200_table_loyverse_snapshots.sql ----
-- Menu snapshots fetched from Loyverse (import fetch): one row per fetch, with its time, so
-- preview and run reuse a recent snapshot instead of fetching the whole menu again.
create table loyverse.loyverse_snapshots (
    id bigint generated always as identity primary key,
    account_id bigint not null references loyverse.loyverse_accounts (id) on delete cascade,
    restaurant_id uuid references public.restaurants (id) on delete cascade,
    store_id text,
    merchant jsonb not null default '{}',
    with_inventory boolean not null default false,
    show_deleted boolean not null default true,
    requests_made integer not null default 0,
    pages integer not null default 0,
    counts jsonb not null default '{}',
    fetch_seconds double precision,
    fetched_at timestamptz not null default now(),
    constraint snapshot_requests_are_nonnegative check (requests_made >= 0 and pages >= 0)
);

create index loyverse_snapshots_account_id_fetched_at_idx on loyverse.loyverse_snapshots (account_id, fetched_at desc);

comment on table loyverse.loyverse_snapshots is
    'A whole Loyverse menu as fetched at fetched_at (raw objects in loyverse_snapshot_objects). '
    'A snapshot row exists only once every page arrived: a failed fetch writes nothing.';
comment on column loyverse.loyverse_snapshots.counts is 'Objects fetched per kind, e.g. {"item": 120, "category": 8}.';

-- ---- sql/0205_table_loyverse_snapshot_objects.sql ----
-- The raw JSON objects of a snapshot, exactly as Loyverse sent them (no cleaning here: the
-- import functions validate them, so a hostile object is reported, not silently fixed).
create table loyverse.loyverse_snapshot_objects (
    snapshot_id bigint not null references loyverse.loyverse_snapshots (id) on delete cascade,
    seq integer not null,
    kind text not null
        constraint snapshot_object_kind_is_valid check (kind in ('store', 'category', 'item', 'modifier', 'tax', 'inventory')),
    loyverse_id text,
    payload jsonb not null,
    primary key (snapshot_id, seq)
);

create index loyverse_snapshot_objects_snapshot_id_kind_loyverse_id_idx
    on loyverse.loyverse_snapshot_objects (snapshot_id, kind, loyverse_id);

comment on table loyverse.loyverse_snapshot_objects is
    'Raw Loyverse objects of a snapshot in fetch order (seq). loyverse_id is the object''s id when '
    'it is a string (variant_id:store_id for inventory levels), else null.';

-- ---- sql/0210_table_loyverse_object_mappings.sql ----
-- Which of our categories, product groups, modifier groups and options came from which
-- Loyverse object, so a re-import renames in place instead of creating another copy.
create table loyverse.loyverse_object_mappings (
    restaurant_id uuid not null references public.restaurants (id) on delete cascade,
    kind text not null
        constraint object_mapping_kind_is_valid check (kind in ('category', 'item', 'modifier', 'modifier_option')),
    loyverse_id text not null,
    local_id uuid not null,
    import_run_id bigint references loyverse.loyverse_import_runs (id) on delete set null,
    created_at timestamptz not null default now(),
    primary key (restaurant_id, kind, loyverse_id)
);

create index loyverse_object_mappings_import_run_id_idx on loyverse.loyverse_object_mappings (import_run_id);

comment on table loyverse.loyverse_object_mappings is
    'Loyverse category / item / modifier / modifier option id -> our categories / product_groups / '
    'modifier_groups / modifier_options row (local_id), per restaurant. Rows are only ever '
    'inserted by an import; undo removes those its run inserted.';
comment on column loyverse.loyverse_object_mappings.import_run_id is 'The import run that created this mapping.';

-- ---- sql/0215_table_loyverse_import_plan.sql ----
-- An import run's plan: one row per Loyverse variant, with its validated values, the
-- conflict found, the decision and (after the write) its outcome. Built by import_plan().
create table loyverse.loyverse_import_plan (
    run_id bigint not null references loyverse.loyverse_import_runs (id) on delete cascade,
    row_no integer not null,
    item_id text,
    variant_id text,
    item_seq integer not null,
    batch_no integer not null default 0,
    item_name text,
    name text,
    sku text,
    price numeric(12, 2),
    loyverse_price numeric,
    price_factor numeric(12, 6) not null default 1,
    stock_quantity numeric(12, 3),
    is_active boolean not null default true,
    option1_value text,
    option2_value text,
    option3_value text,
    category_ref text,
    category_fallback boolean not null default false,
    modifier_ids text[] not null default '{}',
    extra jsonb not null default '{}',
    errors text[] not null default '{}',
    needs_attention boolean not null default false,
    attention_reason text,
    match_rule text
        constraint plan_match_rule_is_valid check (match_rule in ('mapping', 'sku', 'name')),
    matched_product_id uuid,
    matched_name text,
    matched_variant_id text,
    decision text
        constraint plan_decision_is_valid check (decision in ('create', 'update', 'skip', 'duplicate', 'fail')),
    decision_reason text,
    product_id uuid,
    group_id uuid,
    outcome text
        constraint plan_outcome_is_valid check (outcome in ('created', 'updated', 'unchanged', 'skipped', 'duplicated', 'failed')),
    done boolean not null default false,
    primary key (run_id, row_no)
);

create index loyverse_import_plan_run_id_batch_no_idx on loyverse.loyverse_import_plan (run_id, batch_no) where not done;

comment on table loyverse.loyverse_import_plan is
    'Per run and Loyverse variant: validated values, conflict (match_rule: mapping, sku or name), '
    'decision and outcome. product_id is chosen when planning, so a resumed run never duplicates.';
comment on column loyverse.loyverse_import_plan.decision is
    'create | update | skip | duplicate | fail; null = a conflict still undecided (manual mode).';
comment on column loyverse.loyverse_import_plan.price_factor is
    'price / loyverse_price: the tax conversion applied (see loyverse_item_mappings.price_factor).';

-- ---- sql/0220_table_loyverse_import_plan_objects.sql ----
-- An import run's plan for the objects around products: categories, product groups (one per
-- multi-variant item), modifier groups and options; each matched by mapping or name, or new.
create table loyverse.loyverse_import_plan_objects (
    run_id bigint not null references loyverse.loyverse_import_runs (id) on delete cascade,
    kind text not null
        constraint plan_object_kind_is_valid check (kind in ('category', 'item', 'modifier', 'modifier_option')),
    loyverse_id text not null,
    parent_loyverse_id text,
    name text not null,
    price numeric(12, 2),
    position integer,
    option1_name text,
    option2_name text,
    option3_name text,
    description text,
    local_id uuid not null,
    match_rule text
        constraint plan_object_match_rule_is_valid check (match_rule in ('mapping', 'name')),
    decision text not null
        constraint plan_object_decision_is_valid check (decision in ('create', 'update')),
    primary key (run_id, kind, loyverse_id)
);

comment on table loyverse.loyverse_import_plan_objects is
    'Per run: the categories, product groups, modifier groups and options to create or update '
    '(local_id is our row; match_rule says how an existing one was found).';

-- ---- sql/0225_table_loyverse_import_issues.sql ----
-- What an import run could not carry over faithfully, or rejected: the fidelity report and
-- the validation errors, one row per finding.
create table loyverse.loyverse_import_issues (
    id bigint generated always as identity primary key,
    run_id bigint not null references loyverse.loyverse_import_runs (id) on delete cascade,
    severity text not null
        constraint issue_severity_is_valid check (severity in ('error', 'warning', 'fidelity')),
    code text not null,
    item_id text,
    variant_id text,
    name text,
    message text not null
);

create index loyverse_import_issues_run_id_idx on loyverse.loyverse_import_issues (run_id);

comment on table loyverse.loyverse_import_issues is
    'Findings of an import run: error (the variant was not imported), warning (imported, something '
    'dropped), fidelity (imported, but cannot behave exactly as in Loyverse: VARIABLE price, composite, '
    'sold by weight, several taxes, modifier unavailable in the store, deleted in Loyverse).';

-- ---- sql/0240_table_loyverse_api_call_stats.sql ----
-- Per-minute statistics of Loyverse API calls (counts and latency histograms), aggregated in
-- SQL so recording a call is one upsert, not one row per request.
create table loyverse.loyverse_api_call_stats (
    account_id bigint not null references loyverse.loyverse_accounts (id) on delete cascade,
    bucket_start timestamptz not null,
    method text not null,
    endpoint text not null,
    status integer not null,
    calls bigint not null default 0
        constraint api_calls_is_nonnegative check (calls >= 0),
    total_seconds double precision not null default 0,
    max_seconds double precision not null default 0,
    latency_buckets bigint[] not null default '{0,0,0,0,0,0,0,0,0,0}',
    constraint loyverse_api_call_stats_pkey primary key (account_id, bucket_start, method, endpoint, status),
    constraint latency_buckets_has_ten_bounds check (cardinality(latency_buckets) = 10)
);

create index loyverse_api_call_stats_bucket_start_idx on loyverse.loyverse_api_call_stats (bucket_start);

comment on table loyverse.loyverse_api_call_stats is
    'Loyverse API calls per account, minute, method, endpoint and HTTP status (0 = no response). '
    'latency_buckets counts calls at or under 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 s and above. '
    'Internal: query loyverse.api_latency.';

-- ---- sql/0245_table_loyverse_alert_state.sql ----
-- Open and recovered alert breaches per restaurant, so an alert is mailed once per change.
create table loyverse.loyverse_alert_state (
    restaurant_id uuid not null references public.restaurants (id) on delete cascade,
    alert text not null
        constraint alert_is_known check (alert in ('FAILURE_RATE', 'QUEUE_DEPTH', 'OLDEST_PENDING', 'DEAD_LETTERS', 'PRICE_DRIFT')),
    breached_at timestamptz not null default now(),
    recovered_at timestamptz,
    value double precision,
    threshold double precision,
    constraint loyverse_alert_state_pkey primary key (restaurant_id, alert, breached_at)
);

create unique index loyverse_alert_state_open_idx on loyverse.loyverse_alert_state (restaurant_id, alert)
    where recovered_at is null;

comment on table loyverse.loyverse_alert_state is 'Alert breaches per restaurant: open while recovered_at is null.';

-- ---- sql/0250_table_loyverse_api_keys.sql ----
-- API keys of `loyverse-sync serve` (JSON API and console sign-in). Only the SHA-256 of a
-- key is stored; a restaurant key reaches its restaurant, an admin key every restaurant.
create table loyverse.loyverse_api_keys (
    id bigint generated always as identity primary key,
    name text not null
        constraint api_key_name_is_not_blank check (btrim(name) <> ''),
    key_hash bytea not null
        constraint api_key_hash_is_sha256 check (length(key_hash) = 32),
    restaurant_id uuid references public.restaurants (id) on delete cascade,
    is_admin boolean not null default false,
    created_at timestamptz not null default now(),
    created_by text not null default loyverse.current_actor(),
    last_used_at timestamptz,
    revoked_at timestamptz,
    revoked_by text,
    constraint api_key_is_admin_or_one_restaurant check (is_admin = (restaurant_id is null))
);

create unique index loyverse_api_keys_key_hash_idx on loyverse.loyverse_api_keys (key_hash);

create unique index loyverse_api_keys_name_idx on loyverse.loyverse_api_keys (name);

comment on table loyverse.loyverse_api_keys is
    'API keys of the HTTP server (sha256 only). Manage with `loyverse-sync apikey create|list|revoke` '
    'or loyverse.create_api_key / revoke_api_key; read loyverse.api_keys.';

-- ---- sql/0255_table_loyverse_restaurant_roles.sql ----
-- Which restaurants each of the main app's database roles may read in the status and history
-- views (a member of loyverse_app sees only these; operators see all). A DBA manages it with
-- loyverse.grant_restaurant_to_role / revoke_restaurant_from_role (`loyverse-sync restaurant grant-role`).
create table loyverse.loyverse_restaurant_roles (
    role_name text not null,
    restaurant_id uuid not null references public.restaurants (id) on delete cascade,
    granted_at timestamptz not null default now(),
    granted_by text not null default loyverse.current_actor(),
    primary key (role_name, restaurant_id)
);

create index loyverse_restaurant_roles_restaurant_id_idx on loyverse.loyverse_restaurant_roles (restaurant_id);

comment on table loyverse.loyverse_restaurant_roles is
    'Restaurants a database role of the main app may read in the status and history views (by role name: '
    'a grant to a group role reaches its members). Managed with loyverse.grant_restaurant_to_role.';

-- ---- sql/0300_function_rate_governor_take.sql ----
-- The rate governor's one call per Loyverse request: reserve slots in the account's shared
-- bucket and say how long to wait, so all processes together stay under the budget.
create function loyverse.rate_governor_take(p_account_id bigint, p_requests integer default 1)
returns double precision
language plpgsql
set search_path = ''
as $$
-- Reserve p_requests slots and return how many seconds the caller must wait before sending.
-- Refill rate = rate_limit_requests * safety / window; burst = what the safety margin leaves
-- spare, halved, so burst + rate * window stays under the documented limit in ANY window.
-- Reservations make tokens negative: later callers queue up behind earlier ones, in order.
-- Called before every Loyverse request, so the common case is two statements: the account's
-- limits, then one UPDATE that computes the new tokens from the row it locks.
declare
    v_limit integer;
    v_window double precision;
    v_safety double precision;
    v_rate double precision;
    v_burst double precision;
    v_now timestamptz := clock_timestamp();
    v_tokens double precision;
    v_slow boolean;
begin
    if p_requests is null or p_requests < 1 then
        raise exception 'rate_governor_take: p_requests must be >= 1, got %', p_requests
            using errcode = 'invalid_parameter_value';
    end if;
    select a.rate_limit_requests, a.rate_limit_window_seconds, a.rate_limit_safety
      into v_limit, v_window, v_safety
      from loyverse.loyverse_accounts a where a.id = p_account_id;
    if not found then
        raise exception 'rate_governor_take: no Loyverse account with id %', p_account_id
            using errcode = 'no_data_found';
    end if;
    v_rate := v_limit * v_safety / v_window;
    v_burst := greatest(1, floor(v_limit * (1 - v_safety) / 2));

    for i in 1..2 loop
        -- The row lock serialises takers of one account; it is held for microseconds. The SET
        -- expressions see the row as locked (the latest version), like a SELECT ... FOR UPDATE.
        update loyverse.loyverse_account_rate_state s
           set tokens = least(v_burst, s.tokens + extract(epoch from v_now - s.refreshed_at)
                                       -- after a 429 we spend half the budget for one window
                                       * case when s.slow_until > v_now then v_rate / 2 else v_rate end)
                        - p_requests,
               refreshed_at = v_now,
               requests_total = s.requests_total + p_requests
         where s.account_id = p_account_id
        returning s.tokens, s.slow_until > v_now
             into v_tokens, v_slow;
        if found then
            if v_slow then
                v_rate := v_rate / 2;
            end if;
            return case when v_tokens >= 0 then 0 else -v_tokens / v_rate end;
        end if;
        -- The account's first take: create its bucket full (unless a concurrent taker just
        -- did), then take from it.
        insert into loyverse.loyverse_account_rate_state (account_id, tokens, refreshed_at)
        values (p_account_id, v_burst, v_now)
        on conflict (account_id) do nothing;
    end loop;
    -- only when the account was deleted while we ran
    raise exception 'rate_governor_take: no Loyverse account with id %', p_account_id
        using errcode = 'no_data_found';
end;
$$;

comment on function loyverse.rate_governor_take(bigint, integer) is
    'Reserve p_requests Loyverse requests for the account; returns the seconds to wait before sending them.';

-- ---- sql/0305_function_rate_governor_penalize.sql ----
-- After a 429: pause every process on the account and halve its rate for one window.
create function loyverse.rate_governor_penalize(p_account_id bigint, p_retry_after double precision default null)
returns void
language plpgsql
set search_path = ''
as $$
-- Called after a 429: nobody sends for p_retry_after seconds (or window/limit * 8 when
-- Loyverse said nothing), and the refill runs at half speed for one window.
declare
    v_limit integer;
    v_window double precision;
    v_safety double precision;
    v_rate double precision;
    v_pause double precision;
    v_now timestamptz := clock_timestamp();
begin
    select a.rate_limit_requests, a.rate_limit_window_seconds, a.rate_limit_safety
      into v_limit, v_window, v_safety
      from loyverse.loyverse_accounts a where a.id = p_account_id;
    if not found then
        raise exception 'rate_governor_penalize: no Loyverse account with id %', p_account_id
            using errcode = 'no_data_found';
    end if;
    v_rate := v_limit * v_safety / v_window / 2;
    v_pause := greatest(coalesce(p_retry_after, 0), v_window / v_limit * 8);

    insert into loyverse.loyverse_account_rate_state (account_id, tokens, refreshed_at)
    values (p_account_id, 0, v_now)
    on conflict (account_id) do nothing;

    update loyverse.loyverse_account_rate_state s
       set tokens = least(s.tokens, 0) - v_pause * v_rate,
           refreshed_at = greatest(s.refreshed_at, v_now),
           throttled_until = v_now + make_interval(secs => v_pause),
           slow_until = v_now + make_interval(secs => v_window),
           rate_limited_total = s.rate_limited_total + 1,
           last_rate_limited_at = v_now
     where s.account_id = p_account_id;
end;
$$;

comment on function loyverse.rate_governor_penalize(bigint, double precision) is
    'Record a 429 from Loyverse: pause the account''s sends and halve its rate for one window.';

-- ---- sql/0320_function_round_price.sql ----
-- The price a restaurant sends to Loyverse: its rounding rule applied to our price, at the
-- account currency's decimals. Pure and immutable, so it can run inside the trigger's set.
-- No SET search_path on purpose: a SET clause keeps the planner from inlining a SQL function,
-- and the trigger then runs it as a separate query per row (measured: most of a 20,000-row
-- bulk UPDATE's trigger time). Every function and operator is schema-qualified instead, so
-- the caller's search_path cannot change what it does.
create function loyverse.round_price(p_price numeric, p_rule text, p_decimal_places integer)
returns numeric
language sql
immutable
parallel safe
as $$
    -- The step of a rule is never finer than the currency allows: NEAREST_0.05 in a
    -- 1-decimal currency rounds to 0.1, every rule in a 0-decimal currency rounds to 1
    -- (decimal_places is 0..3: accounts.decimal_places_is_between_0_and_3).
    select pg_catalog.round(
        case
            when p_rule operator(pg_catalog.=) 'NONE' then p_price
            when p_rule operator(pg_catalog.=) 'NEAREST_0.05' then
                pg_catalog.round(p_price operator(pg_catalog./) (case when p_decimal_places operator(pg_catalog.>=) 2 then 0.05 when p_decimal_places operator(pg_catalog.=) 1 then 0.1 else 1.0 end))
                    operator(pg_catalog.*) (case when p_decimal_places operator(pg_catalog.>=) 2 then 0.05 when p_decimal_places operator(pg_catalog.=) 1 then 0.1 else 1.0 end)
            when p_rule operator(pg_catalog.=) 'NEAREST_0.10' then
                pg_catalog.round(p_price operator(pg_catalog./) (case when p_decimal_places operator(pg_catalog.>=) 1 then 0.10 else 1.0 end))
                    operator(pg_catalog.*) (case when p_decimal_places operator(pg_catalog.>=) 1 then 0.10 else 1.0 end)
            when p_rule operator(pg_catalog.=) 'UP' then
                pg_catalog.ceil(p_price operator(pg_catalog./) (case when p_decimal_places operator(pg_catalog.>=) 1 then 0.10 else 1.0 end))
                    operator(pg_catalog.*) (case when p_decimal_places operator(pg_catalog.>=) 1 then 0.10 else 1.0 end)
            when p_rule operator(pg_catalog.=) 'DOWN' then
                pg_catalog.floor(p_price operator(pg_catalog./) (case when p_decimal_places operator(pg_catalog.>=) 1 then 0.10 else 1.0 end))
                    operator(pg_catalog.*) (case when p_decimal_places operator(pg_catalog.>=) 1 then 0.10 else 1.0 end)
        end,
        p_decimal_places)
$$;
comment on function loyverse.round_price(numeric, text, integer) is
    'Price after a rounding rule, at the currency''s decimals. NONE: the currency''s decimals '
    '(half away from zero); NEAREST_0.05 / NEAREST_0.10: nearest multiple (ties away from zero); '
    'UP / DOWN: the next multiple of 0.10 at or above / at or below. A step finer than the '
    'currency allows becomes one unit of its last decimal (1 for 0-decimal currencies). '
    'Unknown rule: null.';

-- ---- sql/0321_function_price_to_send.sql ----
-- What Loyverse should hold for one of our prices: the restaurant's rounding rule applied to
-- our price (what the customer pays here), divided by the mapping's price factor (the menu
-- import's tax conversion, e.g. 1.05 when Loyverse adds a 5 % tax on top of its price; 1 when
-- none), at the currency's decimals. No SET search_path, so it inlines (see round_price).
create function loyverse.price_to_send(p_price numeric, p_rule text, p_decimal_places integer, p_price_factor numeric)
returns numeric
language sql
immutable
parallel safe
as $$
    select pg_catalog.round(
        loyverse.round_price(p_price, p_rule, p_decimal_places)
            operator(pg_catalog./) coalesce(nullif(p_price_factor, 0::numeric), 1::numeric),
        p_decimal_places)
$$;
comment on function loyverse.price_to_send(numeric, text, integer, numeric) is
    'The price to write to Loyverse for our price: round_price(price, rule, decimals) / price_factor, at the '
    'currency''s decimals. Example: 4.83 with NONE, 2 decimals and factor 1.05 (an ADDED 5 % tax) -> 4.60.';

-- ---- sql/0322_function_price_sync_due_at.sql ----
-- When a freshly queued change becomes due under a restaurant's sync frequency: the queue's
-- next_attempt_at carries the frequency, so one claim query serves every frequency.
-- No SET search_path on purpose (like loyverse.round_price): the trigger calls it per row and
-- only an inlined SQL function is cheap there; every name is schema-qualified instead.
create function loyverse.price_sync_due_at(p_frequency text)
returns timestamptz
language sql
stable
as $$
    select case
        when p_frequency operator(pg_catalog.=) 'REALTIME' then pg_catalog.now()
        when p_frequency operator(pg_catalog.=) 'BATCH_5MIN' then
            pg_catalog.date_bin('5 minutes'::pg_catalog.interval, pg_catalog.now(), '2000-01-01 00:00+00'::pg_catalog.timestamptz)
                operator(pg_catalog.+) '5 minutes'::pg_catalog.interval
        when p_frequency operator(pg_catalog.=) 'BATCH_HOURLY' then
            pg_catalog.date_bin('1 hour'::pg_catalog.interval, pg_catalog.now(), '2000-01-01 00:00+00'::pg_catalog.timestamptz)
                operator(pg_catalog.+) '1 hour'::pg_catalog.interval
        else 'infinity'::pg_catalog.timestamptz  -- MANUAL: only loyverse.trigger_price_sync() makes it due
    end
$$;
comment on function loyverse.price_sync_due_at(text) is
    'next_attempt_at of a new queue row: REALTIME now; BATCH_5MIN / BATCH_HOURLY the next 5-minute / '
    'hour boundary (UTC); MANUAL infinity (due only after an explicit trigger).';

-- ---- sql/0323_function_category_is_synced.sql ----
-- A restaurant's category filters, the one definition: a product is synced to Loyverse when
-- include_category_ids is empty or holds its category, and exclude_category_ids does not.
-- No SET search_path on purpose (like loyverse.round_price): the products trigger's upsert
-- uses it per row and only an inlined SQL function is free there; every name is
-- schema-qualified instead.
create function loyverse.category_is_synced(p_category_id uuid, p_include uuid[], p_exclude uuid[])
returns boolean
language sql
immutable
as $$
    select (pg_catalog.cardinality(p_include) operator(pg_catalog.=) 0
            or p_category_id operator(pg_catalog.=) any (p_include))
       and (p_category_id is null or not p_category_id operator(pg_catalog.=) any (p_exclude))
$$;
comment on function loyverse.category_is_synced(uuid, uuid[], uuid[]) is
    'Whether a product of this category passes the include / exclude category filters '
    '(include empty = every category).';

-- ---- sql/0325_function_wake_price_sync.sql ----
-- Wake the worker for one Loyverse account: defer procrastinate's sync_loyverse_prices job,
-- coalesced by a queueing lock per account (at most one queued job) and a lock per account
-- (one running job). The only place that knows procrastinate's composite type.
create function loyverse.wake_price_sync(p_account_id bigint)
returns boolean
language plpgsql
security definer
-- procrastinate's own functions name their tables unqualified: they need public on the path
-- (PostgreSQL 15 gives PUBLIC no CREATE on schema public, so this path is not hijackable).
set search_path = public, pg_temp
as $$
declare
    v_lock text := 'loyverse_price_sync:' || p_account_id;
begin
    -- Check first: a swallowed unique_violation costs a subtransaction, a sequence value
    -- and a dead tuple (STACK.md), and a queued job already drains everything due.
    if exists (select 1 from public.procrastinate_jobs j
                where j.queueing_lock = v_lock and j.status = 'todo') then
        return false;
    end if;
    begin
        perform public.procrastinate_defer_jobs_v1(array[
            row('price_sync', 'sync_loyverse_prices', 0, v_lock, v_lock,
                jsonb_build_object('account_id', p_account_id), null)::public.procrastinate_job_to_defer_v1]);
    exception when unique_violation then
        return false;  -- a concurrent transaction queued it first
    end;
    return true;
end;
$$;
comment on function loyverse.wake_price_sync(bigint) is
    'Queue one sync_loyverse_prices job for the account unless one is already queued; true when a job was queued.';

-- ---- sql/0326_function_wake_price_sync_when_due.sql ----
-- After a drain: make sure the account is woken when its next pending row becomes due (a
-- retry's backoff, a BATCH_* boundary), instead of at the once-a-minute sweep. A second
-- queueing lock per account keeps this scheduled job apart from wake_price_sync's immediate one.
create function loyverse.wake_price_sync_when_due(p_account_id bigint)
returns timestamptz
language plpgsql
security definer
-- procrastinate's own functions name their tables unqualified (as in wake_price_sync)
set search_path = public, pg_temp
as $$
declare
    v_lock text := 'loyverse_price_sync:' || p_account_id;
    v_due_lock text := 'loyverse_price_sync_due:' || p_account_id;
    v_due timestamptz;
    v_job record;
begin
    select min(q.next_attempt_at) into v_due
      from loyverse.loyverse_price_sync_queue q
     where q.account_id = p_account_id and q.status = 'pending' and q.next_attempt_at > now();
    if v_due is null then
        return null;  -- nothing waits: what is due now is the running drain's or a queued job's
    end if;
    select j.id, j.scheduled_at into v_job
      from public.procrastinate_jobs j
     where j.queueing_lock = v_due_lock and j.status = 'todo';
    if found then
        if v_job.scheduled_at is not null and v_job.scheduled_at <= v_due then
            return v_job.scheduled_at;  -- an earlier wake is already booked; it re-books itself
        end if;
        perform public.procrastinate_cancel_job_v1(v_job.id, false, true);  -- too late: replace it
    end if;
    begin
        -- the same lock as the immediate job: never two drains of one account at once
        perform public.procrastinate_defer_jobs_v1(array[
            row('price_sync', 'sync_loyverse_prices', 0, v_lock, v_due_lock,
                jsonb_build_object('account_id', p_account_id), v_due)::public.procrastinate_job_to_defer_v1]);
    exception when unique_violation then
        null;  -- a concurrent drain booked it first
    end;
    return v_due;
end;
$$;

comment on function loyverse.wake_price_sync_when_due(bigint) is
    'Book a sync_loyverse_prices job for the moment the account''s next pending row is due (backoff, '
    'batch boundary); returns that moment, or null when nothing waits. Called by the worker after each drain.';

revoke execute on function loyverse.wake_price_sync_when_due(bigint) from public;
grant execute on function loyverse.wake_price_sync_when_due(bigint) to loyverse_worker;

-- ---- sql/0330_function_tg_products__enqueue_price_sync.sql ----
-- Statement-level trigger function on public.products: one set-based upsert of the price
-- sync queue per UPDATE statement (a 20,000-row bulk update is one statement, not 20,000 calls).
-- It fires for EVERY update of products, so a statement that changed no price must cost
-- next to nothing. Two things make that so:
--   * loyverse_sync.price_changed, a transaction-local flag set by the row trigger
--     _090_note_price_change (loyverse.tg_products__note_price_change) only when a row's
--     price really changes. That trigger is AFTER ... FOR EACH ROW: its WHEN sees the row as
--     stored, after every BEFORE trigger, so a price changed by a restaurant's own BEFORE
--     trigger during `UPDATE ... SET name = ...` is seen too (an `UPDATE OF price` trigger
--     would miss it: column lists only look at the SET list). Its AFTER ROW events fire
--     before this statement's AFTER STATEMENT event. Without the flag this function returns
--     at once: no query, no SPI. The flag is never cleared before the transaction ends (a
--     nested UPDATE's trigger could otherwise consume its outer statement's flag): later
--     statements of the transaction take the full path, which is correct, only slower.
--   * SECURITY INVOKER, no SET clause: a SECURITY DEFINER function with `SET search_path`
--     costs ~5 us per call, mostly the search path recomputed for the caller's next
--     statement. The queue is written by loyverse.enqueue_price_changes (SECURITY DEFINER,
--     called only when a price changed), so every name here is schema-qualified.
--
-- Plans: PL/pgSQL keeps the plan of each query from its first run in a session, made for the
-- transition tables' sizes of THAT run. A join of new_rows with old_rows planned for one row
-- is a nested loop, quadratic on a later 20,000-row update (measured: 115 s). So no query
-- here joins the two transition tables: the changed rows are a set difference (hashed or
-- sorted, never quadratic) of (id, old price) pairs, and the upsert reads the products'
-- current price and category itself, through an index.
create function loyverse.tg_products__enqueue_price_sync()
returns trigger
language plpgsql
as $$
declare
    v_ids pg_catalog.uuid[];
    v_old_prices pg_catalog.numeric[];
begin
    if pg_catalog.current_setting('loyverse_sync.price_changed', true) is distinct from 'on' then
        return null;  -- no price changed in this transaction so far
    end if;
    -- Prices written by the menu import come from Loyverse: never send them back.
    if pg_catalog.current_setting('loyverse_sync.origin', true) = 'loyverse' then
        return null;
    end if;
    -- The (id, old price) pairs that no new row repeats: the rows whose price changed (or
    -- whose id changed: only unmapped products can, the mappings' foreign key forbids it
    -- otherwise, and the upsert skips products that are not mapped).
    select pg_catalog.array_agg(c.id), pg_catalog.array_agg(c.price)
      into v_ids, v_old_prices
      from (select o.id, o.price from old_rows o
            except all
            select n.id, n.price from new_rows n) c;
    if v_ids is not null then
        perform loyverse.enqueue_price_changes(v_ids, v_old_prices);
    end if;
    return null;
end;
$$;
comment on function loyverse.tg_products__enqueue_price_sync() is
    'Queue the products whose price changed in this statement (mapped, sync enabled towards Loyverse, '
    'category filters passed) and wake the worker of each REALTIME account. Returns at once unless '
    '_090_note_price_change flagged a price change in this transaction; skipped when '
    'loyverse_sync.origin = ''loyverse'' (the menu import).';

-- ---- sql/0331_function_tg_products__note_price_change.sql ----
-- Row trigger function on public.products, fired only for rows whose stored price differs
-- from the old one (the trigger's WHEN): flags the transaction so that the statement
-- trigger (loyverse.tg_products__enqueue_price_sync) looks for price changes. For an UPDATE
-- that changes no price the WHEN is false for every row and this never runs.
-- An assignment, not PERFORM: PL/pgSQL evaluates it as a simple expression, without SPI.
create function loyverse.tg_products__note_price_change()
returns trigger
language plpgsql
as $$
declare
    v_ignored text;
begin
    v_ignored := pg_catalog.set_config('loyverse_sync.price_changed', 'on', true);
    return null;
end;
$$;
comment on function loyverse.tg_products__note_price_change() is
    'Set the transaction-local flag loyverse_sync.price_changed: a product''s price changed, so the '
    'price-sync statement trigger must look at this transaction''s updates.';

-- ---- sql/0332_function_enqueue_price_changes.sql ----
-- The trigger's upsert: the products whose price changed in one UPDATE statement, as arrays
-- (product, old price), become one pending queue row each, at the product's CURRENT price
-- and category, read here. Not the statement's new rows: by the time a statement's AFTER
-- STATEMENT trigger fires, a restaurant's own AFTER ROW trigger may have changed the price
-- again in a nested UPDATE, whose own trigger already queued the newer price; writing the
-- statement's value over it would leave Loyverse with an older price (measured before 0055:
-- products 1020.00, queued 20.00).
-- SECURITY DEFINER: whoever updates products runs the trigger, and may not read the queue
-- (loyverse_app cannot). Who may call it is checked twice: by role (EXECUTE is granted to
-- loyverse_app and loyverse_worker only, so a role that changes prices must be one of them)
-- and by caller (the function that called this one must be the products trigger function,
-- which nobody but its owner may attach to another table: it is not executable by PUBLIC).
-- pg_trigger_depth() was not enough: any role with TEMP could call this from a trigger on its
-- own temp table with a made-up old price. The call stack is read with GET DIAGNOSTICS
-- PG_CONTEXT. PL/pgSQL prints a function's name as it was when the session compiled it:
-- schema-qualified unless schema loyverse was on the caller's search_path, so both forms
-- are accepted (refusing a legitimate price change would be worse). What stays possible: a
-- member of loyverse_app that names its own temp trigger function the same and puts pg_temp
-- first on its search_path can pass made-up old prices; it may change those prices anyway,
-- and old_price only labels the row (the guardrails compare with the mapping's last synced
-- price).
-- A forced generic plan: the arrays are parameters, and PL/pgSQL would otherwise re-plan
-- this statement on every call (measured: 1.7 ms vs 0.7 ms per single-row UPDATE). The
-- generic plan reaches products, mappings, settings and accounts by index for any array size.
create function loyverse.enqueue_price_changes(
    p_product_ids uuid[],
    p_old_prices numeric[]
)
returns void
language plpgsql
security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
declare
    v_accounts bigint[];
    v_account bigint;
    v_stack text;
begin
    get diagnostics v_stack = pg_context;
    -- line 1 is this function, line 2 the statement that called it, line 3 that statement's
    -- function. starts_with, not a pattern: SIMILAR TO cost ~20 us per call, this ~2 us.
    v_stack := pg_catalog.split_part(v_stack, E'\n', 3);
    if not (pg_catalog.starts_with(v_stack, 'PL/pgSQL function loyverse.tg_products__enqueue_price_sync() line ')
            or pg_catalog.starts_with(v_stack, 'PL/pgSQL function tg_products__enqueue_price_sync() line ')) then
        raise exception 'loyverse.enqueue_price_changes is for the products trigger only'
            using errcode = 'insufficient_privilege',
                  hint = 'To send current prices again, use loyverse.trigger_price_sync(restaurant_id).';
    end if;
    with upserted as (
        -- One pending row per product (partial unique index): the first change keeps its
        -- old_price, the last one sets new_price, each bumps the version. Claimed rows are
        -- not 'pending', so a change during a send makes a new pending row.
        insert into loyverse.loyverse_price_sync_queue as q
               (product_id, restaurant_id, account_id, priority, old_price, new_price,
                price_to_send, max_attempts, next_attempt_at, loyverse_item_id)
        select c.product_id, m.restaurant_id, m.account_id, s.priority, c.old_price, p.price,
               loyverse.price_to_send(p.price, s.price_rounding_rule, a.decimal_places, m.price_factor),
               s.max_attempts, loyverse.price_sync_due_at(s.sync_frequency), m.loyverse_item_id
          from unnest(p_product_ids, p_old_prices) as c (product_id, old_price)
          join public.products p on p.id = c.product_id
          join loyverse.loyverse_item_mappings m on m.product_id = c.product_id
          join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id
          join loyverse.loyverse_accounts a on a.id = m.account_id
         where p.price is distinct from c.old_price
           and s.enabled
           and s.sync_direction in ('TO_LOYVERSE', 'BIDIRECTIONAL')
           and m.loyverse_pricing_type = 'FIXED'  -- a VARIABLE price is entered at the counter
           and loyverse.category_is_synced(p.category_id, s.include_category_ids, s.exclude_category_ids)
        on conflict (product_id) where status = 'pending' do update
           set new_price = excluded.new_price,
               price_to_send = excluded.price_to_send,
               version = q.version + 1,
               restaurant_id = excluded.restaurant_id,
               account_id = excluded.account_id,
               loyverse_item_id = excluded.loyverse_item_id,
               priority = greatest(q.priority, excluded.priority),
               max_attempts = excluded.max_attempts,
               -- a row backing off after a failure keeps its backoff
               next_attempt_at = case when q.attempts > 0 then q.next_attempt_at
                                      else least(q.next_attempt_at, excluded.next_attempt_at) end,
               updated_at = now()
        returning q.restaurant_id, q.account_id, q.next_attempt_at
    ), due as (
        select distinct u.restaurant_id, u.account_id from upserted u where u.next_attempt_at <= now()
    )
    -- Wake the worker of each account with a due row of a REALTIME, unpaused restaurant,
    -- unless its sync job is already queued (the usual case while prices keep changing):
    -- the same check loyverse.wake_price_sync makes first, done here inside this query so
    -- that a queued job costs no function call and no statement of its own (measured per
    -- single-row price UPDATE: 4-20 us across runs of the ~190 us the trigger adds). The lock
    -- name is wake_price_sync's, which checks again (a job may have been queued meanwhile).
    select array_agg(distinct d.account_id) into v_accounts
      from due d
      join loyverse.loyverse_price_sync_settings s on s.restaurant_id = d.restaurant_id
     where s.sync_frequency = 'REALTIME' and not s.paused
       and not exists (select 1 from public.procrastinate_jobs j
                        where j.queueing_lock = 'loyverse_price_sync:' || d.account_id
                          and j.status = 'todo'
                        offset 0);  -- kept a subplan: one index lookup per account, whatever the plan

    if v_accounts is not null then
        foreach v_account in array v_accounts loop
            perform loyverse.wake_price_sync(v_account);
        end loop;
    end if;
end;
$$;
comment on function loyverse.enqueue_price_changes(uuid[], numeric[]) is
    'Internal to the products trigger (refuses any other caller): upsert one pending queue row, at its current '
    'price, per product whose price differs from the given old price and that is mapped with a FIXED price, '
    'syncs towards Loyverse and passes the category filters; wake each REALTIME account with a due row.';

-- ---- sql/0333_function_tg_products__delete_price_sync_rows.sql ----
-- The cascade of the queue's product_id, set-based: deleting products deletes their queue
-- rows, in one statement per DELETE. The queue has no foreign key to products (since 0060):
-- its check ran one SPI statement and took a tuple lock for every queued row, about a
-- quarter of what a 20,000-row bulk price UPDATE added from a drained queue (measured:
-- 29.5-31.6 -> 23.1-24.5 us per row). No row can name a product that is gone: the queue
-- is written only by loyverse.enqueue_price_changes, from the products trigger, whose UPDATE
-- holds each product's row lock until commit, and by loyverse.enqueue_current_prices, which
-- locks the products it reads FOR KEY SHARE; either way a concurrent DELETE waits for the
-- commit, and this trigger then sees the rows and deletes them.
create function loyverse.tg_products__delete_price_sync_rows()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    delete from loyverse.loyverse_price_sync_queue q
     using old_rows o
     where q.product_id = o.id;
    return null;
end;
$$;
comment on function loyverse.tg_products__delete_price_sync_rows() is
    'Delete the price-sync queue rows of deleted products (the cascade of the queue''s product_id).';

-- ---- sql/0335_function_enqueue_current_prices.sql ----
-- Queue the database's current price of some products (manual full sync, retry, conflict
-- resolution, a worker that lost its lease, a settings change that widens what is synced):
-- the same upsert as the trigger, due now or at p_due_at (a settings change follows the
-- restaurant's frequency: MANUAL rows wait for an explicit trigger).
create function loyverse.enqueue_current_prices(
    p_product_ids uuid[],
    p_source text,
    p_priority_boost integer default 0,
    p_due_at timestamptz default null  -- null: now
)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_count integer;
    v_accounts bigint[];
    v_account bigint;
begin
    with wanted as (
        select p.id as product_id, m.restaurant_id, m.account_id, m.last_synced_price as old_price,
               p.price as new_price,
               loyverse.price_to_send(p.price, s.price_rounding_rule, a.decimal_places, m.price_factor) as price_to_send,
               s.priority + p_priority_boost as priority,
               s.max_attempts,
               not s.paused and coalesce(p_due_at, now()) <= now() as wake,
               m.loyverse_item_id
          from public.products p
          join loyverse.loyverse_item_mappings m on m.product_id = p.id
          join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id
          join loyverse.loyverse_accounts a on a.id = m.account_id
         where p.id = any (p_product_ids)
           and s.enabled
           and s.sync_direction in ('TO_LOYVERSE', 'BIDIRECTIONAL')
           and m.loyverse_pricing_type = 'FIXED'  -- a VARIABLE price is entered at the counter
           -- a product deleted meanwhile is skipped, one being deleted waits for this commit
           -- (the queue has no foreign key to products: sql/0333)
           for key share of p
    ), upserted as (
        insert into loyverse.loyverse_price_sync_queue as q
               (product_id, restaurant_id, account_id, source, priority, old_price, new_price,
                price_to_send, max_attempts, next_attempt_at, loyverse_item_id)
        select w.product_id, w.restaurant_id, w.account_id, p_source, w.priority, w.old_price,
               w.new_price, w.price_to_send, w.max_attempts, coalesce(p_due_at, now()), w.loyverse_item_id
          from wanted w
        on conflict (product_id) where status = 'pending' do update
           set new_price = excluded.new_price,
               price_to_send = excluded.price_to_send,
               version = q.version + case when q.price_to_send = excluded.price_to_send then 0 else 1 end,
               source = excluded.source,
               loyverse_item_id = excluded.loyverse_item_id,
               priority = greatest(q.priority, excluded.priority),
               next_attempt_at = least(q.next_attempt_at, coalesce(p_due_at, now())),
               updated_at = now()
        returning q.id, q.product_id, q.account_id
    ), superseded as (
        -- a newer price of a product supersedes its held change (the claim checks the new one)
        update loyverse.loyverse_price_sync_queue h
           set status = 'cancelled', completed_at = now(), updated_at = now(),
               last_error = 'held change superseded by a newer change'
          from upserted u
         where h.product_id = u.product_id and h.status = 'held' and h.id < u.id
    )
    select count(*), array_agg(distinct u.account_id) filter (where w.wake)
      into v_count, v_accounts
      from upserted u join wanted w on w.product_id = u.product_id;

    if v_accounts is not null then
        foreach v_account in array v_accounts loop
            perform loyverse.wake_price_sync(v_account);
        end loop;
    end if;
    return v_count;
end;
$$;
comment on function loyverse.enqueue_current_prices(uuid[], text, integer, timestamptz) is
    'Queue the current price of the given products (due at p_due_at, default now; priority raised by '
    'p_priority_boost) and wake their accounts when due now; returns the rows queued. Skips products '
    'whose restaurant does not sync to Loyverse and VARIABLE prices; a held change of a queued product is '
    'superseded (cancelled).';

-- ---- sql/0336_function_add_outcome_totals.sql ----
-- Add queue rows that entered an outcome to loyverse.loyverse_price_sync_outcome_totals:
-- pairs (restaurant, status), of which only done, failed and dead count; one upsert per
-- (restaurant, outcome), in restaurant order so that concurrent callers lock the same rows
-- in the same order; restaurants that are gone are skipped. Used by
-- complete_price_sync_batch (a whole batch per outcome) and the queue's row trigger.
-- Returns the number of (restaurant, outcome) totals changed.
create function loyverse._add_outcome_totals(p_restaurant_ids uuid[], p_statuses text[])
returns integer
language sql
set search_path = ''
as $$
    with added as (
        insert into loyverse.loyverse_price_sync_outcome_totals as t (restaurant_id, outcome, total)
        select g.restaurant_id, g.outcome, g.n
          from (select c.restaurant_id, c.outcome, count(*) as n
                  from unnest(p_restaurant_ids, p_statuses) as c (restaurant_id, outcome)
                 where c.outcome in ('done', 'failed', 'dead')
                 group by c.restaurant_id, c.outcome) g
         where exists (select 1 from public.restaurants x where x.id = g.restaurant_id)
         order by g.restaurant_id
        on conflict (restaurant_id, outcome) do update set total = t.total + excluded.total
        returning 1
    )
    select count(*)::integer from added
$$;
comment on function loyverse._add_outcome_totals(uuid[], text[]) is
    'Internal: add the (restaurant, status) pairs that are done, failed or dead to the outcome totals.';

-- ---- sql/0337_function_tg_accounts__delete_price_sync_rows.sql ----
-- The queue's account_id has no foreign key (see the queue table): when an account is
-- deleted, its queue rows go with it here, as an ON DELETE CASCADE would do.
create function loyverse.tg_accounts__delete_price_sync_rows()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    delete from loyverse.loyverse_price_sync_queue q
     using old_rows o
     where q.account_id = o.id;
    return null;
end;
$$;
comment on function loyverse.tg_accounts__delete_price_sync_rows() is
    'Delete the price-sync queue rows of deleted accounts (the cascade of the queue''s account_id).';

-- ---- sql/0338_function_release_expired_price_sync_leases.sql ----
-- Rows whose worker vanished (lease expired) become claimable again, counting an attempt;
-- one superseded by a newer pending change is cancelled (the newer row carries the price).
create function loyverse.release_expired_price_sync_leases(p_account_id bigint default null)
returns integer
language plpgsql
security definer
set search_path = ''
-- Never part of a deadlock with the main app's UPDATE: a released row becomes 'pending', and
-- when an uncommitted UPDATE has just queued a pending row for the same product, the unique
-- index makes us wait for it while its trigger may be waiting for a pending row this statement
-- made for another product (found by bench/chaos.py: PostgreSQL chose the app's UPDATE as the
-- victim). Waiting at most 100 ms, far below deadlock_timeout, we give up first and release
-- next time (the sweep runs every minute, the claim before every batch).
set lock_timeout = '100ms'
as $$
declare
    v_count integer;
    -- a variable, not clock_timestamp() in the query: a volatile call cannot be an index
    -- condition, and the claim runs this first (measured: a scan of every processing row)
    v_now timestamptz := clock_timestamp();
begin
    -- The write of an expired claim is in doubt (its worker may have died after Loyverse took
    -- it): its price becomes one of the row's in_doubt_prices and, when a newer change
    -- superseded it, of the product's pending row, so that Loyverse showing it is not taken
    -- for an edit at the counter (the claim returns them to the planner; apply_loyverse_price
    -- reads them for deliveries). Found by the two-way chaos test beside CPU burners: a killed
    -- write was held as a conflict with our next price.
    with expired as (
        select q.id, q.product_id, q.in_doubt_prices || q.price_to_send as in_doubt_prices,
               exists (select 1 from loyverse.loyverse_price_sync_queue p
                        where p.product_id = q.product_id and p.status = 'pending') as superseded
          from loyverse.loyverse_price_sync_queue q
         where q.status = 'processing'
           and q.lease_until < v_now
           and (p_account_id is null or q.account_id = p_account_id)
           for update of q skip locked
    ), noted as (
        update loyverse.loyverse_price_sync_queue p
           set in_doubt_prices = p.in_doubt_prices || e.in_doubt_prices
          from expired e
         where e.superseded and p.product_id = e.product_id and p.status = 'pending'
    ), released as (
        update loyverse.loyverse_price_sync_queue q
           set status = case when e.superseded then 'cancelled'
                             when q.attempts + 1 >= q.max_attempts then 'dead'
                             else 'pending' end,
               attempts = q.attempts + 1,
               lease_until = null,
               claimed_by = null,
               last_error = case when e.superseded then 'lease expired; superseded by a newer change'
                                 else 'lease expired: the worker stopped or lost its connection' end,
               last_error_code = 'LEASE_EXPIRED',
               in_doubt_prices = e.in_doubt_prices,
               next_attempt_at = now(),
               completed_at = case when e.superseded or q.attempts + 1 >= q.max_attempts then now() end,
               updated_at = now()
          from expired e
         where q.id = e.id
        returning 1
    )
    select count(*) into v_count from released;
    return v_count;
exception when unique_violation or lock_not_available then
    -- a trigger made a pending row for the same product meanwhile (committed, or not yet and
    -- we stopped waiting for it): try again next time
    return 0;
end;
$$;
comment on function loyverse.release_expired_price_sync_leases(bigint) is
    'Make processing rows with an expired lease claimable again (attempts + 1; dead at max_attempts; '
    'cancelled when a newer pending change exists). Returns the rows released.';

-- ---- sql/0339_function_tg_price_sync_queue__count_outcome.sql ----
-- Every way a queue row enters done, failed or dead that loyverse.complete_price_sync_batch
-- does not count itself (it counts its whole batch in one statement per outcome and sets
-- loyverse_sync.outcomes_counted for its duration): expired leases that dead-letter a row,
-- rows changed by hand. One row at a time; the trigger's WHEN clause keeps it
-- from running for any other change (the products trigger's upserts never fire it).
create function loyverse.tg_price_sync_queue__count_outcome()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    perform loyverse._add_outcome_totals(array[new.restaurant_id], array[new.status]);
    return null;
end;
$$;
comment on function loyverse.tg_price_sync_queue__count_outcome() is
    'Add 1 to the restaurant''s total of the outcome (done, failed, dead) a queue row entered, '
    'unless loyverse.complete_price_sync_batch counts it itself. Rows of an unknown restaurant are not counted.';

-- ---- sql/0340_function_claim_price_sync_batch.sql ----
-- The worker's claim: due pending rows of ONE account, whole Loyverse items at a time
-- (every due row of each chosen item, so one write per item), highest priority first,
-- FOR UPDATE SKIP LOCKED, with a lease. An item with a row in flight is not claimed: a write
-- restates every variant of its item, so two claims holding rows of one item could each write
-- the other's variants with prices read before the other's write (an older price last).
-- It returns only rows to send: a paused restaurant's rows are not picked, what can never be
-- sent (VARIABLE prices, sync disabled or FROM_LOYVERSE) is cancelled here and a change past
-- the guardrails is held, so the worker needs no filter and gets no field to filter on.
-- sync_direction stays: BIDIRECTIONAL needs Loyverse's current price to tell a conflict.
create function loyverse.claim_price_sync_batch(
    p_account_id bigint,
    p_claimed_by text,
    p_max_items integer default 250,
    p_lease_seconds double precision default 120,
    p_scan_rows integer default 2000
)
returns table (
    id bigint,
    product_id uuid,
    restaurant_id uuid,
    version bigint,
    source text,
    attempts integer,
    max_attempts integer,
    old_price numeric,
    new_price numeric,
    price_to_send numeric,
    loyverse_item_id text,
    loyverse_variant_id text,
    loyverse_store_id text,
    last_synced_price numeric,
    sync_direction text,
    in_doubt_prices numeric[]
)
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
    v_items text[] := '{}';
    v_item text;
    v_id bigint;
    v_claimed bigint[] := '{}';
    v_touched bigint;
begin
    if p_claimed_by is null or btrim(p_claimed_by) = '' then
        raise exception 'claim_price_sync_batch: p_claimed_by must not be empty'
            using errcode = 'invalid_parameter_value';
    end if;
    -- One claim of an account at a time: a claim must see the rows the previous one took
    -- (normally one job drains an account; this matters when a worker was presumed dead).
    perform pg_advisory_xact_lock(hashtext('loyverse.claim_price_sync_batch'), p_account_id::integer);
    perform loyverse.release_expired_price_sync_leases(p_account_id);

    -- Rows that must not be sent are never returned: a VARIABLE price (entered at the counter)
    -- or a restaurant that no longer syncs to Loyverse cancels the row, and a change past the
    -- restaurant's guardrails (hold_*) is held for a person (loyverse.approve_held_price_changes)
    -- unless a person approved it. When everything picked was cancelled or held, pick again
    -- (each round moves at least one row out of pending, so this ends).
    loop
        -- The items to write, in the order of their most urgent due row (claim index order):
        -- read due rows one by one and stop at p_max_items distinct items (at most p_scan_rows
        -- rows). The item is denormalised on the row, so this touches no mapping.
        v_items := '{}';
        for v_id, v_item in
            select q.id, q.loyverse_item_id
              from loyverse.loyverse_price_sync_queue q
              join loyverse.loyverse_price_sync_settings s on s.restaurant_id = q.restaurant_id
             where q.status = 'pending'
               and q.account_id = p_account_id
               and q.next_attempt_at <= now()
               and not s.paused
               and not exists (select 1 from loyverse.loyverse_price_sync_queue f
                                where f.account_id = q.account_id and f.loyverse_item_id = q.loyverse_item_id
                                  and f.status = 'processing'
                               offset 0)
             order by q.priority desc, q.next_attempt_at, q.id
             limit p_scan_rows
        loop
            if v_item is null then
                -- a row inserted without its item (by hand): copy it from the mapping now, so
                -- the pick below finds it through the item index like every other row
                update loyverse.loyverse_price_sync_queue q
                   set loyverse_item_id = m.loyverse_item_id
                  from loyverse.loyverse_item_mappings m
                 where q.id = v_id and m.product_id = q.product_id
                returning q.loyverse_item_id into v_item;
            end if;
            if v_item is not null and not v_item = any (v_items) then
                v_items := v_items || v_item;
                exit when cardinality(v_items) >= p_max_items;
            end if;
        end loop;
        if cardinality(v_items) = 0 then
            return;
        end if;

        with picked as (
            -- every due row of the chosen items (whole items: one write per item)
            select q.id, q.product_id, stop.code, stop.error,
                   jsonb_build_object('loyverse_price', m.last_synced_price, 'price_to_send', q.price_to_send,
                                      'new_price', q.new_price, 'hold_change_percent', s.hold_change_percent,
                                      'hold_change_amount', s.hold_change_amount,
                                      'hold_below_price', s.hold_below_price) as details
              from loyverse.loyverse_price_sync_queue q
              join loyverse.loyverse_price_sync_settings s on s.restaurant_id = q.restaurant_id
              join loyverse.loyverse_item_mappings m on m.product_id = q.product_id
              cross join lateral (
                  select case
                      when m.loyverse_pricing_type <> 'FIXED' then 'VARIABLE_PRICE'
                      when not s.enabled or s.sync_direction = 'FROM_LOYVERSE' then 'DISABLED'
                      when q.approved_at is not null then null
                      when q.new_price < s.hold_below_price then 'HELD_BELOW_FLOOR'
                      when m.last_synced_price > 0
                           and (q.price_to_send > m.last_synced_price * (1 + s.hold_change_percent / 100)
                                or q.price_to_send * (1 + s.hold_change_percent / 100) < m.last_synced_price)
                           then 'HELD_CHANGE_PERCENT'
                      when abs(q.price_to_send - m.last_synced_price) > s.hold_change_amount then 'HELD_CHANGE_AMOUNT'
                  end as code
              ) stop_code
              cross join lateral (
                  select stop_code.code, case stop_code.code
                      when 'VARIABLE_PRICE' then 'the price is VARIABLE in Loyverse (entered at the counter): not sent'
                      when 'DISABLED' then 'price sync to Loyverse is disabled'
                      when 'HELD_BELOW_FLOOR' then format('held: %s is below the floor %s (hold_below_price)',
                                                         q.new_price, s.hold_below_price)
                      when 'HELD_CHANGE_PERCENT' then format('held: %s -> %s moves the price by more than %s%% (hold_change_percent)',
                                                            m.last_synced_price, q.price_to_send, s.hold_change_percent)
                      when 'HELD_CHANGE_AMOUNT' then format('held: %s -> %s moves the price by more than %s (hold_change_amount)',
                                                           m.last_synced_price, q.price_to_send, s.hold_change_amount)
                  end as error
              ) stop
             where q.account_id = p_account_id
               and q.status = 'pending'
               and q.loyverse_item_id = any (v_items)
               and q.next_attempt_at <= now()
               and not s.paused
               -- writes for one item never overlap: no row of the item (nor, for a row queued
               -- without its item, of the product) is in flight under another claim.
               -- (OFFSET 0 keeps this a per-row index probe: as an anti join the planner,
               -- expecting few processing rows, rescans all of them for every candidate.)
               and not exists (select 1 from loyverse.loyverse_price_sync_queue f
                                where f.account_id = q.account_id and f.loyverse_item_id = q.loyverse_item_id
                                  and f.status = 'processing'
                               offset 0)
               and not exists (select 1 from loyverse.loyverse_price_sync_queue f
                                where f.product_id = q.product_id and f.status = 'processing'
                               offset 0)
               for update of q skip locked
        ), claimed as (
            update loyverse.loyverse_price_sync_queue q
               set status = case when picked.code is null then 'processing'
                                 when picked.code like 'HELD%' then 'held'
                                 else 'cancelled' end,
                   lease_until = case when picked.code is null
                                      then clock_timestamp() + make_interval(secs => p_lease_seconds) end,
                   claimed_by = case when picked.code is null then p_claimed_by end,
                   completed_at = case when picked.code in ('VARIABLE_PRICE', 'DISABLED') then now() end,
                   last_error = coalesce(picked.error, q.last_error),
                   last_error_code = coalesce(picked.code, q.last_error_code),
                   error_details = case when picked.code like 'HELD%' then picked.details else q.error_details end,
                   updated_at = now()
              from picked
             where q.id = picked.id
            returning q.id, q.product_id, q.status
        ), superseded as (
            -- a newer change of a product supersedes its held one, whatever becomes of the newer
            update loyverse.loyverse_price_sync_queue h
               set status = 'cancelled', completed_at = now(), updated_at = now(),
                   last_error = 'held change superseded by a newer change'
              from claimed c
             where h.product_id = c.product_id and h.status = 'held' and h.id < c.id
        )
        select coalesce(array_agg(c.id) filter (where c.status = 'processing'), '{}'), count(*)
          into v_claimed, v_touched
          from claimed c;
        -- nothing taken at all (the rows are locked by a writer): return, do not spin
        exit when v_touched = 0 or cardinality(v_claimed) > 0;
    end loop;
    if cardinality(v_claimed) = 0 then
        return;
    end if;
    return query
    select c.id, c.product_id, c.restaurant_id, c.version, c.source, c.attempts, c.max_attempts,
           c.old_price, c.new_price, c.price_to_send, m.loyverse_item_id, m.loyverse_variant_id,
           m.loyverse_store_id, m.last_synced_price, s.sync_direction,
           coalesce(c.in_doubt_prices, '{}')
      from loyverse.loyverse_price_sync_queue c
      join loyverse.loyverse_item_mappings m on m.product_id = c.product_id
      join loyverse.loyverse_price_sync_settings s on s.restaurant_id = c.restaurant_id
     where c.id = any (v_claimed)
     order by m.loyverse_item_id, c.id;
end;
$$;
comment on function loyverse.claim_price_sync_batch(bigint, text, integer, double precision, integer) is
    'Claim up to p_max_items Loyverse items'' worth of due pending rows of one account (status processing, '
    'lease p_lease_seconds, claimed_by = p_claimed_by, a token unique to this claim); items are chosen among '
    'the first p_scan_rows due rows by priority. Releases expired leases first. Never returns what must not be '
    'sent: rows of VARIABLE prices or of a restaurant no longer syncing to Loyverse are cancelled, changes past '
    'the restaurant''s guardrails (hold_change_percent, hold_change_amount, hold_below_price) become held, '
    'and a paused restaurant''s rows wait. sync_direction is TO_LOYVERSE or BIDIRECTIONAL (a price edited in '
    'Loyverse is then a conflict, which only the worker can see); in_doubt_prices lists prices of ours whose '
    'write may have landed (a claim whose worker died, a write without an answer): Loyverse showing one of '
    'them is no edit.';

-- ---- sql/0342_function_extend_price_sync_lease.sql ----
-- A worker still busy with a batch (waiting for the rate budget) keeps its lease alive.
create function loyverse.extend_price_sync_lease(p_claimed_by text, p_lease_seconds double precision default 120)
returns integer
language sql
security definer
set search_path = ''
as $$
    with extended as (
        update loyverse.loyverse_price_sync_queue q
           set lease_until = clock_timestamp() + make_interval(secs => p_lease_seconds)
         where q.claimed_by = p_claimed_by and q.status = 'processing'
        returning 1
    )
    select count(*)::integer from extended
$$;
comment on function loyverse.extend_price_sync_lease(text, double precision) is
    'Extend the lease of a claim''s rows; returns how many rows the claim still holds (0: the lease was lost).';

-- ---- sql/0350_function_complete_price_sync_batch.sql ----
-- The worker reports a claimed batch in one call: every row's outcome, applied atomically,
-- plus one loyverse_sync_logs row. Rows no longer held by this claim (lease lost) are left
-- alone; if we wrote them to Loyverse, the product's current price is queued again so the
-- final price is always the last one written. The rows entering done, failed or dead are
-- added to loyverse.loyverse_price_sync_outcome_totals here, one statement per outcome; the
-- SET clause loyverse_sync.outcomes_counted tells the queue's row trigger not to count them
-- one by one. A retry's wait comes from the row's restaurant settings (backoff_base_seconds,
-- backoff_cap_seconds), beside max_attempts: the database owns the whole retry policy of a row.
create function loyverse.complete_price_sync_batch(
    p_claimed_by text,
    p_results jsonb,
    p_requests_made integer default 0,
    p_details jsonb default '{}',
    p_started_at timestamptz default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
set loyverse_sync.outcomes_counted = 'on'
as $$
-- p_results: [{"id", "outcome": done|retry|failed|conflict|release|cancel, "sent": bool,
--              "error", "code", "details": {...}, "loyverse_price": number}]
declare
    v_lost_products uuid[];
    v_lost integer;
    v_counts jsonb;
    v_restaurants uuid[];
    v_account bigint;
    v_log_id bigint;
    v_errors jsonb;
    v_ignored integer;
begin
    create temporary table if not exists pg_temp.price_sync_results (
        id bigint primary key, outcome text not null, sent boolean, error text, code text,
        details jsonb, loyverse_price numeric, product_id uuid, mine boolean, superseded boolean,
        restaurant_id uuid, account_id bigint
    ) on commit drop;
    truncate pg_temp.price_sync_results;

    insert into pg_temp.price_sync_results (id, outcome, sent, error, code, details, loyverse_price)
    select r.id, r.outcome, coalesce(r.sent, false), r.error, r.code, r.details, r.loyverse_price
      from jsonb_to_recordset(p_results) as r(id bigint, outcome text, sent boolean, error text,
                                              code text, details jsonb, loyverse_price numeric);
    if exists (select 1 from pg_temp.price_sync_results
                where outcome not in ('done', 'retry', 'failed', 'conflict', 'release', 'cancel')) then
        raise exception 'complete_price_sync_batch: unknown outcome in p_results'
            using errcode = 'invalid_parameter_value';
    end if;

    -- Lock our rows; anything not processing under this claim was lost (lease expired).
    update pg_temp.price_sync_results r
       set mine = true, product_id = q.product_id, restaurant_id = q.restaurant_id, account_id = q.account_id,
           superseded = exists (select 1 from loyverse.loyverse_price_sync_queue p
                                 where p.product_id = q.product_id and p.status = 'pending')
      from loyverse.loyverse_price_sync_queue q
     where q.id = r.id and q.status = 'processing' and q.claimed_by = p_claimed_by;
    perform 1 from loyverse.loyverse_price_sync_queue q
      join pg_temp.price_sync_results r on r.id = q.id and r.mine for update of q;

    select array_agg(q.product_id) filter (where r.sent), count(*)
      into v_lost_products, v_lost
      from pg_temp.price_sync_results r
      join loyverse.loyverse_price_sync_queue q on q.id = r.id
     where r.mine is not true;

    -- done: verified in Loyverse. Here and below, the rows that enter done, failed or dead
    -- are added to their restaurant's outcome total (none for a restaurant that is gone).
    with done as (
        update loyverse.loyverse_price_sync_queue q
           set status = 'done', lease_until = null, completed_at = now(), updated_at = now(),
               last_error = r.error, last_error_code = r.code, error_details = r.details
          from pg_temp.price_sync_results r
         where r.id = q.id and r.mine and r.outcome = 'done'
        returning q.restaurant_id, q.status
    )
    select loyverse._add_outcome_totals(array_agg(d.restaurant_id), array_agg(d.status))
      into v_ignored
      from done d;
    update loyverse.loyverse_item_mappings m
       set last_synced_price = round(q.price_to_send, 2),
           last_synced_at = now(),
           last_synced_version = q.version,
           sync_direction = 'TO_LOYVERSE',
           -- the price we hold is now in Loyverse: that resolves a failed sync's flag, never
           -- a VARIABLE price's (a mapping turned VARIABLE while the row was in flight)
           needs_attention = case when m.loyverse_pricing_type = 'FIXED' then false else m.needs_attention end,
           attention_reason = case when m.loyverse_pricing_type = 'FIXED' then null else m.attention_reason end,
           updated_at = now()
      from pg_temp.price_sync_results r
      join loyverse.loyverse_price_sync_queue q on q.id = r.id
     where r.mine and r.outcome = 'done' and m.product_id = q.product_id;

    -- retry (429, 5xx, timeouts) and release (graceful stop, not an attempt): back to pending,
    -- unless a newer change is pending already, which then carries the price. A retry waits
    -- min(cap, base * 2^attempts) * (0.5..1.0) s, from its restaurant's settings (the
    -- defaults when the settings row is gone); the worker books a wake for that moment.
    with moved as (
        update loyverse.loyverse_price_sync_queue q
           set status = case when r.superseded then 'cancelled'
                             when r.outcome = 'retry' and q.attempts + 1 >= q.max_attempts then 'dead'
                             else 'pending' end,
               attempts = q.attempts + case when r.outcome = 'retry' then 1 else 0 end,
               next_attempt_at = case when r.outcome = 'release' then now()
                                      else now() + make_interval(secs =>
                                          least(coalesce(s.backoff_cap_seconds, 900),
                                                coalesce(s.backoff_base_seconds, 2) * power(2, q.attempts))
                                          * (0.5 + random() * 0.5)) end,
               lease_until = null,
               claimed_by = null,
               last_error = case when r.superseded then coalesce(r.error || '; ', '') || 'superseded by a newer change'
                                 else coalesce(r.error, q.last_error) end,
               last_error_code = coalesce(r.code, q.last_error_code),
               error_details = coalesce(r.details, q.error_details),
               in_doubt_prices = case when r.sent and r.outcome = 'retry' then q.in_doubt_prices || q.price_to_send
                                      else q.in_doubt_prices end,
               completed_at = case when r.superseded or (r.outcome = 'retry' and q.attempts + 1 >= q.max_attempts)
                                   then now() end,
               updated_at = now()
          from pg_temp.price_sync_results r
          left join loyverse.loyverse_price_sync_settings s on s.restaurant_id = r.restaurant_id
         where r.id = q.id and r.mine and r.outcome in ('retry', 'release')
        returning q.restaurant_id, q.status
    )
    select loyverse._add_outcome_totals(array_agg(m.restaurant_id), array_agg(m.status))
      into v_ignored
      from moved m;

    -- failed: not retryable (variant gone, validation, verification); the mapping is flagged,
    -- and a price found VARIABLE in Loyverse (set so at the counter or in the back office) makes
    -- the mapping VARIABLE: it is not queued again until a person makes it fixed
    with failed as (
        update loyverse.loyverse_price_sync_queue q
           set status = 'failed', attempts = q.attempts + 1, lease_until = null, completed_at = now(),
               updated_at = now(), last_error = r.error, last_error_code = r.code, error_details = r.details
          from pg_temp.price_sync_results r
         where r.id = q.id and r.mine and r.outcome = 'failed'
        returning q.restaurant_id, q.status
    )
    select loyverse._add_outcome_totals(array_agg(f.restaurant_id), array_agg(f.status))
      into v_ignored
      from failed f;
    update loyverse.loyverse_item_mappings m
       set needs_attention = true,
           attention_reason = left(coalesce(r.code || ': ', '') || coalesce(r.error, 'price sync failed'), 500),
           loyverse_pricing_type = case when r.code = 'VARIABLE_IN_LOYVERSE' then 'VARIABLE'
                                        else m.loyverse_pricing_type end,
           updated_at = now()
      from pg_temp.price_sync_results r
     where r.mine and r.outcome = 'failed' and m.product_id = r.product_id;

    -- conflict (BIDIRECTIONAL, price edited in Loyverse): held for `sync resolve`; an older
    -- held row of the same product is superseded by this one.
    update loyverse.loyverse_price_sync_queue q
       set status = 'cancelled', completed_at = now(), updated_at = now(),
           last_error = 'conflict superseded by a newer held change'
      from pg_temp.price_sync_results r
     where r.mine and r.outcome = 'conflict' and q.product_id = r.product_id
       and q.status = 'conflict' and q.id <> r.id;
    update loyverse.loyverse_price_sync_queue q
       set status = 'conflict', lease_until = null, completed_at = now(), updated_at = now(),
           last_error = coalesce(r.error, 'price changed in Loyverse since our last sync'),
           last_error_code = coalesce(r.code, 'CONFLICT'),
           error_details = jsonb_build_object('loyverse_price', r.loyverse_price) || coalesce(r.details, '{}')
      from pg_temp.price_sync_results r
     where r.id = q.id and r.mine and r.outcome = 'conflict';

    update loyverse.loyverse_price_sync_queue q
       set status = 'cancelled', lease_until = null, completed_at = now(), updated_at = now(),
           last_error = coalesce(r.error, 'cancelled'), last_error_code = r.code
      from pg_temp.price_sync_results r
     where r.id = q.id and r.mine and r.outcome = 'cancel';

    -- A newer price of ours written to Loyverse makes an older held conflict of the product
    -- moot: it compared an older price of ours with a Loyverse price this write replaced.
    -- (Found by the two-way chaos test under `latest`: both sides equal, a stale conflict left.)
    update loyverse.loyverse_price_sync_queue q
       set status = 'cancelled', completed_at = now(), updated_at = now(),
           last_error = 'conflict superseded: a newer price of ours was written to Loyverse'
      from pg_temp.price_sync_results r
     where r.mine and r.outcome = 'done' and q.product_id = r.product_id
       and q.status = 'conflict' and q.id < r.id;

    if v_lost_products is not null then
        perform loyverse.enqueue_current_prices(v_lost_products, 'requeue', 0);
    end if;

    -- A write that may have landed goes with the product's pending row as in doubt (as for an
    -- expired lease), so that Loyverse showing it is no edit at the counter: one sent without
    -- an answer (timeout, dropped connection; retried above, which put it in its own row's
    -- in_doubt_prices) that a newer change superseded, and one that went out after its claim
    -- was lost (found by the two-way chaos test under load: the requeue carried a price
    -- Loyverse had sent meanwhile, over our late write, whose webhook then looked newer).
    update loyverse.loyverse_price_sync_queue p
       set in_doubt_prices = p.in_doubt_prices
                             || case when r.mine then q.in_doubt_prices else array[q.price_to_send] end
      from pg_temp.price_sync_results r
      join loyverse.loyverse_price_sync_queue q on q.id = r.id
     where r.sent and p.product_id = q.product_id and p.status = 'pending' and p.id <> q.id
       and (r.mine is not true or (r.outcome = 'retry' and r.superseded));

    select jsonb_build_object(
               'done', count(*) filter (where r.mine and r.outcome = 'done'),
               'retried', count(*) filter (where r.mine and r.outcome = 'retry' and q.status = 'pending'),
               'dead', count(*) filter (where r.mine and q.status = 'dead'),
               'failed', count(*) filter (where r.mine and r.outcome = 'failed'),
               'conflicts', count(*) filter (where r.mine and r.outcome = 'conflict'),
               'released', count(*) filter (where r.mine and r.outcome = 'release'),
               'cancelled', count(*) filter (where r.mine and q.status = 'cancelled'),
               'lost', v_lost),
           array_agg(distinct r.restaurant_id) filter (where r.mine),
           min(r.account_id),
           coalesce(jsonb_agg(jsonb_build_object('queue_id', r.id, 'product_id', r.product_id,
                                                 'outcome', r.outcome, 'code', r.code, 'error', r.error,
                                                 'details', r.details))
                    filter (where r.mine and r.outcome in ('retry', 'failed', 'conflict')), '[]')
      into v_counts, v_restaurants, v_account, v_errors
      from pg_temp.price_sync_results r
      left join loyverse.loyverse_price_sync_queue q on q.id = r.id;

    if jsonb_array_length(p_results) > 0 then
        insert into loyverse.loyverse_sync_logs
               (restaurant_id, account_id, sync_type, status, items_total, items_succeeded,
                items_failed, items_skipped, requests_made, error_details, details, started_at, completed_at)
        values (case when cardinality(v_restaurants) = 1 then v_restaurants[1] end,
                v_account,
                'PRICE_SYNC',
                case when (v_counts->>'done')::int = jsonb_array_length(p_results) then 'SUCCESS'
                     when (v_counts->>'done')::int = 0 then 'FAILED'
                     else 'PARTIAL' end,
                jsonb_array_length(p_results),
                (v_counts->>'done')::int,
                (v_counts->>'failed')::int + (v_counts->>'dead')::int,
                jsonb_array_length(p_results) - (v_counts->>'done')::int
                    - (v_counts->>'failed')::int - (v_counts->>'dead')::int,
                greatest(p_requests_made, 0),
                v_errors,
                coalesce(p_details, '{}') || jsonb_build_object('claim', p_claimed_by, 'counts', v_counts,
                                                               'restaurant_ids', to_jsonb(v_restaurants)),
                least(coalesce(p_started_at, now()), now()),
                now())
        returning id into v_log_id;
    end if;
    return v_counts || jsonb_build_object('log_id', v_log_id);
end;
$$;
comment on function loyverse.complete_price_sync_batch(text, jsonb, integer, jsonb, timestamptz) is
    'Apply a worker''s outcomes for one claim (done / retry after the restaurant''s backoff '
    '(backoff_base_seconds, backoff_cap_seconds) with jitter, dead at '
    'max_attempts / failed / conflict / release / cancel), update the mappings, write one sync log row. '
    'Rows lost by this claim are not touched; the ones we wrote are queued again. Adds the rows that '
    'entered done, failed or dead to loyverse.loyverse_price_sync_outcome_totals.';

-- ---- sql/0352_function_price_sync_restaurant.sql ----
-- Internal helper of the SQL API: the settings row of a restaurant, or an error naming the field.
create function loyverse._price_sync_restaurant(p_restaurant_id uuid)
returns loyverse.loyverse_price_sync_settings
language plpgsql
stable
set search_path = ''
as $$
declare
    v_settings loyverse.loyverse_price_sync_settings;
begin
    if p_restaurant_id is null then
        raise exception 'restaurant: required' using errcode = 'invalid_parameter_value', column = 'restaurant';
    end if;
    select * into v_settings from loyverse.loyverse_price_sync_settings s where s.restaurant_id = p_restaurant_id;
    if not found then
        if not exists (select 1 from public.restaurants r where r.id = p_restaurant_id) then
            raise exception 'restaurant: no restaurant with id %', p_restaurant_id
                using errcode = 'no_data_found', column = 'restaurant';
        end if;
        raise exception 'restaurant: % is not linked to a Loyverse store (no price-sync settings)', p_restaurant_id
            using errcode = 'no_data_found', column = 'restaurant';
    end if;
    return v_settings;
end;
$$;
comment on function loyverse._price_sync_restaurant(uuid) is
    'Internal: the price-sync settings row of a restaurant; raises an error naming "restaurant" when there is none.';

-- ---- sql/0353_function_price_sync_out_of_sync.sql ----
-- The mapped products of a restaurant whose price in Loyverse is not known to be the one we
-- would send now: the price sent by an in-flight (processing) row, else the mapping's last
-- synced price, differs from the current price rounded under the current settings, or was
-- never synced. Only FIXED prices (a VARIABLE one is entered at the counter) of products that
-- pass the category filters, and none with a pending row (it already carries the current
-- price) or a conflict or held change waiting for a person.
-- Used by a full manual sync and by a settings change that widens what is synced.
create function loyverse._price_sync_out_of_sync(p_restaurant_id uuid)
returns uuid[]
language sql
stable
set search_path = ''
as $$
    select coalesce(array_agg(m.product_id order by m.product_id), '{}')
      from loyverse.loyverse_item_mappings m
      join public.products p on p.id = m.product_id
      join loyverse.loyverse_accounts a on a.id = m.account_id
      join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id
     where m.restaurant_id = p_restaurant_id
       and m.loyverse_pricing_type = 'FIXED'
       and loyverse.category_is_synced(p.category_id, s.include_category_ids, s.exclude_category_ids)
       and coalesce((select q.price_to_send from loyverse.loyverse_price_sync_queue q
                      where q.product_id = m.product_id and q.status = 'processing'
                      order by q.id desc limit 1),
                    m.last_synced_price)
           is distinct from loyverse.price_to_send(p.price, s.price_rounding_rule, a.decimal_places, m.price_factor)
       and not exists (select 1 from loyverse.loyverse_price_sync_queue q
                        where q.product_id = m.product_id and q.status in ('pending', 'conflict', 'held'))
$$;
comment on function loyverse._price_sync_out_of_sync(uuid) is
    'Internal: the mapped products of a restaurant with a FIXED price (category filters passed) whose price in '
    'Loyverse is not known to be the one we would send now, and with no pending, conflict or held row.';

-- ---- sql/0355_function_trigger_price_sync.sql ----
-- SQL API: "sync this restaurant now". Its pending rows become due at once with a priority
-- above routine changes; p_full also queues every mapped product whose price in Loyverse
-- (as last synced) differs from ours, or was never synced, and that passes the category
-- filters (loyverse._price_sync_out_of_sync).
create function loyverse.trigger_price_sync(p_restaurant_id uuid, p_full boolean default false)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_settings loyverse.loyverse_price_sync_settings := loyverse._price_sync_restaurant(p_restaurant_id);
    v_account bigint;
    v_count integer;
begin
    if not v_settings.enabled or v_settings.sync_direction = 'FROM_LOYVERSE' then
        raise exception 'restaurant: price sync to Loyverse is disabled for % (enabled=%, sync_direction=%)',
            p_restaurant_id, v_settings.enabled, v_settings.sync_direction
            using errcode = 'object_not_in_prerequisite_state', column = 'restaurant';
    end if;
    if v_settings.paused then
        raise exception 'restaurant: price sync is paused for %; resume it first', p_restaurant_id
            using errcode = 'object_not_in_prerequisite_state', column = 'restaurant';
    end if;
    select l.account_id into v_account from loyverse.loyverse_restaurant_links l where l.restaurant_id = p_restaurant_id;

    if p_full then
        perform loyverse.enqueue_current_prices(loyverse._price_sync_out_of_sync(p_restaurant_id), 'manual', 200);
    end if;

    update loyverse.loyverse_price_sync_queue q
       set next_attempt_at = now(),
           priority = greatest(q.priority, v_settings.priority + 200),
           updated_at = now()
     where q.restaurant_id = p_restaurant_id and q.status = 'pending';
    get diagnostics v_count = row_count;

    insert into loyverse.loyverse_sync_logs (restaurant_id, account_id, sync_type, status, items_total, details, completed_at)
    values (p_restaurant_id, v_account, 'MANUAL_TRIGGER', 'SUCCESS', v_count,
            jsonb_build_object('full', p_full), now());
    if v_count > 0 and v_account is not null then
        perform loyverse.wake_price_sync(v_account);
    end if;
    return v_count;
end;
$$;
comment on function loyverse.trigger_price_sync(uuid, boolean) is
    'Sync a restaurant now: its pending changes become due with priority + 200 (p_full: also queue every '
    'mapped product not known to be in sync). Returns the rows due. Example: select loyverse.trigger_price_sync(''<uuid>'');';

-- ---- sql/0360_function_retry_price_sync.sql ----
-- SQL API: retry failed and dead-lettered changes. The old rows are closed as 'cancelled'
-- (their error stays readable) and the product's CURRENT price is queued, due now, with a
-- priority above routine changes.
create function loyverse.retry_price_sync(
    p_restaurant_id uuid default null,
    p_product_id uuid default null,
    p_status text default null
)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_products uuid[];
    v_count integer;
begin
    if p_status is not null and p_status not in ('failed', 'dead') then
        raise exception 'status: must be failed, dead or null (both), got %', p_status
            using errcode = 'invalid_parameter_value', column = 'status';
    end if;
    if p_restaurant_id is not null then
        perform loyverse._price_sync_restaurant(p_restaurant_id);
    end if;
    if p_product_id is not null and not exists (
            select 1 from public.products p
             where p.id = p_product_id and (p_restaurant_id is null or p.restaurant_id = p_restaurant_id)) then
        raise exception 'product: no product % in restaurant %', p_product_id, coalesce(p_restaurant_id::text, '(any)')
            using errcode = 'no_data_found', column = 'product';
    end if;

    with closed as (
        update loyverse.loyverse_price_sync_queue q
           set status = 'cancelled',
               last_error = 'retried: ' || coalesce(q.last_error, q.status),
               updated_at = now(),
               completed_at = coalesce(q.completed_at, now())
         where q.status in ('failed', 'dead')
           and (p_status is null or q.status = p_status)
           and (p_restaurant_id is null or q.restaurant_id = p_restaurant_id)
           and (p_product_id is null or q.product_id = p_product_id)
        returning q.product_id
    )
    select array_agg(distinct c.product_id) into v_products from closed c;
    if v_products is null then
        return 0;
    end if;
    -- the flag of a failed sync is lifted for the retry (a new failure sets it again); a
    -- VARIABLE price's flag stays: a retry does not send it (loyverse.make_price_fixed does)
    update loyverse.loyverse_item_mappings m
       set needs_attention = false, attention_reason = null, updated_at = now()
     where m.product_id = any (v_products) and m.loyverse_pricing_type = 'FIXED';
    v_count := loyverse.enqueue_current_prices(v_products, 'retry', 200);
    insert into loyverse.loyverse_sync_logs (restaurant_id, sync_type, status, items_total, details, completed_at)
    values (p_restaurant_id, 'RETRY', 'SUCCESS', v_count,
            jsonb_build_object('product_id', p_product_id, 'status', p_status), now());
    return v_count;
end;
$$;
comment on function loyverse.retry_price_sync(uuid, uuid, text) is
    'Retry failed and/or dead price changes (all, one restaurant, or one product; p_status failed|dead|null): '
    'queues the products'' current prices with priority + 200. Returns the rows queued.';

-- ---- sql/0364_function_price_sync_setting_allowed.sql ----
-- Internal helper of the settings API: the values a setting accepts, for error messages.
create function loyverse._price_sync_setting_allowed(p_key text)
returns text
language sql
immutable
set search_path = ''
as $$
    select case p_key
        when 'enabled' then 'true, false'
        when 'sync_direction' then 'TO_LOYVERSE, FROM_LOYVERSE, BIDIRECTIONAL'
        when 'sync_frequency' then 'REALTIME, BATCH_5MIN, BATCH_HOURLY, MANUAL'
        when 'price_rounding_rule' then 'NONE, NEAREST_0.05, NEAREST_0.10, UP, DOWN'
        when 'include_category_ids' then 'a list of category ids of this restaurant'
        when 'exclude_category_ids' then 'a list of category ids of this restaurant, none of them included'
        when 'notify_on_error' then 'true, false (true needs notification_email)'
        when 'notification_email' then 'an email address of at most 254 characters, or null'
        when 'max_attempts' then 'an integer from 1 to 50'
        when 'backoff_base_seconds' then 'a number of seconds from 0.01 to 3600, at most backoff_cap_seconds'
        when 'backoff_cap_seconds' then 'a number of seconds from 0.01 to 86400, at least backoff_base_seconds'
        when 'priority' then 'an integer from -100 to 100'
        when 'prices_include_tax' then 'true, false'
        when 'alert_failure_rate' then 'a number above 0 and at most 1'
        when 'alert_queue_depth' then 'an integer of at least 1'
        when 'alert_oldest_pending_seconds' then 'an integer of at least 1'
        when 'alert_dead_letters' then 'an integer of at least 1'
        when 'conflict_policy' then 'hold, ours, theirs, latest'
        when 'catalog_changes' then 'report, apply'
        when 'sync_stock' then 'true, false'
        when 'hold_change_percent' then 'a number from 1 to 100000, or null (no limit)'
        when 'hold_change_amount' then 'a number from 0.01 to 99999999, or null (no limit)'
        when 'hold_below_price' then 'a number from 0 to 99999999, or null (no floor)'
        else 'see loyverse.price_sync_settings()'
    end
$$;
comment on function loyverse._price_sync_setting_allowed(text) is
    'Internal: the values a price-sync setting accepts, as named in update_price_sync_settings'' errors.';

-- ---- sql/0365_function_price_sync_settings.sql ----
-- SQL API: a restaurant's price-sync settings as one jsonb document.
create function loyverse.price_sync_settings(p_restaurant_id uuid)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return to_jsonb(loyverse._price_sync_restaurant(p_restaurant_id)) - 'created_at';
end;
$$;
comment on function loyverse.price_sync_settings(uuid) is
    'A restaurant''s price-sync settings as jsonb. Example: select loyverse.price_sync_settings(''<uuid>'');';

-- ---- sql/0366_function_update_price_sync_settings.sql ----
-- SQL API: change some price-sync settings of a restaurant. Every key is validated; a bad
-- one raises an error naming it (diagnostics column = the key) and nothing changes. Pending
-- rows follow the new settings (frequency, rounding, disabled, category filters), and a
-- change that widens what is sent (sync enabled again, direction back towards Loyverse,
-- category filters or rounding rule changed) queues every product whose price in Loyverse
-- is not known to be the one we would send now, at the restaurant's frequency (source
-- 'settings'): prices changed while a product was not synced are not left behind.
create function loyverse.update_price_sync_settings(p_restaurant_id uuid, p_changes jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_old loyverse.loyverse_price_sync_settings := loyverse._price_sync_restaurant(p_restaurant_id);
    v_new loyverse.loyverse_price_sync_settings;
    v_key text;
    v_value jsonb;
    v_constraint text;
    v_field text;
    v_allowed text;
    v_account bigint;
    v_filters_changed boolean;
    v_editable constant text[] := array['enabled', 'sync_direction', 'sync_frequency', 'include_category_ids',
        'exclude_category_ids', 'price_rounding_rule', 'notify_on_error', 'notification_email', 'max_attempts',
        'backoff_base_seconds', 'backoff_cap_seconds', 'priority', 'prices_include_tax', 'alert_failure_rate', 'alert_queue_depth',
        'alert_oldest_pending_seconds', 'alert_dead_letters', 'conflict_policy', 'catalog_changes', 'sync_stock',
        'hold_change_percent', 'hold_change_amount', 'hold_below_price'];
    v_nullable constant text[] := array['notification_email', 'hold_change_percent', 'hold_change_amount',
        'hold_below_price'];
begin
    if p_changes is null or jsonb_typeof(p_changes) <> 'object' then
        raise exception 'settings: expected a json object of setting = value'
            using errcode = 'invalid_parameter_value', column = 'settings';
    end if;
    v_new := v_old;
    for v_key, v_value in select * from jsonb_each(p_changes) loop
        if not v_key = any (v_editable) then
            raise exception '%: unknown setting (known: %)', v_key, array_to_string(v_editable, ', ')
                using errcode = 'invalid_parameter_value', column = v_key;
        end if;
        if v_value = 'null'::jsonb and not v_key = any (v_nullable) then
            raise exception '%: must not be null (allowed: %)', v_key, loyverse._price_sync_setting_allowed(v_key)
                using errcode = 'not_null_violation', column = v_key;
        end if;
        begin
            -- one key at a time, so a type error names its field
            v_new := jsonb_populate_record(v_new, jsonb_build_object(v_key, v_value));
        exception when others then
            raise exception '%: invalid value % (allowed: %)', v_key, v_value, loyverse._price_sync_setting_allowed(v_key)
                using errcode = 'invalid_parameter_value', column = v_key;
        end;
    end loop;
    if exists (select 1 from unnest(v_new.include_category_ids || v_new.exclude_category_ids) c(id)
                where not exists (select 1 from public.categories k
                                   where k.id = c.id and k.restaurant_id = p_restaurant_id)) then
        raise exception '%: unknown category of this restaurant',
            case when exists (select 1 from unnest(v_new.include_category_ids) c(id)
                               where not exists (select 1 from public.categories k
                                                  where k.id = c.id and k.restaurant_id = p_restaurant_id))
                 then 'include_category_ids' else 'exclude_category_ids' end
            using errcode = 'foreign_key_violation';
    end if;

    begin
        update loyverse.loyverse_price_sync_settings s
           set enabled = v_new.enabled,
               sync_direction = v_new.sync_direction,
               sync_frequency = v_new.sync_frequency,
               include_category_ids = v_new.include_category_ids,
               exclude_category_ids = v_new.exclude_category_ids,
               price_rounding_rule = v_new.price_rounding_rule,
               notify_on_error = v_new.notify_on_error,
               notification_email = v_new.notification_email,
               max_attempts = v_new.max_attempts,
               backoff_base_seconds = v_new.backoff_base_seconds,
               backoff_cap_seconds = v_new.backoff_cap_seconds,
               priority = v_new.priority,
               prices_include_tax = v_new.prices_include_tax,
               alert_failure_rate = v_new.alert_failure_rate,
               alert_queue_depth = v_new.alert_queue_depth,
               alert_oldest_pending_seconds = v_new.alert_oldest_pending_seconds,
               alert_dead_letters = v_new.alert_dead_letters,
               conflict_policy = v_new.conflict_policy,
               catalog_changes = v_new.catalog_changes,
               sync_stock = v_new.sync_stock,
               hold_change_percent = v_new.hold_change_percent,
               hold_change_amount = v_new.hold_change_amount,
               hold_below_price = v_new.hold_below_price,
               updated_at = now()
         where s.restaurant_id = p_restaurant_id;
    exception when check_violation then
        get stacked diagnostics v_constraint = constraint_name;
        v_field := case v_constraint
            when 'sync_direction_is_valid' then 'sync_direction'
            when 'sync_frequency_is_valid' then 'sync_frequency'
            when 'price_rounding_rule_is_valid' then 'price_rounding_rule'
            when 'notification_email_is_valid' then 'notification_email'
            when 'notification_email_is_at_most_254_characters' then 'notification_email'
            when 'hold_change_percent_is_between_1_and_100000' then 'hold_change_percent'
            when 'hold_change_amount_is_between_0_01_and_99999999' then 'hold_change_amount'
            when 'hold_below_price_is_between_0_and_99999999' then 'hold_below_price'
            when 'max_attempts_is_between_1_and_50' then 'max_attempts'
            when 'backoff_base_seconds_is_between_0_01_and_3600' then 'backoff_base_seconds'
            when 'backoff_cap_seconds_is_between_0_01_and_86400' then 'backoff_cap_seconds'
            -- a check over two settings: name the one this change set (the cap when both)
            when 'backoff_cap_is_at_least_the_base' then
                case when p_changes ? 'backoff_cap_seconds' or not p_changes ? 'backoff_base_seconds'
                     then 'backoff_cap_seconds' else 'backoff_base_seconds' end
            when 'priority_is_between_minus_100_and_100' then 'priority'
            when 'alert_failure_rate_is_a_fraction' then 'alert_failure_rate'
            when 'alert_queue_depth_is_positive' then 'alert_queue_depth'
            when 'alert_oldest_pending_seconds_is_positive' then 'alert_oldest_pending_seconds'
            when 'alert_dead_letters_is_positive' then 'alert_dead_letters'
            when 'conflict_policy_is_valid' then 'conflict_policy'
            when 'catalog_changes_is_valid' then 'catalog_changes'
            when 'notify_on_error_needs_an_email' then 'notification_email'
            when 'categories_are_not_both_included_and_excluded' then 'exclude_category_ids'
            else 'settings' end;
        -- the allowed values, so the error says what would do
        v_allowed := '; allowed: ' || loyverse._price_sync_setting_allowed(v_field);
        raise exception '%: invalid value (%)%', v_field, v_constraint, v_allowed
            using errcode = 'check_violation', column = v_field, constraint = v_constraint;
    end;

    -- Pending rows are not claimed yet, so they may follow the new settings.
    if not v_new.enabled or v_new.sync_direction = 'FROM_LOYVERSE' then
        update loyverse.loyverse_price_sync_queue q
           set status = 'cancelled', completed_at = now(), updated_at = now(),
               last_error = 'price sync to Loyverse disabled'
         where q.restaurant_id = p_restaurant_id and q.status = 'pending';
    else
        if v_new.price_rounding_rule <> v_old.price_rounding_rule then
            update loyverse.loyverse_price_sync_queue q
               set price_to_send = loyverse.price_to_send(q.new_price, v_new.price_rounding_rule, a.decimal_places, m.price_factor),
                   version = q.version + 1, updated_at = now()
              from loyverse.loyverse_accounts a, loyverse.loyverse_item_mappings m
             where a.id = q.account_id and m.product_id = q.product_id
               and q.restaurant_id = p_restaurant_id and q.status = 'pending';
        end if;
        v_filters_changed := v_new.include_category_ids is distinct from v_old.include_category_ids
                             or v_new.exclude_category_ids is distinct from v_old.exclude_category_ids;
        if v_filters_changed then
            -- pending changes of products the filters now leave out are not sent
            update loyverse.loyverse_price_sync_queue q
               set status = 'cancelled', completed_at = now(), updated_at = now(),
                   last_error = 'category no longer synced to Loyverse'
              from public.products p
             where p.id = q.product_id
               and q.restaurant_id = p_restaurant_id and q.status = 'pending'
               and not loyverse.category_is_synced(p.category_id, v_new.include_category_ids,
                                                   v_new.exclude_category_ids);
        end if;
        if v_new.sync_frequency <> v_old.sync_frequency then
            update loyverse.loyverse_price_sync_queue q
               set next_attempt_at = loyverse.price_sync_due_at(v_new.sync_frequency), updated_at = now()
             where q.restaurant_id = p_restaurant_id and q.status = 'pending' and q.attempts = 0
               and q.source in ('trigger', 'settings');
            if v_new.sync_frequency = 'REALTIME' and not v_new.paused then
                select l.account_id into v_account from loyverse.loyverse_restaurant_links l
                 where l.restaurant_id = p_restaurant_id;
                if v_account is not null then
                    perform loyverse.wake_price_sync(v_account);
                end if;
            end if;
        end if;
        -- what was not synced before, or would be sent differently now, catches up
        if not v_old.enabled or v_old.sync_direction = 'FROM_LOYVERSE' or v_filters_changed
           or v_new.price_rounding_rule <> v_old.price_rounding_rule then
            perform loyverse.enqueue_current_prices(loyverse._price_sync_out_of_sync(p_restaurant_id), 'settings', 0,
                                                    loyverse.price_sync_due_at(v_new.sync_frequency));
        end if;
    end if;
    return loyverse.price_sync_settings(p_restaurant_id);
end;
$$;
comment on function loyverse.update_price_sync_settings(uuid, jsonb) is
    'Change price-sync settings: p_changes = {"setting": value, ...}. Validated; an error names the field '
    '(its message starts with it; diagnostics column too) and the allowed values, and nothing changes. '
    'Returns the new settings. '
    'Example: select loyverse.update_price_sync_settings(''<uuid>'', ''{"price_rounding_rule": "UP"}'');';

-- ---- sql/0367_function_tg_price_sync_settings__log_change.sql ----
-- Settings changes are audited: every UPDATE of a restaurant's price-sync settings, by the
-- SQL API, the CLI, the HTTP server or a DBA's own UPDATE, writes one SETTINGS_CHANGE row
-- to loyverse_sync_logs naming each changed setting (from, to) and who changed it.
create function loyverse.tg_price_sync_settings__log_change()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_changes jsonb;
begin
    select jsonb_object_agg(n.key, jsonb_build_object('from', o.value, 'to', n.value))
      into v_changes
      from jsonb_each(to_jsonb(new)) n
      join jsonb_each(to_jsonb(old)) o on o.key = n.key
     where n.value is distinct from o.value and n.key not in ('updated_at', 'paused_at', 'created_at');
    if v_changes is not null then
        insert into loyverse.loyverse_sync_logs (restaurant_id, sync_type, status, details, completed_at)
        values (new.restaurant_id, 'SETTINGS_CHANGE', 'SUCCESS', jsonb_build_object('changes', v_changes), now());
    end if;
    return null;
end;
$$;
comment on function loyverse.tg_price_sync_settings__log_change() is
    'Trigger: one SETTINGS_CHANGE row in loyverse_sync_logs per changed settings row (changes: {setting: {from, to}}).';

-- ---- sql/0370_function_pause_price_sync.sql ----
-- SQL API: pause a restaurant's price sync. Changes keep being queued; nothing is sent.
create function loyverse.pause_price_sync(p_restaurant_id uuid)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_settings loyverse.loyverse_price_sync_settings := loyverse._price_sync_restaurant(p_restaurant_id);
begin
    if v_settings.paused then
        return false;
    end if;
    update loyverse.loyverse_price_sync_settings s
       set paused = true, paused_at = now(), updated_at = now()
     where s.restaurant_id = p_restaurant_id;
    return true;
end;
$$;
comment on function loyverse.pause_price_sync(uuid) is
    'Pause a restaurant''s price sync (changes are still queued, none is sent); false when already paused.';

-- ---- sql/0371_function_resume_price_sync.sql ----
-- SQL API: resume a paused restaurant; what is due is sent at once.
create function loyverse.resume_price_sync(p_restaurant_id uuid)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_settings loyverse.loyverse_price_sync_settings := loyverse._price_sync_restaurant(p_restaurant_id);
    v_account bigint;
begin
    if not v_settings.paused then
        return false;
    end if;
    update loyverse.loyverse_price_sync_settings s
       set paused = false, paused_at = null, updated_at = now()
     where s.restaurant_id = p_restaurant_id;
    select q.account_id into v_account from loyverse.loyverse_price_sync_queue q
     where q.restaurant_id = p_restaurant_id and q.status = 'pending' and q.next_attempt_at <= now()
     limit 1;
    if v_account is not null then
        perform loyverse.wake_price_sync(v_account);
    end if;
    return true;
end;
$$;
comment on function loyverse.resume_price_sync(uuid) is
    'Resume a paused restaurant''s price sync and wake its worker; false when it was not paused.';

-- ---- sql/0375_function_resolve_price_sync_conflicts.sql ----
-- SQL API: decide held conflicts (BIDIRECTIONAL restaurants, price edited in Loyverse).
-- ours: push our current price (overwriting Loyverse). theirs: take Loyverse's price into
-- our product (marked as coming from Loyverse, so it is not queued back).
create function loyverse.resolve_price_sync_conflicts(p_restaurant_id uuid, p_keep text, p_product_id uuid default null)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_products uuid[];
    v_count integer;
    v_origin text;
begin
    perform loyverse._price_sync_restaurant(p_restaurant_id);
    if p_keep is null or p_keep not in ('ours', 'theirs') then
        raise exception 'keep: must be ours or theirs, got %', coalesce(p_keep, 'null')
            using errcode = 'invalid_parameter_value', column = 'keep';
    end if;
    if p_product_id is not null and not exists (select 1 from public.products p
                                                where p.id = p_product_id and p.restaurant_id = p_restaurant_id) then
        raise exception 'product: no product % in restaurant %', p_product_id, p_restaurant_id
            using errcode = 'no_data_found', column = 'product';
    end if;

    create temporary table if not exists pg_temp.price_sync_resolved (
        id bigint, product_id uuid, loyverse_price numeric) on commit drop;
    truncate pg_temp.price_sync_resolved;
    with closed as (
        update loyverse.loyverse_price_sync_queue q
           set status = 'cancelled', updated_at = now(),
               last_error = 'conflict resolved: keep ' || p_keep || ' (' || coalesce(q.last_error, '') || ')'
         where q.status = 'conflict' and q.restaurant_id = p_restaurant_id
           and (p_product_id is null or q.product_id = p_product_id)
        returning q.id, q.product_id, (q.error_details->>'loyverse_price')::numeric as loyverse_price
    )
    insert into pg_temp.price_sync_resolved select * from closed;
    get diagnostics v_count = row_count;
    if v_count = 0 then
        return 0;
    end if;

    if p_keep = 'ours' then
        -- Loyverse's price is now the known base; the resolve row overwrites it.
        update loyverse.loyverse_item_mappings m
           set last_synced_price = r.loyverse_price, updated_at = now()
          from pg_temp.price_sync_resolved r
         where m.product_id = r.product_id and r.loyverse_price is not null;
        select array_agg(distinct r.product_id) into v_products from pg_temp.price_sync_resolved r;
        perform loyverse.enqueue_current_prices(v_products, 'resolve', 200);
        -- a person chose our price: the guardrails do not hold it again
        update loyverse.loyverse_price_sync_queue q
           set approved_at = now(), approved_by = session_user
         where q.product_id = any (v_products) and q.status = 'pending' and q.source = 'resolve';
    else
        v_origin := current_setting('loyverse_sync.origin', true);
        perform set_config('loyverse_sync.origin', 'loyverse', true);
        update public.products p
           set price = r.loyverse_price, updated_at = now()
          from pg_temp.price_sync_resolved r
         where p.id = r.product_id and r.loyverse_price is not null;
        perform set_config('loyverse_sync.origin', coalesce(v_origin, ''), true);
        update loyverse.loyverse_item_mappings m
           set last_synced_price = r.loyverse_price, last_synced_at = now(), sync_direction = 'FROM_LOYVERSE',
               needs_attention = case when m.loyverse_pricing_type = 'FIXED' then false else m.needs_attention end,
               attention_reason = case when m.loyverse_pricing_type = 'FIXED' then null else m.attention_reason end,
               updated_at = now()
          from pg_temp.price_sync_resolved r
         where m.product_id = r.product_id and r.loyverse_price is not null;
    end if;
    return v_count;
end;
$$;
comment on function loyverse.resolve_price_sync_conflicts(uuid, text, uuid) is
    'Resolve held conflicts of a restaurant (one product or all): keep ''ours'' pushes our price, keep '
    '''theirs'' copies Loyverse''s price into our product. Returns the conflicts resolved.';

-- ---- sql/0376_function_approve_held_price_changes.sql ----
-- SQL API: a person releases held changes (past the guardrails) to be sent. Each becomes
-- pending again, due now with a priority above routine changes, marked approved so the claim
-- does not hold it again; a held change whose product has a newer change queued is
-- superseded (cancelled) instead: the newer price is the one to send, and the claim checks it.
create function loyverse.approve_held_price_changes(p_restaurant_id uuid, p_product_id uuid default null)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_settings loyverse.loyverse_price_sync_settings := loyverse._price_sync_restaurant(p_restaurant_id);
    v_account bigint;
    v_count integer;
begin
    if p_product_id is not null and not exists (select 1 from public.products p
                                                where p.id = p_product_id and p.restaurant_id = p_restaurant_id) then
        raise exception 'product: no product % in restaurant %', p_product_id, p_restaurant_id
            using errcode = 'no_data_found', column = 'product';
    end if;
    update loyverse.loyverse_price_sync_queue h
       set status = 'cancelled', completed_at = now(), updated_at = now(),
           last_error = 'held change superseded by a newer change'
     where h.status = 'held' and h.restaurant_id = p_restaurant_id
       and (p_product_id is null or h.product_id = p_product_id)
       and exists (select 1 from loyverse.loyverse_price_sync_queue n
                    where n.product_id = h.product_id and n.id > h.id and n.status in ('pending', 'processing', 'held'));
    update loyverse.loyverse_price_sync_queue h
       set status = 'pending', approved_at = now(), approved_by = session_user,
           next_attempt_at = now(), priority = greatest(h.priority, v_settings.priority + 200),
           last_error = 'approved: ' || coalesce(h.last_error, 'held'), updated_at = now()
     where h.status = 'held' and h.restaurant_id = p_restaurant_id
       and (p_product_id is null or h.product_id = p_product_id);
    get diagnostics v_count = row_count;
    select l.account_id into v_account from loyverse.loyverse_restaurant_links l where l.restaurant_id = p_restaurant_id;
    insert into loyverse.loyverse_sync_logs (restaurant_id, account_id, sync_type, status, items_total, details, completed_at)
    values (p_restaurant_id, v_account, 'APPROVE', 'SUCCESS', v_count,
            jsonb_build_object('product_id', p_product_id, 'by', session_user), now());
    if v_count > 0 and v_account is not null and not v_settings.paused then
        perform loyverse.wake_price_sync(v_account);
    end if;
    return v_count;
end;
$$;
comment on function loyverse.approve_held_price_changes(uuid, uuid) is
    'Release the held price changes of a restaurant (all, or one product): they are sent as they are, past the '
    'guardrails. A held change with a newer change of its product queued is cancelled instead. Returns the '
    'changes released. Example: select loyverse.approve_held_price_changes(''<restaurant uuid>'');';

-- ---- sql/0377_function_reject_held_price_changes.sql ----
-- SQL API: a person refuses held changes: they are cancelled and never sent. Our product keeps
-- the refused price until someone corrects it (UPDATE products SET price = ...), which queues
-- the corrected price as usual.
create function loyverse.reject_held_price_changes(p_restaurant_id uuid, p_product_id uuid default null)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_count integer;
begin
    perform loyverse._price_sync_restaurant(p_restaurant_id);
    if p_product_id is not null and not exists (select 1 from public.products p
                                                where p.id = p_product_id and p.restaurant_id = p_restaurant_id) then
        raise exception 'product: no product % in restaurant %', p_product_id, p_restaurant_id
            using errcode = 'no_data_found', column = 'product';
    end if;
    update loyverse.loyverse_price_sync_queue h
       set status = 'cancelled', completed_at = now(), updated_at = now(),
           last_error = 'rejected by ' || session_user || ': ' || coalesce(h.last_error, 'held')
     where h.status = 'held' and h.restaurant_id = p_restaurant_id
       and (p_product_id is null or h.product_id = p_product_id);
    get diagnostics v_count = row_count;
    insert into loyverse.loyverse_sync_logs (restaurant_id, sync_type, status, items_total, details, completed_at)
    values (p_restaurant_id, 'REJECT', 'SUCCESS', v_count,
            jsonb_build_object('product_id', p_product_id, 'by', session_user), now());
    return v_count;
end;
$$;
comment on function loyverse.reject_held_price_changes(uuid, uuid) is
    'Refuse the held price changes of a restaurant (all, or one product): cancelled, never sent; correct the '
    'product''s price to send another. Returns the changes refused.';

-- ---- sql/0378_function_make_price_fixed.sql ----
-- SQL API: a manager turns a VARIABLE price (entered at the counter; imported as a 0
-- placeholder and flagged) into a fixed one on purpose. Set the price in the main app first
-- (UPDATE products SET price = ...: nothing is queued while the mapping is VARIABLE), then
-- call this: the mapping becomes FIXED, its flag is lifted, and the current price is queued,
-- approved (a person chose it, so the guardrails do not hold it), with source 'make_fixed':
-- the worker then writes it as the store's FIXED price, the one write that may replace a
-- VARIABLE price in Loyverse. A price of 0 is refused: it is the import's placeholder.
create function loyverse.make_price_fixed(p_restaurant_id uuid, p_product_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_price numeric;
    v_count integer;
begin
    perform loyverse._price_sync_restaurant(p_restaurant_id);
    select p.price into v_price from public.products p
     where p.id = p_product_id and p.restaurant_id = p_restaurant_id
       for update;
    if not found then
        raise exception 'product: no product % in restaurant %', p_product_id, p_restaurant_id
            using errcode = 'no_data_found', column = 'product';
    end if;
    if not exists (select 1 from loyverse.loyverse_item_mappings m where m.product_id = p_product_id) then
        raise exception 'product: % is not mapped to a Loyverse variant (run an import first)', p_product_id
            using errcode = 'no_data_found', column = 'product';
    end if;
    if v_price = 0 then
        raise exception 'product: the price of % is 0.00 (the import''s placeholder for a VARIABLE price); set the price to charge first', p_product_id
            using errcode = 'object_not_in_prerequisite_state', column = 'product',
                  hint = 'UPDATE public.products SET price = ... WHERE id = ..., then call this again.';
    end if;
    update loyverse.loyverse_item_mappings m
       set loyverse_pricing_type = 'FIXED',
           needs_attention = false, attention_reason = null, updated_at = now()
     where m.product_id = p_product_id;
    v_count := loyverse.enqueue_current_prices(array[p_product_id], 'make_fixed', 200);
    update loyverse.loyverse_price_sync_queue q
       set approved_at = now(), approved_by = session_user
     where q.product_id = p_product_id and q.status = 'pending';
    insert into loyverse.loyverse_sync_logs (restaurant_id, sync_type, status, items_total, details, completed_at)
    values (p_restaurant_id, 'MAKE_FIXED', 'SUCCESS', v_count,
            jsonb_build_object('product_id', p_product_id, 'price', v_price, 'by', session_user), now());
    return v_count;
end;
$$;
comment on function loyverse.make_price_fixed(uuid, uuid) is
    'Turn a product''s VARIABLE Loyverse price into a FIXED one on purpose: the mapping becomes FIXED and the '
    'product''s current price (not 0) is queued, approved. Returns the rows queued (0 when the restaurant does '
    'not sync to Loyverse now; it is sent when it does). Example: select loyverse.make_price_fixed(''<restaurant>'', ''<product>'');';

-- ---- sql/0380_function_sweep_price_sync.sql ----
-- The periodic safety net (every minute, from the worker's periodic task): release expired
-- leases, close pending rows whose product lost its mapping, and wake every account with
-- due rows (BATCH_* restaurants at their boundary, backoffs that ended, lost wake-ups).
create function loyverse.sweep_price_sync()
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_released integer;
    v_orphans integer;
    v_woken integer := 0;
    v_account bigint;
begin
    v_released := loyverse.release_expired_price_sync_leases(null);
    update loyverse.loyverse_price_sync_queue q
       set status = 'cancelled', completed_at = now(), updated_at = now(),
           last_error = 'product no longer mapped to Loyverse'
     where q.status = 'pending'
       and not exists (select 1 from loyverse.loyverse_item_mappings m where m.product_id = q.product_id);
    get diagnostics v_orphans = row_count;
    for v_account in
        select distinct q.account_id
          from loyverse.loyverse_price_sync_queue q
          join loyverse.loyverse_price_sync_settings s on s.restaurant_id = q.restaurant_id
         where q.status = 'pending' and q.next_attempt_at <= now() and not s.paused
    loop
        if loyverse.wake_price_sync(v_account) then
            v_woken := v_woken + 1;
        end if;
    end loop;
    return jsonb_build_object('released', v_released, 'orphans', v_orphans, 'woken', v_woken);
end;
$$;
comment on function loyverse.sweep_price_sync() is
    'Periodic safety net: release expired leases, cancel unmapped pending rows, wake accounts with due rows.';

-- ---- sql/0385_function_prune_price_sync_queue.sql ----
-- Retention: completed rows (done, cancelled) older than p_older_than are deleted in
-- bounded chunks; failed, dead and conflict rows stay until retried or resolved.
create function loyverse.prune_price_sync_queue(p_older_than interval default '7 days', p_limit integer default 50000)
returns integer
language sql
security definer
set search_path = ''
as $$
    with doomed as (
        select q.id from loyverse.loyverse_price_sync_queue q
         where q.status in ('done', 'cancelled') and q.completed_at < now() - p_older_than
         order by q.completed_at
         limit p_limit
    ), deleted as (
        delete from loyverse.loyverse_price_sync_queue q using doomed d where q.id = d.id returning 1
    )
    select count(*)::integer from deleted
$$;
comment on function loyverse.prune_price_sync_queue(interval, integer) is
    'Delete done and cancelled queue rows completed more than p_older_than ago (at most p_limit per call).';

-- ---- sql/0390_function_enqueue_price_sync_digests.sql ----
-- Notifications: one error digest per restaurant (notify_on_error) per interval, listing the
-- changes that failed, were dead-lettered or were held by the guardrails since its previous digest. dedupe_key makes a
-- second call in the same interval a no-op.
create function loyverse.enqueue_price_sync_digests(p_interval interval default '1 hour')
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_count integer;
    v_bucket timestamptz := date_bin(p_interval, now(), timestamptz '2000-01-01 00:00+00');
begin
    with due as (
        select s.restaurant_id, r.name, s.notification_email,
               coalesce((select max(o.created_at) from loyverse.loyverse_notification_outbox o
                          where o.restaurant_id = s.restaurant_id and o.kind = 'ERROR_DIGEST'),
                        '-infinity') as since
          from loyverse.loyverse_price_sync_settings s
          join public.restaurants r on r.id = s.restaurant_id
         where s.notify_on_error and s.notification_email is not null
    ), failures as (
        select d.restaurant_id, d.name, d.notification_email,
               count(*) as n,
               count(*) filter (where q.status = 'dead') as dead,
               count(*) filter (where q.status = 'held') as held,
               jsonb_agg(jsonb_build_object('queue_id', q.id, 'product_id', q.product_id, 'product', p.name,
                                            'status', q.status, 'price', q.price_to_send,
                                            'code', q.last_error_code, 'error', q.last_error)
                         order by q.id) as rows,
               string_agg(format('- %s (%s): %s -> %s, %s%s', p.name, q.status, q.old_price, q.price_to_send,
                                 coalesce(q.last_error_code || ': ', ''), coalesce(q.last_error, '')),
                          E'\n' order by q.id) as lines
          from due d
          join loyverse.loyverse_price_sync_queue q on q.restaurant_id = d.restaurant_id
          join public.products p on p.id = q.product_id
         where (q.status in ('failed', 'dead') and q.completed_at > d.since)
            or (q.status = 'held' and q.updated_at > d.since)
         group by d.restaurant_id, d.name, d.notification_email
    ), inserted as (
        insert into loyverse.loyverse_notification_outbox (restaurant_id, kind, recipient, subject, body, payload, dedupe_key)
        select f.restaurant_id, 'ERROR_DIGEST', f.notification_email,
               format('[loyverse-sync] %s: %s price change(s) not synced to Loyverse', f.name, f.n),
               format(E'%s price change(s) of %s could not be written to Loyverse (%s dead-lettered, %s held '
                      'for approval).\n\n%s\n\nRetry with: loyverse-sync sync retry --restaurant %s\n'
                      'Held changes: loyverse-sync sync approve --restaurant %s (or sync reject)\n',
                      f.n, f.name, f.dead, f.held, f.lines, f.restaurant_id, f.restaurant_id),
               jsonb_build_object('restaurant_id', f.restaurant_id, 'failures', f.rows),
               format('price-sync-digest:%s:%s', f.restaurant_id, to_char(v_bucket at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI'))
          from failures f
        on conflict (dedupe_key) do nothing
        returning 1
    )
    select count(*) into v_count from inserted;
    return v_count;
end;
$$;
comment on function loyverse.enqueue_price_sync_digests(interval) is
    'Queue one ERROR_DIGEST email per restaurant with notify_on_error and new failed/dead/held changes, at most '
    'one per p_interval (dedupe_key). Returns the digests queued.';

-- ---- sql/0391_function_latency_bounds.sql ----
-- The latency histogram's bucket bounds, in one place for the recorder and the views.
create function loyverse.latency_bounds()
returns double precision[]
language sql
immutable
parallel safe
set search_path = ''
as $$
    select array[0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 'Infinity']::double precision[]
$$;

comment on function loyverse.latency_bounds() is 'Upper bounds (seconds) of loyverse_api_call_stats.latency_buckets.';

-- ---- sql/0392_function_record_api_calls.sql ----
-- Add a batch of Loyverse API calls to the per-minute statistics (one statement per flush).
create function loyverse.record_api_calls(p_account_id bigint, p_calls jsonb)
returns integer
language plpgsql
set search_path = ''
as $$
-- p_calls: [{"method": "GET", "endpoint": "/items", "status": 200, "seconds": 0.12, "at": "..."}].
-- Aggregated set-based into minute buckets; returns the number of calls recorded.
declare
    v_bounds double precision[] := loyverse.latency_bounds();
begin
    if jsonb_typeof(p_calls) is distinct from 'array' then
        raise exception 'record_api_calls: p_calls must be a JSON array, got %', jsonb_typeof(p_calls)
            using errcode = 'invalid_parameter_value';
    end if;
    with calls as (
        select date_trunc('minute', coalesce((c ->> 'at')::timestamptz, now())) as bucket_start,
               upper(c ->> 'method') as method,
               c ->> 'endpoint' as endpoint,
               coalesce((c ->> 'status')::integer, 0) as status,
               greatest(coalesce((c ->> 'seconds')::double precision, 0), 0) as seconds
          from jsonb_array_elements(p_calls) c
    ), bucketed as (
        select c.*, (select min(i) from generate_series(1, 10) i where c.seconds <= v_bounds[i]) as bucket
          from calls c
    )
    insert into loyverse.loyverse_api_call_stats as s
        (account_id, bucket_start, method, endpoint, status, calls, total_seconds, max_seconds, latency_buckets)
    select p_account_id, b.bucket_start, b.method, b.endpoint, b.status,
           count(*), sum(b.seconds), max(b.seconds),
           array[count(*) filter (where b.bucket = 1), count(*) filter (where b.bucket = 2),
                 count(*) filter (where b.bucket = 3), count(*) filter (where b.bucket = 4),
                 count(*) filter (where b.bucket = 5), count(*) filter (where b.bucket = 6),
                 count(*) filter (where b.bucket = 7), count(*) filter (where b.bucket = 8),
                 count(*) filter (where b.bucket = 9), count(*) filter (where b.bucket = 10)]
      from bucketed b
     group by b.bucket_start, b.method, b.endpoint, b.status
    on conflict (account_id, bucket_start, method, endpoint, status) do update
       set calls = s.calls + excluded.calls,
           total_seconds = s.total_seconds + excluded.total_seconds,
           max_seconds = greatest(s.max_seconds, excluded.max_seconds),
           latency_buckets = array(select x.a + x.b
                                     from unnest(s.latency_buckets, excluded.latency_buckets) with ordinality x(a, b, n)
                                    order by x.n);
    return jsonb_array_length(p_calls);
end;
$$;

comment on function loyverse.record_api_calls(bigint, jsonb) is
    'Add Loyverse API calls (method, endpoint, status, seconds) to the per-minute statistics of an account.';

-- ---- sql/0393_function_latency_quantile.sql ----
-- A quantile of a latency histogram (the bucket's upper bound), for the latency views.
create function loyverse._latency_quantile(p_buckets bigint[], p_q double precision)
returns double precision
language sql
immutable
parallel safe
set search_path = ''
as $$
    -- The upper bound of the first bucket whose cumulative count reaches q of the total
    -- (a histogram quantile, as Prometheus computes it without interpolation).
    select (loyverse.latency_bounds())[min(x.n)]
      from (select n, sum(c) over (order by n) as cum, sum(c) over () as total
              from unnest(p_buckets) with ordinality u(c, n)) x
     where x.total > 0 and x.cum >= p_q * x.total
$$;

comment on function loyverse._latency_quantile(bigint[], double precision) is
    'Internal: quantile (upper bucket bound, seconds) of a latency_buckets histogram.';

-- ---- sql/0394_function_sum_buckets.sql ----
-- Element-wise sum of two latency histograms: the state function of loyverse.sum_buckets.
create function loyverse._sum_buckets(p_a bigint[], p_b bigint[])
returns bigint[]
language sql
immutable
parallel safe
set search_path = ''
as $$
    select array(select coalesce(x.a, 0) + coalesce(x.b, 0)
                   from unnest(p_a, p_b) with ordinality x(a, b, n) order by x.n)
$$;

-- ---- sql/0395_aggregate_sum_buckets.sql ----
-- sum_buckets(histogram): adds latency histograms across minutes and endpoints.
create aggregate loyverse.sum_buckets(bigint[]) (
    sfunc = loyverse._sum_buckets,
    stype = bigint[],
    initcond = '{0,0,0,0,0,0,0,0,0,0}'
);

comment on aggregate loyverse.sum_buckets(bigint[]) is 'Element-wise sum of latency histograms.';

-- ---- sql/0420_trigger_products_price_sync.sql ----
-- Price changes on public.products feed the price-sync queue. Only UPDATE: a mapping
-- references an existing product, so an inserted product is never mapped yet (an INSERT
-- ... ON CONFLICT DO UPDATE fires these UPDATE triggers for the rows it updates).
-- The two work together: disabling one of them alone loses price changes.
create trigger _090_note_price_change
    after update on public.products
    for each row
    when (old.price is distinct from new.price)
    execute function loyverse.tg_products__note_price_change();
comment on trigger _090_note_price_change on public.products is
    'Flags the transaction when a price really changed (sees the stored row, BEFORE triggers included), '
    'so that _100_enqueue_price_sync looks for it; UPDATEs that change no price skip the price sync.';

create trigger _100_enqueue_price_sync
    after update on public.products
    referencing old table as old_rows new table as new_rows
    for each statement
    execute function loyverse.tg_products__enqueue_price_sync();
comment on trigger _100_enqueue_price_sync on public.products is
    'Queues price changes for the Loyverse price sync (statement-level, transition tables).';

-- Deleting products deletes their queue rows: the queue's product_id has no foreign key
-- (its check cost every queued row; sql/0333).
create trigger _110_delete_price_sync_rows
    after delete on public.products
    referencing old table as old_rows
    for each statement
    execute function loyverse.tg_products__delete_price_sync_rows();
comment on trigger _110_delete_price_sync_rows on public.products is
    'Deleting products deletes their price-sync queue rows.';

-- ---- sql/0421_trigger_accounts_price_sync_queue.sql ----
-- Deleting an account deletes its queue rows: the queue has no foreign key to accounts (its
-- check cost every queued change), so this statement trigger is the cascade.
create trigger _100_delete_price_sync_rows
    after delete on loyverse.loyverse_accounts
    referencing old table as old_rows
    for each statement
    execute function loyverse.tg_accounts__delete_price_sync_rows();
comment on trigger _100_delete_price_sync_rows on loyverse.loyverse_accounts is
    'Deleting an account deletes its price-sync queue rows.';

-- ---- sql/0422_trigger_price_sync_queue_outcome_totals.sql ----
-- The queue's outcomes feed loyverse.loyverse_price_sync_outcome_totals. A row trigger whose
-- WHEN clause is false for every write but a row entering done, failed or dead; it names
-- the status column, so UPDATEs that do not set status (the products trigger coalescing a
-- change into a pending row, lease extensions) do not fire it. No INSERT trigger: our
-- functions only insert pending rows, and any AFTER INSERT row trigger costs every queued
-- price change ~2 us (its WHEN is prepared per statement); a row inserted by hand already
-- done, failed or dead is not counted.
-- loyverse.complete_price_sync_batch sets loyverse_sync.outcomes_counted = 'on' while it
-- runs: it adds its batch's outcomes itself, one statement per outcome.
create trigger _100_count_outcome
    after update of status on loyverse.loyverse_price_sync_queue
    for each row
    when (new.status in ('done', 'failed', 'dead')
          and old.status is distinct from new.status
          and pg_catalog.current_setting('loyverse_sync.outcomes_counted', true) is distinct from 'on')
    execute function loyverse.tg_price_sync_queue__count_outcome();
comment on trigger _100_count_outcome on loyverse.loyverse_price_sync_queue is
    'A row entering done, failed or dead adds 1 to its restaurant''s outcome total (except in '
    'loyverse.complete_price_sync_batch, which counts its batch itself).';

-- ---- sql/0423_trigger_price_sync_settings_log_change.sql ----
-- Audit every settings change (see loyverse.tg_price_sync_settings__log_change).
create trigger _100_log_change
    after update on loyverse.loyverse_price_sync_settings
    for each row when (old is distinct from new)
    execute function loyverse.tg_price_sync_settings__log_change();

-- ---- sql/0450_function_wake_inbox.sql ----
-- Wake the inbox job of one account: defer procrastinate's apply_loyverse_inbox job with a
-- queueing lock and a lock per account (one queued, one running), like wake_price_sync.
create function loyverse.wake_inbox(p_account_id bigint)
returns boolean
language plpgsql
security definer
-- procrastinate's functions name their tables unqualified (see wake_price_sync)
set search_path = public, pg_temp
as $$
declare
    v_lock text := 'loyverse_inbox:' || p_account_id;
begin
    if exists (select 1 from public.procrastinate_jobs j
                where j.queueing_lock = v_lock and j.status = 'todo') then
        return false;
    end if;
    begin
        perform public.procrastinate_defer_jobs_v1(array[
            row('price_sync', 'apply_loyverse_inbox', 0, v_lock, v_lock,
                jsonb_build_object('account_id', p_account_id), null)::public.procrastinate_job_to_defer_v1]);
    exception when unique_violation then
        return false;  -- a concurrent transaction queued it first
    end;
    return true;
end;
$$;
comment on function loyverse.wake_inbox(bigint) is
    'Queue one apply_loyverse_inbox job for the account unless one is already queued; true when a job was queued.';

-- ---- sql/0451_function_receive_loyverse_delivery.sql ----
-- The webhook receiver's (and the poller's) one statement: store a delivery as received and
-- wake the account's inbox job. A redelivery (same body bytes) is a no-op returning null.
create function loyverse.receive_loyverse_delivery(
    p_account_id bigint,
    p_source text,
    p_headers jsonb,
    p_body bytea
)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_id bigint;
begin
    insert into loyverse.loyverse_inbox (account_id, source, headers, body)
    values (p_account_id, p_source, coalesce(p_headers, '{}'), p_body)
    on conflict (account_id, body_sha256) do nothing
    returning id into v_id;
    if v_id is not null then
        perform loyverse.wake_inbox(p_account_id);
    end if;
    return v_id;
end;
$$;
comment on function loyverse.receive_loyverse_delivery(bigint, text, jsonb, bytea) is
    'Store one delivery from Loyverse as received (source webhook|poll|reconcile) and wake the inbox job; '
    'returns the inbox id, or null when the same body was already received (a redelivery).';

-- ---- sql/0452_function_record_rejected_delivery.sql ----
-- The receiver's audit row for a delivery it refused (unknown URL secret, bad signature,
-- body too large): nothing of it is stored but what the details say.
create function loyverse.record_rejected_delivery(p_account_id bigint, p_reason text, p_details jsonb)
returns void
language sql
security definer
set search_path = ''
as $$
    insert into loyverse.loyverse_inbound_audit (account_id, decision, details)
    values (p_account_id, 'DELIVERY_REJECTED',
            jsonb_build_object('reason', p_reason) || coalesce(p_details, '{}'));
$$;
comment on function loyverse.record_rejected_delivery(bigint, text, jsonb) is
    'Audit a webhook delivery the receiver refused (4xx): account (null when unknown), reason, details.';

-- ---- sql/0455_function_apply_loyverse_price.sql ----
-- One store price heard from Loyverse for one mapped product: decide and apply it. The
-- queue knows our unsent change (a pending or held row), the mapping the last agreed price.
-- Loyverse's price is written with loyverse_sync.origin = 'loyverse' (the products trigger
-- queues nothing) and becomes last_synced_price, so it is never pushed back.
create function loyverse._apply_loyverse_price(
    p_inbox_id bigint,
    p_product_id uuid,
    p_loyverse_price numeric,
    p_loyverse_updated_at timestamptz,
    p_read_at timestamptz default null
)
returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
    v record;
    v_lp numeric;
    v_ours numeric;
    v_row loyverse.loyverse_price_sync_queue;
    v_ours_at timestamptz;
    v_keep text;
    v_decision text;
    v_origin text;
    v_their_at timestamptz;
    v_their_at_early timestamptz;
begin
    -- The product's row lock orders this with the main app's UPDATEs: a change committed
    -- before it is in the queue by now, one after it sees our price and last_synced_price.
    select m.product_id, m.restaurant_id, m.account_id, m.loyverse_item_id, m.last_synced_price,
           m.price_factor, p.price,
           s.enabled, s.sync_direction, s.conflict_policy, s.price_rounding_rule, a.decimal_places,
           i.loyverse_clock_offset_ms
      into v
      from loyverse.loyverse_item_mappings m
      join public.products p on p.id = m.product_id
      join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id
      join loyverse.loyverse_accounts a on a.id = m.account_id
      left join loyverse.loyverse_inbound_settings i on i.account_id = m.account_id
     where m.product_id = p_product_id
       for update of p, m;
    if not found or not v.enabled or v.sync_direction = 'TO_LOYVERSE' then
        return 'ignored';
    end if;
    v_lp := round(p_loyverse_price, v.decimal_places);
    -- Loyverse's updated_at on our clock: every comparison with our commit times below uses
    -- this, so a Loyverse clock minutes ahead (or behind) does not make its edits look newer
    -- (or older) than ours (loyverse_inbound_settings.loyverse_clock_offset_ms).
    v_their_at := p_loyverse_updated_at
                  - pg_catalog.make_interval(secs => coalesce(v.loyverse_clock_offset_ms, 0) / 1000.0);
    -- The offset is estimated short by the quickest delivery's transit time, so v_their_at may
    -- be that much later than the truth (0.27 s seen beside CPU burners: the echo of a write of
    -- ours then looked newer than its completion and was held as a conflict). The two tests
    -- below that only decide "ours, or read Loyverse again" allow for it; `latest` does not.
    v_their_at_early := v_their_at - interval '2 seconds';
    if v_lp is not distinct from v.last_synced_price then
        return 'unchanged';  -- the usual case: an items.update about another field or store, or our own write
    end if;

    -- Echo of a write of ours: the price a claimed row is writing now, or a price we wrote in a
    -- push that completed after Loyverse's version (a late, retried or reordered delivery of
    -- our own write). Compared by value: an older version of ours never overwrites a newer one.
    -- A write whose outcome we never learnt (its worker died holding the claim, or it timed
    -- out) may have landed: its price is in in_doubt_prices (of its own row, and of the pending
    -- row that superseded it) and counts as ours too while that row is open or completed after
    -- Loyverse's version (else its late delivery looks like an edit at the counter and, under
    -- `hold`, holds our newer change as a conflict no one made).
    if exists (select 1 from loyverse.loyverse_price_sync_queue q
                where q.product_id = p_product_id and q.status = 'processing' and q.price_to_send = v_lp)
       or exists (select 1 from loyverse.loyverse_price_sync_queue q
                   where q.product_id = p_product_id and q.status = 'done' and q.price_to_send = v_lp
                     and q.completed_at >= coalesce(v_their_at_early, '-infinity'))
       or exists (select 1 from loyverse.loyverse_price_sync_queue q
                   where q.product_id = p_product_id and q.in_doubt_prices is not null
                     and v_lp = any (q.in_doubt_prices)
                     and coalesce(q.completed_at, 'infinity') >= coalesce(v_their_at_early, '-infinity')) then
        insert into loyverse.loyverse_inbound_audit (account_id, restaurant_id, inbox_id, product_id, loyverse_id,
                                                     decision, our_price, loyverse_price, details)
        values (v.account_id, v.restaurant_id, p_inbox_id, p_product_id, v.loyverse_item_id, 'ECHO_IGNORED',
                v.price, v_lp, jsonb_build_object('last_synced_price', v.last_synced_price,
                                                  'loyverse_updated_at', p_loyverse_updated_at));
        return 'echo';
    end if;
    -- A write of ours completed after this version was true (or, for a poll or refresh, after
    -- it was read), and Loyverse reported another price: this version may predate our write
    -- (then our write replaced it in Loyverse) or follow it (an edit at the counter). Only
    -- Loyverse's current state can tell: the job reads the item again (source refresh).
    if exists (select 1 from loyverse.loyverse_price_sync_queue q
                where q.product_id = p_product_id and q.status = 'done'
                  and q.completed_at >= coalesce(p_read_at, v_their_at_early, '-infinity')) then
        return 'refresh';
    end if;
    -- A write in flight: wait for it (its outcome decides what "ours" is); the whole delivery
    -- is retried shortly (apply_loyverse_inbox catches this).
    if exists (select 1 from loyverse.loyverse_price_sync_queue q
                where q.product_id = p_product_id and q.status = 'processing') then
        raise exception 'product %: a price write is in flight', p_product_id using errcode = 'LVS01';
    end if;

    -- Our unsent change: the pending row, else a held conflict.
    select q.* into v_row
      from loyverse.loyverse_price_sync_queue q
     where q.product_id = p_product_id and q.status in ('pending', 'conflict')
     order by (q.status = 'pending') desc, q.id desc
     limit 1
       for update;
    v_ours := loyverse.price_to_send(v.price, v.price_rounding_rule, v.decimal_places, v.price_factor);

    if v.sync_direction = 'FROM_LOYVERSE' or v_row.id is null then
        v_keep := 'apply';
        v_decision := 'PRICE_APPLIED';
    elsif round(v_ours, v.decimal_places) = v_lp then
        v_keep := 'agreed';
        v_decision := 'AGREED';
    else
        -- Both sides changed since the last agreed price.
        -- When our price was set: a pending row's last upsert; but a row that a `latest`
        -- decision made (source resolve, not edited since) carries the time of the price it
        -- kept, not the time of the decision; a held row, the time it was held with.
        v_ours_at := case when v_row.status = 'pending' and v_row.updated_at = v_row.created_at
                               and v_row.error_details ? 'ours_at'
                          then (v_row.error_details->>'ours_at')::timestamptz
                          when v_row.status = 'pending' then v_row.updated_at
                          else coalesce((v_row.error_details->>'ours_at')::timestamptz, v_row.created_at) end;
        v_keep := case v.conflict_policy
                      when 'latest' then case when v_their_at > v_ours_at then 'theirs' else 'ours' end
                      else v.conflict_policy end;
        v_decision := case v_keep when 'hold' then 'CONFLICT_HELD'
                                  when 'ours' then 'CONFLICT_KEPT_OURS' else 'CONFLICT_KEPT_THEIRS' end;
    end if;

    insert into loyverse.loyverse_inbound_audit (account_id, restaurant_id, inbox_id, product_id, loyverse_id,
                                                 decision, applied, our_price, loyverse_price, details)
    values (v.account_id, v.restaurant_id, p_inbox_id, p_product_id, v.loyverse_item_id, v_decision,
            v_keep <> 'hold', v.price, v_lp,
            jsonb_strip_nulls(jsonb_build_object(
                'last_synced_price', v.last_synced_price, 'loyverse_updated_at', p_loyverse_updated_at,
                'direction', v.sync_direction, 'policy', case when v_decision like 'CONFLICT%' then v.conflict_policy end,
                'ours_at', v_ours_at, 'queue_id', v_row.id,
                'loyverse_clock_offset_ms', case when v_decision like 'CONFLICT%' then v.loyverse_clock_offset_ms end)));

    if v_keep = 'apply' then
        v_origin := pg_catalog.current_setting('loyverse_sync.origin', true);
        perform pg_catalog.set_config('loyverse_sync.origin', 'loyverse', true);
        update public.products p
           set price = round(v_lp * v.price_factor, 2), updated_at = now()
         where p.id = p_product_id and p.price is distinct from round(v_lp * v.price_factor, 2);
        perform pg_catalog.set_config('loyverse_sync.origin', coalesce(v_origin, ''), true);
        update loyverse.loyverse_item_mappings m
           set last_synced_price = v_lp, last_synced_at = now(), sync_direction = 'FROM_LOYVERSE',
               updated_at = now()
         where m.product_id = p_product_id;
        return 'applied';
    end if;
    if v_keep = 'agreed' then
        update loyverse.loyverse_price_sync_queue q
           set status = 'cancelled', completed_at = now(), updated_at = now(),
               last_error = 'Loyverse already has this price (changed there too)'
         where q.id = v_row.id;
        update loyverse.loyverse_item_mappings m
           set last_synced_price = v_lp, last_synced_at = now(), updated_at = now()
         where m.product_id = p_product_id;
        return 'agreed';
    end if;

    -- Hold the conflict (a pending row becomes the held one, superseding older held rows);
    -- then ours / theirs decide it like `sync resolve` does.
    if v_row.status = 'pending' then
        update loyverse.loyverse_price_sync_queue q
           set status = 'cancelled', completed_at = now(), updated_at = now(),
               last_error = 'conflict superseded by a newer held change'
         where q.product_id = p_product_id and q.status = 'conflict';
        update loyverse.loyverse_price_sync_queue q
           set status = 'conflict', completed_at = now(), updated_at = now(),
               last_error = 'price changed in Loyverse too: ' || v_lp || ' there, ' || v_ours || ' ours',
               last_error_code = 'CONFLICT',
               error_details = jsonb_build_object('loyverse_price', v_lp, 'ours_at', v_ours_at,
                                                  'loyverse_updated_at', p_loyverse_updated_at,
                                                  'last_synced_price', v.last_synced_price, 'inbox_id', p_inbox_id)
         where q.id = v_row.id;
    else
        update loyverse.loyverse_price_sync_queue q
           set error_details = coalesce(q.error_details, '{}')
                   || jsonb_build_object('loyverse_price', v_lp, 'ours_at', v_ours_at,
                                         'loyverse_updated_at', p_loyverse_updated_at, 'inbox_id', p_inbox_id),
               updated_at = now()
         where q.id = v_row.id;
    end if;
    if v_keep in ('ours', 'theirs') then
        perform loyverse.resolve_price_sync_conflicts(v.restaurant_id, v_keep, p_product_id);
        -- The push that keeps ours remembers when ours was set, for the next `latest` decision.
        update loyverse.loyverse_price_sync_queue q
           set error_details = coalesce(q.error_details, '{}') || jsonb_build_object('ours_at', v_ours_at)
         where q.product_id = p_product_id and q.status = 'pending' and q.source = 'resolve'
           and v_keep = 'ours';
        return 'conflict_' || v_keep;
    end if;
    return 'conflict_held';
end;
$$;
comment on function loyverse._apply_loyverse_price(bigint, uuid, numeric, timestamptz, timestamptz) is
    'Internal to apply_loyverse_inbox: one store price Loyverse reported for a mapped product -> unchanged, '
    'echo (ignored), applied (FROM_LOYVERSE, or BIDIRECTIONAL with nothing unsent of ours), agreed, or a '
    'conflict decided by conflict_policy, or refresh (a write of ours completed after the version: read the '
    'item again); every decision but unchanged and refresh is audited. Raises LVS01 while a write of the '
    'product is in flight.';

-- ---- sql/0456_function_apply_loyverse_item.sql ----
-- One item of an items.update delivery (or a poll page): older than what we applied, or
-- deleted before -> ignored; deleted now -> tombstoned and its products reported (or
-- deactivated); renamed -> reported (or renamed); each mapped store price -> _apply_loyverse_price.
create function loyverse._apply_loyverse_item(p_inbox_id bigint, p_account_id bigint, p_item jsonb,
                                              p_read_at timestamptz default null)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_id text := p_item->>'id';
    v_updated timestamptz;
    v_deleted timestamptz;
    v_name text := p_item->>'item_name';
    v_obj loyverse.loyverse_inbound_objects;
    v_variant jsonb;
    v_vid text;
    v_vdeleted timestamptz;
    v_vupdated timestamptz;
    v_map record;
    v_entry jsonb;
    v_price numeric;
    v_outcome text;
    v_counts jsonb := '{}';
begin
    if v_id is null or jsonb_typeof(p_item) <> 'object' then
        return jsonb_build_object('malformed', 1);
    end if;
    v_updated := (p_item->>'updated_at')::timestamptz;
    v_deleted := (p_item->>'deleted_at')::timestamptz;

    select * into v_obj from loyverse.loyverse_inbound_objects o
     where o.account_id = p_account_id and o.kind = 'item' and o.loyverse_id = v_id
       for update;
    if v_obj.deleted_at is not null then
        insert into loyverse.loyverse_inbound_audit (account_id, inbox_id, loyverse_id, decision, details)
        values (p_account_id, p_inbox_id, v_id, 'TOMBSTONE_IGNORED',
                jsonb_build_object('deleted_at', v_obj.deleted_at, 'delivered_updated_at', v_updated));
        return jsonb_build_object('tombstoned', 1);
    end if;
    -- (A poll or refresh reads the current state: the version we have is applied again, so
    -- that what a refresh was asked for is decided; a webhook's same version is a redelivery.)
    if v_obj.updated_at is not null and v_updated is not null
       and (v_updated < v_obj.updated_at or (v_updated = v_obj.updated_at and p_read_at is null)) then
        -- A version we have (redelivery) or an older one (reordered): nothing new in it.
        if v_updated < v_obj.updated_at then
            insert into loyverse.loyverse_inbound_audit (account_id, inbox_id, loyverse_id, decision, details)
            values (p_account_id, p_inbox_id, v_id, 'STALE_IGNORED',
                    jsonb_build_object('applied_updated_at', v_obj.updated_at, 'delivered_updated_at', v_updated));
        end if;
        return jsonb_build_object('stale', 1);
    end if;
    insert into loyverse.loyverse_inbound_objects as o (account_id, kind, loyverse_id, updated_at, deleted_at, name)
    values (p_account_id, 'item', v_id, v_updated, v_deleted, v_name)
    on conflict (account_id, kind, loyverse_id) do update
       set updated_at = excluded.updated_at, deleted_at = excluded.deleted_at, name = excluded.name, seen_at = now();

    if v_deleted is not null then
        -- Tombstones for the item and its variants; its products are reported (or deactivated).
        insert into loyverse.loyverse_inbound_objects as o (account_id, kind, loyverse_id, updated_at, deleted_at)
        select p_account_id, 'variant', v->>'variant_id', v_updated, v_deleted
          from jsonb_array_elements(case when jsonb_typeof(p_item->'variants') = 'array'
                                         then p_item->'variants' else '[]' end) v
         where v->>'variant_id' is not null
        on conflict (account_id, kind, loyverse_id) do update set deleted_at = excluded.deleted_at, seen_at = now();
        perform loyverse._apply_loyverse_deletion(p_inbox_id, p_account_id, v_id, null, 'ITEM_DELETED');
        return jsonb_build_object('deleted', 1);
    end if;

    if not exists (select 1 from loyverse.loyverse_item_mappings m
                    where m.account_id = p_account_id and m.loyverse_item_id = v_id) then
        -- Not on our menu: reported once, when first heard of (`import run` brings it in).
        if v_obj.loyverse_id is null then
            insert into loyverse.loyverse_inbound_audit (account_id, inbox_id, loyverse_id, decision, details)
            values (p_account_id, p_inbox_id, v_id, 'ITEM_CREATED',
                    jsonb_build_object('item_name', v_name, 'hint', 'run `loyverse-sync import run` to add it'));
            return jsonb_build_object('created', 1);
        end if;
        return jsonb_build_object('unmapped', 1);
    end if;

    if v_obj.loyverse_id is not null and v_obj.name is distinct from v_name and v_name is not null then
        perform loyverse._apply_loyverse_rename(p_inbox_id, p_account_id, v_id, v_obj.name, v_name);
        v_counts := v_counts || jsonb_build_object('renamed', 1);
    end if;

    for v_variant in select * from jsonb_array_elements(case when jsonb_typeof(p_item->'variants') = 'array'
                                                             then p_item->'variants' else '[]' end) loop
        v_vid := v_variant->>'variant_id';
        continue when v_vid is null;
        v_vdeleted := (v_variant->>'deleted_at')::timestamptz;
        if v_vdeleted is not null then
            if not exists (select 1 from loyverse.loyverse_inbound_objects o
                            where o.account_id = p_account_id and o.kind = 'variant' and o.loyverse_id = v_vid
                              and o.deleted_at is not null) then
                insert into loyverse.loyverse_inbound_objects as o (account_id, kind, loyverse_id, updated_at, deleted_at)
                values (p_account_id, 'variant', v_vid, v_updated, v_vdeleted)
                on conflict (account_id, kind, loyverse_id) do update set deleted_at = excluded.deleted_at, seen_at = now();
                perform loyverse._apply_loyverse_deletion(p_inbox_id, p_account_id, v_id, v_vid, 'VARIANT_DELETED');
                v_counts := v_counts || jsonb_build_object('deleted', coalesce((v_counts->>'deleted')::int, 0) + 1);
            end if;
            continue;
        end if;
        -- When this variant last changed: an item's updated_at moves with any of its variants
        -- (our own push of a sibling too), so `latest` would date an older price of this one
        -- by a newer change of another. The item's stamp only when the variant has none.
        v_vupdated := coalesce((v_variant->>'updated_at')::timestamptz, v_updated);
        for v_map in select m.product_id, m.loyverse_store_id
                       from loyverse.loyverse_item_mappings m
                      where m.account_id = p_account_id and m.loyverse_variant_id = v_vid
                      order by m.product_id loop  -- a fixed lock order across concurrent applies
            select e into v_entry
              from jsonb_array_elements(case when jsonb_typeof(v_variant->'stores') = 'array'
                                             then v_variant->'stores' else '[]' end) e
             where e->>'store_id' = v_map.loyverse_store_id
             limit 1;
            continue when v_entry is null or coalesce(v_entry->>'pricing_type', 'FIXED') <> 'FIXED'
                          or jsonb_typeof(v_entry->'price') <> 'number';
            v_price := (v_entry->>'price')::numeric;
            continue when v_price < 0;
            v_outcome := loyverse._apply_loyverse_price(p_inbox_id, v_map.product_id, v_price, v_vupdated, p_read_at);
            v_counts := v_counts || jsonb_build_object(v_outcome, coalesce((v_counts->>v_outcome)::int, 0) + 1);
        end loop;
    end loop;
    return v_counts;
end;
$$;
comment on function loyverse._apply_loyverse_item(bigint, bigint, jsonb, timestamptz) is
    'Internal to apply_loyverse_inbox: apply one Loyverse item (ordering by updated_at, tombstones, '
    'rename, deletions, every mapped store price). Returns counts of outcomes.';

-- ---- sql/0457_function_apply_loyverse_catalog_change.sql ----
-- Catalog changes heard from Loyverse (an item or variant deleted, an item renamed): always
-- audited per product; applied only where the restaurant's catalog_changes = 'apply'.
create function loyverse._apply_loyverse_deletion(
    p_inbox_id bigint, p_account_id bigint, p_item_id text, p_variant_id text, p_decision text
)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_count integer;
begin
    create temporary table if not exists pg_temp.inbound_deleted (
        product_id uuid, restaurant_id uuid, apply boolean, price numeric) on commit drop;
    truncate pg_temp.inbound_deleted;
    insert into pg_temp.inbound_deleted
    select m.product_id, m.restaurant_id, s.catalog_changes = 'apply', p.price
      from loyverse.loyverse_item_mappings m
      join public.products p on p.id = m.product_id
      join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id
     where m.account_id = p_account_id and m.loyverse_item_id = p_item_id
       and (p_variant_id is null or m.loyverse_variant_id = p_variant_id);
    get diagnostics v_count = row_count;
    insert into loyverse.loyverse_inbound_audit (account_id, restaurant_id, inbox_id, product_id, loyverse_id,
                                                 decision, applied, our_price, details)
    select p_account_id, d.restaurant_id, p_inbox_id, d.product_id, coalesce(p_variant_id, p_item_id),
           p_decision, d.apply, d.price,
           jsonb_build_object('item_id', p_item_id, 'variant_id', p_variant_id,
                              'action', case when d.apply then 'product deactivated' else 'reported' end)
      from pg_temp.inbound_deleted d;
    -- Nothing can be written to a deleted item: its unsent changes are cancelled, and the
    -- mapping says why (a later re-import with the item back maps it again).
    update loyverse.loyverse_price_sync_queue q
       set status = 'cancelled', completed_at = now(), updated_at = now(),
           last_error = 'deleted in Loyverse'
      from pg_temp.inbound_deleted d
     where q.product_id = d.product_id and q.status = 'pending';
    update loyverse.loyverse_item_mappings m
       set needs_attention = true, attention_reason = 'deleted in Loyverse', updated_at = now()
      from pg_temp.inbound_deleted d
     where m.product_id = d.product_id;
    update public.products p
       set is_active = false, updated_at = now()
      from pg_temp.inbound_deleted d
     where p.id = d.product_id and d.apply and p.is_active;
    return v_count;
end;
$$;
comment on function loyverse._apply_loyverse_deletion(bigint, bigint, text, text, text) is
    'Internal: an item (variant null) or variant deleted in Loyverse: audit each mapped product, cancel its '
    'pending price changes, flag the mapping, and deactivate the product where catalog_changes = apply.';

create function loyverse._apply_loyverse_rename(
    p_inbox_id bigint, p_account_id bigint, p_item_id text, p_old_name text, p_new_name text
)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
    insert into loyverse.loyverse_inbound_audit (account_id, restaurant_id, inbox_id, product_id, loyverse_id,
                                                 decision, applied, details)
    select p_account_id, m.restaurant_id, p_inbox_id, m.product_id, p_item_id, 'ITEM_RENAMED',
           s.catalog_changes = 'apply' and p.product_group_id is null,
           jsonb_build_object('old_name', p_old_name, 'new_name', p_new_name, 'product_name', p.name)
      from loyverse.loyverse_item_mappings m
      join public.products p on p.id = m.product_id
      join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id
     where m.account_id = p_account_id and m.loyverse_item_id = p_item_id;
    -- One-variant items are one product named like the item; an item with variants is a
    -- product group, renamed through the import's object mapping.
    update public.products p
       set name = left(p_new_name, 200), updated_at = now()
      from loyverse.loyverse_item_mappings m
      join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id
     where m.account_id = p_account_id and m.loyverse_item_id = p_item_id and p.id = m.product_id
       and s.catalog_changes = 'apply' and p.product_group_id is null and p.name is distinct from p_new_name;
    update public.product_groups g
       set name = p_new_name, updated_at = now()
      from loyverse.loyverse_object_mappings o
      join loyverse.loyverse_price_sync_settings s on s.restaurant_id = o.restaurant_id
     where o.kind = 'item' and o.loyverse_id = p_item_id and g.id = o.local_id
       and s.catalog_changes = 'apply' and g.name is distinct from p_new_name
       and exists (select 1 from loyverse.loyverse_restaurant_links l
                    where l.restaurant_id = o.restaurant_id and l.account_id = p_account_id);
end;
$$;
comment on function loyverse._apply_loyverse_rename(bigint, bigint, text, text, text) is
    'Internal: an item renamed in Loyverse: audit each mapped product; where catalog_changes = apply, rename '
    'the one-variant product or the item''s product group.';

-- ---- sql/0458_function_apply_loyverse_inventory_level.sql ----
-- One inventory level of an inventory_levels.update delivery -> products.stock_quantity of
-- the products mapped to that variant in that store, where the restaurant has sync_stock.
create function loyverse._apply_loyverse_inventory_level(p_inbox_id bigint, p_account_id bigint, p_level jsonb)
returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_key text := (p_level->>'variant_id') || '/' || (p_level->>'store_id');
    v_updated timestamptz := (p_level->>'updated_at')::timestamptz;
    v_stock numeric;
    v_known timestamptz;
begin
    if v_key is null or jsonb_typeof(p_level->'in_stock') <> 'number' then
        return 'malformed';
    end if;
    v_stock := (p_level->>'in_stock')::numeric;
    select o.updated_at into v_known from loyverse.loyverse_inbound_objects o
     where o.account_id = p_account_id and o.kind = 'inventory_level' and o.loyverse_id = v_key
       for update;
    if v_known is not null and v_updated is not null and v_updated <= v_known then
        return 'stale';  -- a level we have or an older one (sales are frequent: not audited)
    end if;
    insert into loyverse.loyverse_inbound_objects as o (account_id, kind, loyverse_id, updated_at)
    values (p_account_id, 'inventory_level', v_key, v_updated)
    on conflict (account_id, kind, loyverse_id) do update set updated_at = excluded.updated_at, seen_at = now();
    with changed as (
        update public.products p
           set stock_quantity = v_stock, updated_at = now()
          from loyverse.loyverse_item_mappings m
          join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id
         where m.account_id = p_account_id and m.loyverse_variant_id = p_level->>'variant_id'
           and m.loyverse_store_id = p_level->>'store_id' and p.id = m.product_id
           and s.enabled and s.sync_stock and p.stock_quantity is distinct from v_stock
        returning p.id, p.restaurant_id
    )
    insert into loyverse.loyverse_inbound_audit (account_id, restaurant_id, inbox_id, product_id, loyverse_id,
                                                 decision, applied, details)
    select p_account_id, c.restaurant_id, p_inbox_id, c.id, v_key, 'STOCK_APPLIED', true,
           jsonb_build_object('in_stock', v_stock, 'loyverse_updated_at', v_updated)
      from changed c;
    return 'stock';
end;
$$;
comment on function loyverse._apply_loyverse_inventory_level(bigint, bigint, jsonb) is
    'Internal to apply_loyverse_inbox: one Loyverse inventory level -> products.stock_quantity where sync_stock.';

-- ---- sql/0459_function_apply_loyverse_inbox.sql ----
-- The apply job's statement: turn an account's pending deliveries into changes, oldest
-- first, each delivery in its own subtransaction (all of it or nothing). A delivery that
-- touches a product whose price write is in flight waits a second (LVS01); one that cannot
-- be read is failed with the reason, audited, and never retried. A delivery's products are
-- locked first, without waiting, so the main app's UPDATEs never lose a deadlock to it.
create function loyverse.apply_loyverse_inbox(p_account_id bigint, p_limit integer default 50)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_row record;
    v_doc jsonb;
    v_merchant text;
    v_obj jsonb;
    v_counts jsonb;
    v_part jsonb;
    v_key text;
    v_outcome text;
    v_error text;
    v_applied integer := 0;
    v_failed integer := 0;
    v_deferred integer := 0;
    v_read_at timestamptz;
    v_refresh text[] := '{}';
    v_lock_timeout text := pg_catalog.current_setting('lock_timeout');
    v_offset bigint;
begin
    -- Any other lock (a queue row a worker is completing) is waited for 100 ms at most,
    -- then the delivery is retried in a second.
    perform pg_catalog.set_config('lock_timeout', '100ms', true);
    select a.merchant_id into v_merchant from loyverse.loyverse_accounts a where a.id = p_account_id;
    for v_row in
        select i.id, i.body, i.source, i.received_at from loyverse.loyverse_inbox i
         where i.account_id = p_account_id and i.status = 'pending' and i.next_attempt_at <= now()
         order by i.id
         limit p_limit
           for update skip locked
    loop
        v_counts := '{}';
        begin
            begin
                v_doc := convert_from(v_row.body, 'UTF8')::jsonb;
            exception when others then
                raise exception 'body is not JSON: %', sqlerrm using errcode = 'LVS02';
            end;
            if jsonb_typeof(v_doc) <> 'object' then
                raise exception 'body is not a JSON object' using errcode = 'LVS02';
            end if;
            if v_merchant is not null and v_doc->>'merchant_id' is not null and v_doc->>'merchant_id' <> v_merchant then
                raise exception 'merchant_id % is not this account''s (%)', v_doc->>'merchant_id', v_merchant
                    using errcode = 'LVS02';
            end if;
            -- Loyverse's clock, measured: a webhook's created_at (Loyverse's clock) minus when
            -- we received it (ours) is the clock offset minus the delivery time; the largest
            -- such sample of the last hour is the estimate (a late or retried delivery gives a
            -- smaller one). Written only when it changes the estimate.
            if v_row.source = 'webhook' then
                begin
                    v_offset := (extract(epoch from ((v_doc->>'created_at')::timestamptz - v_row.received_at))
                                 * 1000)::bigint;
                exception when others then
                    v_offset := null;  -- no or a malformed created_at: no sample, the items still apply
                end;
                -- a sample past a day is a test's or a broken clock's, not a skew to correct
                if v_offset is not null and abs(v_offset) <= 86400000 then
                    update loyverse.loyverse_inbound_settings s
                       set loyverse_clock_offset_ms = v_offset, loyverse_clock_offset_at = now()
                     where s.account_id = p_account_id
                       and (s.loyverse_clock_offset_ms is null or v_offset > s.loyverse_clock_offset_ms
                            or s.loyverse_clock_offset_at < now() - interval '1 hour');
                end if;
            end if;
            -- The delivery's products, all locked before anything else and without waiting
            -- (NOWAIT: lock_not_available, retried in a second). An UPDATE of several products
            -- locks them in its own order while the delivery would lock them item by item: if
            -- both waited, PostgreSQL could pick the app's statement as the deadlock victim.
            -- This way the delivery never waits for a product the app holds.
            perform 1
               from public.products p
              where p.id in (select m.product_id from loyverse.loyverse_item_mappings m
                              where m.account_id = p_account_id
                                and (m.loyverse_item_id in (select o->>'id' from jsonb_array_elements(
                                         case when jsonb_typeof(v_doc->'items') = 'array' then v_doc->'items'
                                              else '[]' end) o)
                                     or m.loyverse_variant_id in (select o->>'variant_id' from jsonb_array_elements(
                                         case when jsonb_typeof(v_doc->'inventory_levels') = 'array'
                                              then v_doc->'inventory_levels' else '[]' end) o)))
              order by p.id
                for update of p nowait;
            -- what we read ourselves (poll, refresh) says when it was read; a webhook does not
            v_read_at := case when v_row.source in ('poll', 'refresh') then (v_doc->>'read_at')::timestamptz end;
            if v_doc->>'type' = 'items.update' and jsonb_typeof(v_doc->'items') = 'array' then
                for v_obj in select * from jsonb_array_elements(v_doc->'items') loop
                    v_part := loyverse._apply_loyverse_item(v_row.id, p_account_id, v_obj, v_read_at);
                    if (v_part->>'refresh')::int > 0 then
                        v_refresh := v_refresh || (v_obj->>'id');
                    end if;
                    for v_key in select jsonb_object_keys(v_part) loop
                        v_counts := v_counts || jsonb_build_object(
                            v_key, coalesce((v_counts->>v_key)::int, 0) + (v_part->>v_key)::int);
                    end loop;
                end loop;
            elsif v_doc->>'type' = 'inventory_levels.update' and jsonb_typeof(v_doc->'inventory_levels') = 'array' then
                for v_obj in select * from jsonb_array_elements(v_doc->'inventory_levels') loop
                    v_outcome := loyverse._apply_loyverse_inventory_level(v_row.id, p_account_id, v_obj);
                    v_counts := v_counts || jsonb_build_object(
                        v_outcome, coalesce((v_counts->>v_outcome)::int, 0) + 1);
                end loop;
            else
                v_counts := jsonb_build_object('ignored_type', coalesce(v_doc->>'type', 'none'));
            end if;
            update loyverse.loyverse_inbox i
               set status = 'applied', applied_at = now(), attempts = i.attempts + 1, result = v_counts,
                   last_error = null
             where i.id = v_row.id;
            v_applied := v_applied + 1;
        exception
            when sqlstate 'LVS01' or deadlock_detected or serialization_failure or lock_not_available then
                get stacked diagnostics v_error = message_text;
                update loyverse.loyverse_inbox i
                   set attempts = i.attempts + 1, next_attempt_at = now() + interval '1 second',
                       last_error = v_error
                 where i.id = v_row.id;
                v_deferred := v_deferred + 1;
            when others then
                -- Unreadable (LVS02) or a value our tables refuse (a bad timestamp or number):
                -- a retry would fail the same way. Kept, failed, audited.
                get stacked diagnostics v_error = message_text;
                update loyverse.loyverse_inbox i
                   set status = 'failed', attempts = i.attempts + 1, last_error = left(v_error, 1000)
                 where i.id = v_row.id;
                insert into loyverse.loyverse_inbound_audit (account_id, inbox_id, decision, details)
                values (p_account_id, v_row.id, 'DELIVERY_FAILED', jsonb_build_object('error', left(v_error, 1000)));
                v_failed := v_failed + 1;
        end;
    end loop;
    perform pg_catalog.set_config('lock_timeout', v_lock_timeout, true);
    return jsonb_build_object(
        'applied', v_applied, 'failed', v_failed, 'deferred', v_deferred,
        'refresh_items', to_jsonb(array(select distinct unnest(v_refresh))),
        'remaining', (select count(*) from loyverse.loyverse_inbox i
                       where i.account_id = p_account_id and i.status = 'pending'),
        'next_due_seconds', (select greatest(0, extract(epoch from min(i.next_attempt_at) - now()))
                               from loyverse.loyverse_inbox i
                              where i.account_id = p_account_id and i.status = 'pending'));
end;
$$;
comment on function loyverse.apply_loyverse_inbox(bigint, integer) is
    'Apply up to p_limit pending deliveries of an account (oldest first; SKIP LOCKED). Returns '
    '{applied, failed, deferred, refresh_items (items to read again from Loyverse), remaining, next_due_seconds}.';

-- ---- sql/0465_function_record_price_drift.sql ----
-- Reconciliation, step two (step one is the batched read of Loyverse): compare every mapped
-- product of a restaurant with the items read and replace the restaurant's drift rows.
create function loyverse.record_price_drift(p_restaurant_id uuid, p_items jsonb)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_count integer;
begin
    perform loyverse._price_sync_restaurant(p_restaurant_id);  -- raises for an unknown restaurant
    if p_items is null or jsonb_typeof(p_items) <> 'array' then
        raise exception 'items: expected a json array of Loyverse items'
            using errcode = 'invalid_parameter_value', column = 'items';
    end if;
    delete from loyverse.loyverse_price_drift d where d.restaurant_id = p_restaurant_id;
    with items as (
        select i->>'id' as item_id, i from jsonb_array_elements(p_items) i
         where i->>'deleted_at' is null
    ), observed as (
        select m.product_id, m.account_id, m.loyverse_item_id, m.loyverse_variant_id, p.is_active,
               loyverse.price_to_send(p.price, s.price_rounding_rule, a.decimal_places, m.price_factor) as ours,
               vv.v as variant, ee.e as entry
          from loyverse.loyverse_item_mappings m
          join public.products p on p.id = m.product_id
          join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id
          join loyverse.loyverse_accounts a on a.id = m.account_id
          left join items it on it.item_id = m.loyverse_item_id
          left join lateral (select v from jsonb_array_elements(it.i->'variants') v
                              where v->>'variant_id' = m.loyverse_variant_id and v->>'deleted_at' is null
                              limit 1) vv on true
          left join lateral (select e from jsonb_array_elements(vv.v->'stores') e
                              where e->>'store_id' = m.loyverse_store_id limit 1) ee on true
         where m.restaurant_id = p_restaurant_id
           -- a VARIABLE price is entered at the counter: there is no price of ours to compare
           and not (m.needs_attention and m.attention_reason like 'VARIABLE price%')
    ), drift as (
        select o.*, k.kind
          from observed o
          cross join lateral (values
              ('missing', o.variant is null),
              ('price', o.variant is not null and coalesce(o.entry->>'pricing_type', 'FIXED') = 'FIXED'
                        and (jsonb_typeof(o.entry->'price') is distinct from 'number'
                             or (o.entry->>'price')::numeric <> o.ours)),
              ('availability', o.variant is not null
                               and coalesce((o.entry->>'available_for_sale')::boolean, true) <> o.is_active)
          ) k(kind, drifted)
         where k.drifted
    ), inserted as (
        insert into loyverse.loyverse_price_drift (restaurant_id, product_id, account_id, loyverse_item_id,
                                                   loyverse_variant_id, kind, our_price, loyverse_price,
                                                   our_available, loyverse_available)
        select p_restaurant_id, d.product_id, d.account_id, d.loyverse_item_id, d.loyverse_variant_id, d.kind,
               d.ours, case when jsonb_typeof(d.entry->'price') = 'number' then (d.entry->>'price')::numeric end,
               d.is_active, (d.entry->>'available_for_sale')::boolean
          from drift d
        returning *
    )
    insert into loyverse.loyverse_inbound_audit (account_id, restaurant_id, product_id, loyverse_id, decision,
                                                 our_price, loyverse_price, details)
    select i.account_id, i.restaurant_id, i.product_id, i.loyverse_variant_id, 'DRIFT_FOUND', i.our_price,
           i.loyverse_price, jsonb_build_object('kind', i.kind, 'our_available', i.our_available,
                                                'loyverse_available', i.loyverse_available)
      from inserted i;
    get diagnostics v_count = row_count;
    return v_count;
end;
$$;
comment on function loyverse.record_price_drift(uuid, jsonb) is
    'Reconciliation: compare the restaurant''s mapped products with the Loyverse items given (read in bulk) '
    'and replace its rows of loyverse.price_drift; returns the drift rows found (each audited DRIFT_FOUND).';

-- ---- sql/0466_function_repair_price_drift.sql ----
-- Reconciliation's --repair: fix the drift in the restaurant's direction. TO_LOYVERSE and
-- BIDIRECTIONAL push our prices (the normal queue; Loyverse's price becomes the known base,
-- so the push overwrites it instead of holding a conflict); FROM_LOYVERSE takes Loyverse's
-- prices and availability into products (marked as coming from Loyverse: nothing is queued).
create function loyverse.repair_price_drift(p_restaurant_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_settings loyverse.loyverse_price_sync_settings := loyverse._price_sync_restaurant(p_restaurant_id);
    v_products uuid[];
    v_queued integer := 0;
    v_pulled integer := 0;
    v_origin text;
begin
    if v_settings.sync_direction in ('TO_LOYVERSE', 'BIDIRECTIONAL') then
        select array_agg(distinct d.product_id) into v_products
          from loyverse.loyverse_price_drift d
         where d.restaurant_id = p_restaurant_id and d.kind = 'price' and d.repaired_at is null;
        update loyverse.loyverse_item_mappings m
           set last_synced_price = d.loyverse_price, updated_at = now()
          from loyverse.loyverse_price_drift d
         where d.restaurant_id = p_restaurant_id and d.kind = 'price' and d.repaired_at is null
           and m.product_id = d.product_id and d.loyverse_price is not null;
        if v_products is not null then
            v_queued := loyverse.enqueue_current_prices(v_products, 'manual', 200);
        end if;
        update loyverse.loyverse_price_drift d
           set repaired_at = now(), repair = 'pushed'
         where d.restaurant_id = p_restaurant_id and d.kind = 'price' and d.repaired_at is null;
    else
        v_origin := pg_catalog.current_setting('loyverse_sync.origin', true);
        perform pg_catalog.set_config('loyverse_sync.origin', 'loyverse', true);
        update public.products p
           set price = round(d.loyverse_price * m.price_factor, 2), updated_at = now()
          from loyverse.loyverse_price_drift d
          join loyverse.loyverse_item_mappings m on m.product_id = d.product_id
         where d.restaurant_id = p_restaurant_id and d.kind = 'price' and d.repaired_at is null
           and d.loyverse_price is not null and p.id = d.product_id;
        get diagnostics v_pulled = row_count;
        update public.products p
           set is_active = d.loyverse_available, updated_at = now()
          from loyverse.loyverse_price_drift d
         where d.restaurant_id = p_restaurant_id and d.kind = 'availability' and d.repaired_at is null
           and d.loyverse_available is not null and p.id = d.product_id;
        perform pg_catalog.set_config('loyverse_sync.origin', coalesce(v_origin, ''), true);
        update loyverse.loyverse_item_mappings m
           set last_synced_price = d.loyverse_price, last_synced_at = now(), sync_direction = 'FROM_LOYVERSE',
               updated_at = now()
          from loyverse.loyverse_price_drift d
         where d.restaurant_id = p_restaurant_id and d.kind = 'price' and d.repaired_at is null
           and m.product_id = d.product_id and d.loyverse_price is not null;
        update loyverse.loyverse_price_drift d
           set repaired_at = now(), repair = 'pulled'
         where d.restaurant_id = p_restaurant_id and d.kind in ('price', 'availability') and d.repaired_at is null;
    end if;
    insert into loyverse.loyverse_inbound_audit (account_id, restaurant_id, product_id, loyverse_id, decision,
                                                 applied, our_price, loyverse_price, details)
    select d.account_id, d.restaurant_id, d.product_id, d.loyverse_variant_id, 'DRIFT_REPAIRED', true,
           d.our_price, d.loyverse_price, jsonb_build_object('kind', d.kind, 'repair', d.repair)
      from loyverse.loyverse_price_drift d
     where d.restaurant_id = p_restaurant_id and d.repaired_at = now();
    return jsonb_build_object('direction', v_settings.sync_direction, 'queued', v_queued, 'pulled', v_pulled,
                              'unrepaired', (select count(*) from loyverse.loyverse_price_drift d
                                              where d.restaurant_id = p_restaurant_id and d.repaired_at is null));
end;
$$;
comment on function loyverse.repair_price_drift(uuid) is
    'Repair the drift of the last reconciliation in the restaurant''s direction: push our prices '
    '(TO_LOYVERSE, BIDIRECTIONAL; availability and missing items are reported only) or take Loyverse''s '
    'prices and availability (FROM_LOYVERSE). Returns {direction, queued, pulled, unrepaired}.';

-- ---- sql/0468_function_inbound_polls.sql ----
-- Polling, the safety net under webhooks: which accounts are due a GET /items?updated_at_min
-- read, and the cursor after a read. Rows of loyverse_inbound_settings are made here on first use.
create function loyverse.inbound_settings_row(p_account_id bigint)
returns loyverse.loyverse_inbound_settings
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_row loyverse.loyverse_inbound_settings;
begin
    insert into loyverse.loyverse_inbound_settings (account_id) values (p_account_id)
    on conflict (account_id) do nothing;
    select * into v_row from loyverse.loyverse_inbound_settings s where s.account_id = p_account_id;
    return v_row;
end;
$$;
comment on function loyverse.inbound_settings_row(bigint) is
    'The account''s inbound settings (webhook URL secret, polling), created with defaults on first use.';

create function loyverse.due_inbound_polls()
returns table (account_id bigint, updated_at_min timestamptz)
language plpgsql
security definer
set search_path = ''
as $$
begin
    -- every account with a linked restaurant that hears Loyverse gets a row
    insert into loyverse.loyverse_inbound_settings (account_id)
    select distinct l.account_id
      from loyverse.loyverse_restaurant_links l
      join loyverse.loyverse_price_sync_settings s on s.restaurant_id = l.restaurant_id
     where s.enabled and s.sync_direction in ('FROM_LOYVERSE', 'BIDIRECTIONAL')
    on conflict do nothing;
    return query
    select i.account_id, i.polled_until - make_interval(secs => i.poll_overlap_seconds)
      from loyverse.loyverse_inbound_settings i
     where i.poll_enabled
       and (i.last_polled_at is null or i.last_polled_at + make_interval(secs => i.poll_interval_seconds) <= now())
       and exists (select 1 from loyverse.loyverse_restaurant_links l
                     join loyverse.loyverse_price_sync_settings s on s.restaurant_id = l.restaurant_id
                    where l.account_id = i.account_id and s.enabled
                      and s.sync_direction in ('FROM_LOYVERSE', 'BIDIRECTIONAL'));
end;
$$;
comment on function loyverse.due_inbound_polls() is
    'Accounts due a poll (a FROM_LOYVERSE or BIDIRECTIONAL restaurant, poll_enabled, interval elapsed) and the '
    'updated_at_min to read from (null: never polled; the poller starts its cursor at now).';

create function loyverse.finish_inbound_poll(p_account_id bigint, p_polled_until timestamptz)
returns void
language sql
security definer
set search_path = ''
as $$
    update loyverse.loyverse_inbound_settings s
       set last_polled_at = now(),
           polled_until = greatest(s.polled_until, p_polled_until),
           updated_at = now()
     where s.account_id = p_account_id;
$$;
comment on function loyverse.finish_inbound_poll(bigint, timestamptz) is
    'After a poll: remember when, and move the cursor to the newest updated_at read (never backwards).';

-- ---- sql/0469_function_inbound_receiver_support.sql ----
-- What the webhook receiver needs besides the INSERT: the account behind a URL secret (with
-- its signing secret, still encrypted), and the sweep of inboxes whose wake-up was lost.
create function loyverse.inbound_account_for_secret(p_url_secret text)
returns table (account_id bigint, client_secret_ciphertext bytea, client_secret_key_id text)
language sql
stable
security definer
set search_path = ''
as $$
    select s.account_id, s.client_secret_ciphertext, s.client_secret_key_id
      from loyverse.loyverse_inbound_settings s
     where s.url_secret = p_url_secret;
$$;
comment on function loyverse.inbound_account_for_secret(text) is
    'The webhook receiver''s lookup: the account whose URL secret this is (no row: unknown, 404).';

create function loyverse.wake_pending_inboxes()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_account bigint;
    v_count integer := 0;
begin
    for v_account in select distinct i.account_id from loyverse.loyverse_inbox i
                      where i.status = 'pending' and i.next_attempt_at <= now() loop
        if loyverse.wake_inbox(v_account) then
            v_count := v_count + 1;
        end if;
    end loop;
    return v_count;
end;
$$;
comment on function loyverse.wake_pending_inboxes() is
    'Safety net (periodic): wake the inbox job of every account with a due pending delivery; returns jobs queued.';

-- ---- sql/0470_function_prune_loyverse_inbox.sql ----
-- Retention of the inbox: applied and failed deliveries older than the retention go (in
-- batches); the audit trail (loyverse_inbound_audit) keeps its rows, its inbox_id set null.
create function loyverse.prune_loyverse_inbox(p_older_than interval, p_limit integer default 50000)
returns integer
language sql
security definer
set search_path = ''
as $$
    with gone as (
        delete from loyverse.loyverse_inbox i
         where i.id in (select x.id from loyverse.loyverse_inbox x
                         where x.status in ('applied', 'failed') and x.received_at < now() - p_older_than
                         order by x.received_at
                         limit p_limit)
        returning 1
    )
    select count(*)::integer from gone;
$$;
comment on function loyverse.prune_loyverse_inbox(interval, integer) is
    'Delete applied and failed deliveries received before now() - p_older_than (at most p_limit); returns the count.';

-- ---- sql/0480_function_readable_restaurants.sql ----
-- The restaurants a role may read in the status and history views: null (every one) for the
-- operators, else those granted to it or to a role it belongs to. The views call it once per
-- query (an uncorrelated subquery) with current_user.
create function loyverse.readable_restaurants(p_role name)
returns uuid[]
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    -- Operators read every restaurant: superusers and the schema's owner, loyverse_worker and
    -- loyverse_readonly members (pg_has_role is true for a superuser whatever the role), and
    -- any role outside loyverse_app (the views grant it nothing anyway).
    if not pg_catalog.pg_has_role(p_role, 'loyverse_app', 'MEMBER')
       or pg_catalog.pg_has_role(p_role, 'loyverse_worker', 'MEMBER')
       or pg_catalog.pg_has_role(p_role, 'loyverse_readonly', 'MEMBER')
       or pg_catalog.pg_has_role(p_role, (select n.nspowner from pg_catalog.pg_namespace n
                                           where n.nspname = 'loyverse'), 'MEMBER') then
        return null;
    end if;
    -- A session learns only the restaurants of a role it may act as (itself, or one it may SET ROLE to).
    if not pg_catalog.pg_has_role(session_user, p_role, 'MEMBER') then
        return '{}';
    end if;
    return coalesce((select array_agg(distinct m.restaurant_id)
                       from loyverse.loyverse_restaurant_roles m
                       join pg_catalog.pg_roles r on r.rolname = m.role_name
                      where pg_catalog.pg_has_role(p_role, r.oid, 'MEMBER')), '{}');
end;
$$;
comment on function loyverse.readable_restaurants(name) is
    'The restaurants role p_role may read in price_sync_status, price_sync_history, import_runs and audit_trail: '
    'null = every one (superusers, the owner, loyverse_worker and loyverse_readonly members), else the ids '
    'granted to it or a role it belongs to (none granted: none). Example: select loyverse.readable_restaurants(current_user);';

-- ---- sql/0481_function_grant_restaurant_to_role.sql ----
-- SQL API for DBAs: let a role of the main app read a restaurant in the status and history
-- views (`loyverse-sync restaurant grant-role`). Refuses a role that does not exist or is
-- not a member of loyverse_app (a grant to it would change nothing), naming the field.
create function loyverse.grant_restaurant_to_role(p_role text, p_restaurant_id uuid)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_oid oid;
begin
    select r.oid into v_oid from pg_catalog.pg_roles r where r.rolname = p_role;
    if v_oid is null then
        raise exception 'role: no database role %', coalesce(p_role, '(null)')
            using errcode = 'invalid_parameter_value', column = 'role';
    end if;
    if not pg_catalog.pg_has_role(v_oid, 'loyverse_app', 'MEMBER') then
        raise exception 'role: % is not a member of loyverse_app (grant loyverse_app to % first)', p_role, p_role
            using errcode = 'invalid_parameter_value', column = 'role';
    end if;
    if not exists (select 1 from public.restaurants x where x.id = p_restaurant_id) then
        raise exception 'restaurant: no restaurant %', p_restaurant_id
            using errcode = 'no_data_found', column = 'restaurant';
    end if;
    insert into loyverse.loyverse_restaurant_roles (role_name, restaurant_id)
    values (p_role, p_restaurant_id)
    on conflict do nothing;
    return found;
end;
$$;
comment on function loyverse.grant_restaurant_to_role(text, uuid) is
    'Let database role p_role (a member of loyverse_app) read restaurant p_restaurant_id in the status and history '
    'views. Returns false when it already could. Example: select loyverse.grant_restaurant_to_role(''app_bistro'', ''<uuid>'');';

-- ---- sql/0482_function_revoke_restaurant_from_role.sql ----
-- SQL API for DBAs: take back restaurants granted to a role (`loyverse-sync restaurant revoke-role`).
create function loyverse.revoke_restaurant_from_role(p_role text, p_restaurant_id uuid default null)
returns integer
language sql
security definer
set search_path = ''
as $$
    with gone as (
        delete from loyverse.loyverse_restaurant_roles m
         where m.role_name = p_role and (p_restaurant_id is null or m.restaurant_id = p_restaurant_id)
        returning 1)
    select count(*)::integer from gone;
$$;
comment on function loyverse.revoke_restaurant_from_role(text, uuid) is
    'Take back the restaurant (null: every restaurant) granted to role p_role. Returns how many grants went.';

-- ---- sql/0500_view_account_overview.sql ----
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

-- ---- sql/0505_view_restaurant_overview.sql ----
-- Each restaurant with its Loyverse account and store, product counts and sync settings.
create view loyverse.restaurant_overview as
select r.id as restaurant_id,
       r.name,
       l.account_id,
       a.name as account_name,
       l.store_id,
       l.store_name,
       (select count(*) from public.products p where p.restaurant_id = r.id) as products,
       (select count(*) from loyverse.loyverse_item_mappings m where m.restaurant_id = r.id) as mapped_products,
       s.enabled as sync_enabled,
       s.sync_direction,
       s.sync_frequency,
       s.paused
  from public.restaurants r
  left join loyverse.loyverse_restaurant_links l on l.restaurant_id = r.id
  left join loyverse.loyverse_accounts a on a.id = l.account_id
  left join loyverse.loyverse_price_sync_settings s on s.restaurant_id = r.id;

comment on view loyverse.restaurant_overview is 'Each restaurant with its Loyverse account and store, product counts and sync settings.';

-- ---- sql/0520_view_price_sync_status.sql ----
-- Per-restaurant price-sync status for DBAs and the CLI (`sync status`).
-- One grouped pass over the queue rows that count (pending, processing, failed, dead,
-- conflict, and done in the last day: each arm matches a partial index), joined by
-- restaurant_id: the cost does not multiply by the number of restaurants. A restaurant
-- whose last success is older than a day takes it from last_done, read only for such a
-- restaurant (and only when last_success_at is selected): one pass for all of them. A role of
-- the main app sees only the restaurants granted to it (loyverse.readable_restaurants).
create view loyverse.price_sync_status as
with last_done as materialized (
    select y.restaurant_id, y.completed_at
      from loyverse.loyverse_price_sync_queue y
     where y.id in (select max(z.id) from loyverse.loyverse_price_sync_queue z
                     where z.status = 'done' group by z.restaurant_id)
)
select r.id as restaurant_id,
       r.name as restaurant_name,
       l.account_id,
       l.store_id,
       s.enabled,
       s.paused,
       s.sync_direction,
       s.sync_frequency,
       s.price_rounding_rule,
       coalesce(q.pending, 0) as pending,
       coalesce(q.due, 0) as due,
       coalesce(q.processing, 0) as processing,
       coalesce(q.failed, 0) as failed,
       coalesce(q.dead, 0) as dead,
       coalesce(q.conflicts, 0) as conflicts,
       now() - q.oldest_pending as oldest_pending_age,
       coalesce(q.last_success_at,
                (select d.completed_at from last_done d where d.restaurant_id = r.id)) as last_success_at,
       coalesce(q.synced_last_hour, 0) as synced_last_hour,
       round(q.synced_last_hour::numeric / nullif(q.finished_last_hour, 0), 3) as success_rate_last_hour,
       coalesce(q.synced_last_day, 0) as synced_last_day,
       round(q.synced_last_day::numeric / nullif(q.finished_last_day, 0), 3) as success_rate_last_day,
       round(coalesce(rate.requests_last_5min, 0) / 5.0, 1) as requests_per_minute,
       round((a.rate_limit_requests * 60 / a.rate_limit_window_seconds)::numeric, 1) as budget_per_minute,
       coalesce(q.held, 0) as held
  from public.restaurants r
  join loyverse.loyverse_price_sync_settings s on s.restaurant_id = r.id
  left join loyverse.loyverse_restaurant_links l on l.restaurant_id = r.id
  left join loyverse.loyverse_accounts a on a.id = l.account_id
  left join (
      select x.restaurant_id,
             count(*) filter (where x.status = 'pending') as pending,
             count(*) filter (where x.status = 'pending' and x.next_attempt_at <= now()) as due,
             count(*) filter (where x.status = 'processing') as processing,
             count(*) filter (where x.status = 'failed') as failed,
             count(*) filter (where x.status = 'dead') as dead,
             count(*) filter (where x.status = 'conflict') as conflicts,
             count(*) filter (where x.status = 'held') as held,
             min(x.created_at) filter (where x.status = 'pending') as oldest_pending,
             max(x.completed_at) filter (where x.status = 'done') as last_success_at,
             count(*) filter (where x.status = 'done' and x.completed_at > now() - interval '1 hour') as synced_last_hour,
             count(*) filter (where x.status in ('done', 'failed', 'dead')
                                and x.completed_at > now() - interval '1 hour') as finished_last_hour,
             count(*) filter (where x.status = 'done' and x.completed_at > now() - interval '1 day') as synced_last_day,
             count(*) filter (where x.status in ('done', 'failed', 'dead')
                                and x.completed_at > now() - interval '1 day') as finished_last_day
        from loyverse.loyverse_price_sync_queue x
       where x.status = 'pending'
          or x.status = 'processing'
          or x.status in ('failed', 'dead', 'conflict')
          or x.status = 'held'
          or (x.status = 'done' and x.completed_at > now() - interval '1 day')
       group by x.restaurant_id
  ) q on q.restaurant_id = r.id
  left join lateral (
      select sum(g.requests_made) as requests_last_5min
        from loyverse.loyverse_sync_logs g
       where g.account_id = l.account_id and g.sync_type = 'PRICE_SYNC'
         and g.started_at > now() - interval '5 minutes'
  ) rate on true
 -- a role of the main app reads only its restaurants (loyverse.readable_restaurants: null = all)
 where (select loyverse.readable_restaurants(current_user)) is null or r.id = any ((select loyverse.readable_restaurants(current_user))::uuid[]);
comment on view loyverse.price_sync_status is
    'Price sync per restaurant: queue counts (pending, due, processing, failed, dead, conflicts, held), oldest pending '
    'age, last success, items synced and success rate over the last hour and day, the account''s current '
    'price-sync send rate (requests/min over 5 min) against its budget.';
comment on column loyverse.price_sync_status.held is
    'Changes held by the guardrails, waiting for a person (loyverse.price_sync_held; `sync approve` / `sync reject`).';
comment on column loyverse.price_sync_status.due is 'Pending rows whose time has come (REALTIME at once, BATCH_* at their boundary, retries after their backoff).';
comment on column loyverse.price_sync_status.success_rate_last_hour is 'done / (done + failed + dead) completed in the last hour; null when none.';
comment on column loyverse.price_sync_status.requests_per_minute is 'Loyverse requests made by price sync for this restaurant''s account, per minute over the last 5 minutes.';

-- ---- sql/0525_view_price_sync_history.sql ----
-- Sync history: one row per price-sync batch, manual trigger, retry and a person's decision
-- on held changes or a VARIABLE price (approve, reject, make fixed). A role of the main app sees
-- only its restaurants' rows (loyverse.readable_restaurants).
create view loyverse.price_sync_history as
select g.id as log_id,
       g.started_at,
       g.completed_at,
       g.completed_at - g.started_at as duration,
       g.sync_type,
       g.status,
       g.account_id,
       g.restaurant_id,
       case when jsonb_typeof(g.details->'restaurant_ids') = 'array'
            then array(select jsonb_array_elements_text(g.details->'restaurant_ids'))::uuid[]
            else array_remove(array[g.restaurant_id], null) end as restaurant_ids,
       g.items_total,
       g.items_succeeded,
       g.items_failed,
       g.items_skipped,
       g.requests_made,
       g.error_details
  from loyverse.loyverse_sync_logs g
 where g.sync_type in ('PRICE_SYNC', 'MANUAL_TRIGGER', 'RETRY', 'APPROVE', 'REJECT', 'MAKE_FIXED')
   -- a role of the main app reads only rows of its restaurants (loyverse.readable_restaurants: null = all)
   and ((select loyverse.readable_restaurants(current_user)) is null
        or case when jsonb_typeof(g.details->'restaurant_ids') = 'array'
                then array(select jsonb_array_elements_text(g.details->'restaurant_ids'))::uuid[]
                else array_remove(array[g.restaurant_id], null) end && (select loyverse.readable_restaurants(current_user)));
comment on view loyverse.price_sync_history is
    'Price-sync history: each batch a worker wrote (items, requests, errors), each manual trigger and retry, '
    'each approval or rejection of held changes and each price made fixed. '
    'restaurant_ids lists every restaurant of a batch (restaurant_id is set only when there is one).';

-- ---- sql/0530_view_price_sync_problems.sql ----
-- Failed, dead-lettered and held (conflict) changes with their last error.
create view loyverse.price_sync_problems as
select q.id as queue_id,
       q.restaurant_id,
       r.name as restaurant_name,
       q.product_id,
       p.name as product_name,
       q.status,
       q.old_price,
       q.new_price,
       q.price_to_send,
       p.price as current_price,
       q.attempts,
       q.max_attempts,
       q.last_error_code,
       q.last_error,
       q.error_details,
       m.loyverse_item_id,
       m.loyverse_variant_id,
       m.loyverse_store_id,
       m.needs_attention,
       q.created_at,
       q.completed_at
  from loyverse.loyverse_price_sync_queue q
  join public.restaurants r on r.id = q.restaurant_id
  join public.products p on p.id = q.product_id
  left join loyverse.loyverse_item_mappings m on m.product_id = q.product_id
 where q.status in ('failed', 'dead', 'conflict');
comment on view loyverse.price_sync_problems is
    'Price changes that need a person: failed (not retryable, e.g. variant gone), dead (retries exhausted), '
    'conflict (edited in Loyverse, BIDIRECTIONAL). Fix with `sync retry` / `sync resolve`.';
comment on column loyverse.price_sync_problems.error_details is 'Loyverse''s error (code, details, field) or, for a conflict, the price found in Loyverse.';

-- ---- sql/0535_view_price_sync_queue_health.sql ----
-- Queue health per account: backlog, leases, and the procrastinate jobs that drain it.
create view loyverse.price_sync_queue_health as
select a.id as account_id,
       a.name as account_name,
       coalesce(q.pending, 0) as pending,
       coalesce(q.due, 0) as due,
       coalesce(q.processing, 0) as processing,
       coalesce(q.expired_leases, 0) as expired_leases,
       coalesce(q.retrying, 0) as retrying,
       now() - q.oldest_due as oldest_due_age,
       (select count(*) from public.procrastinate_jobs j
         where j.queueing_lock = 'loyverse_price_sync:' || a.id and j.status = 'todo') as jobs_queued,
       (select count(*) from public.procrastinate_jobs j
         where j.lock = 'loyverse_price_sync:' || a.id and j.status = 'doing') as jobs_running,
       st.throttled_until,
       st.rate_limited_total
  from loyverse.loyverse_accounts a
  left join loyverse.loyverse_account_rate_state st on st.account_id = a.id
  left join lateral (
      select count(*) filter (where x.status = 'pending') as pending,
             count(*) filter (where x.status = 'pending' and x.next_attempt_at <= now()) as due,
             count(*) filter (where x.status = 'processing') as processing,
             count(*) filter (where x.status = 'processing' and x.lease_until < now()) as expired_leases,
             count(*) filter (where x.status = 'pending' and x.attempts > 0) as retrying,
             min(x.next_attempt_at) filter (where x.status = 'pending' and x.next_attempt_at <= now()) as oldest_due
        from loyverse.loyverse_price_sync_queue x
       where x.account_id = a.id and x.status in ('pending', 'processing')
  ) q on true;
comment on view loyverse.price_sync_queue_health is
    'Per account: pending / due / processing rows, expired leases (a worker died; the next claim or sweep '
    'frees them), rows retrying, age of the oldest due row, queued and running sync jobs, 429 state.';

-- ---- sql/0540_view_price_sync_held.sql ----
-- Price changes held by the guardrails (hold_change_percent, hold_change_amount,
-- hold_below_price): what a person approves or rejects (`sync approve` / `sync reject`).
create view loyverse.price_sync_held as
select q.id as queue_id,
       q.restaurant_id,
       r.name as restaurant_name,
       q.product_id,
       p.name as product_name,
       (q.error_details ->> 'loyverse_price')::numeric as loyverse_price,
       q.new_price,
       q.price_to_send,
       p.price as current_price,
       q.last_error_code as reason_code,
       q.last_error as reason,
       q.updated_at as held_at,
       q.source
  from loyverse.loyverse_price_sync_queue q
  join public.restaurants r on r.id = q.restaurant_id
  join public.products p on p.id = q.product_id
 where q.status = 'held';
comment on view loyverse.price_sync_held is
    'Price changes held (not sent) because they cross a guardrail of their restaurant: the price Loyverse '
    'holds, ours, what would be sent and why it was held. Release with loyverse.approve_held_price_changes '
    '(`sync approve`), refuse with loyverse.reject_held_price_changes (`sync reject`); a newer price of the '
    'product supersedes its held change.';
comment on column loyverse.price_sync_held.reason_code is
    'HELD_CHANGE_PERCENT, HELD_CHANGE_AMOUNT or HELD_BELOW_FLOOR: the guardrail crossed.';

-- ---- sql/0560_view_api_latency.sql ----
-- The last hour of Loyverse API calls per account and endpoint: counts, mean, p50, p95, max.
create view loyverse.api_latency as
select s.account_id,
       a.name as account_name,
       s.method,
       s.endpoint,
       sum(s.calls) as calls,
       sum(s.calls) filter (where s.status between 200 and 299) as ok,
       sum(s.calls) filter (where s.status = 429) as rate_limited,
       sum(s.calls) filter (where s.status >= 500 or s.status = 0) as server_or_network_errors,
       round((sum(s.total_seconds) / nullif(sum(s.calls), 0))::numeric, 4) as mean_seconds,
       loyverse._latency_quantile(loyverse.sum_buckets(s.latency_buckets), 0.5) as p50_seconds,
       loyverse._latency_quantile(loyverse.sum_buckets(s.latency_buckets), 0.95) as p95_seconds,
       max(s.max_seconds) as max_seconds
  from loyverse.loyverse_api_call_stats s
  join loyverse.loyverse_accounts a on a.id = s.account_id
 where s.bucket_start > now() - interval '1 hour'
 group by s.account_id, a.name, s.method, s.endpoint;

comment on view loyverse.api_latency is
    'Loyverse API calls of the last hour per account, method and endpoint: counts by outcome, mean, '
    'p50 and p95 (upper bound of the histogram bucket) and max response time in seconds.';

comment on column loyverse.api_latency.p95_seconds is 'Histogram quantile: 95% of calls took at most this long.';

-- ---- sql/0565_view_alert_measurements.sql ----
-- Each restaurant's alert conditions measured now against their thresholds (read by
-- evaluate_alerts and by operators).
create view loyverse.alert_measurements as
select st.restaurant_id,
       st.restaurant_name,
       m.alert,
       m.value,
       m.threshold,
       m.value >= m.threshold as breached
  from loyverse.price_sync_status st
  join loyverse.loyverse_price_sync_settings s on s.restaurant_id = st.restaurant_id
  cross join lateral (values
      ('FAILURE_RATE', coalesce(1 - st.success_rate_last_hour, 0)::double precision, s.alert_failure_rate),
      ('QUEUE_DEPTH', st.pending::double precision, s.alert_queue_depth::double precision),
      ('OLDEST_PENDING', coalesce(extract(epoch from st.oldest_pending_age), 0)::double precision,
                         s.alert_oldest_pending_seconds::double precision),
      ('DEAD_LETTERS', st.dead::double precision, s.alert_dead_letters::double precision),
      -- prices that differ from Loyverse at the last reconciliation, not repaired since
      ('PRICE_DRIFT', (select count(*) from loyverse.loyverse_price_drift d
                        where d.restaurant_id = st.restaurant_id and d.repaired_at is null)::double precision,
                      1::double precision)
  ) m(alert, value, threshold)
 where s.enabled and not s.paused;

comment on view loyverse.alert_measurements is
    'Each restaurant''s alert conditions now: the measured value, its threshold from the settings, breached or not.';

-- ---- sql/0570_function_evaluate_alerts.sql ----
-- Open and close alert breaches and queue one ALERT or RECOVERY email per change; the worker
-- runs it every minute.
create function loyverse.evaluate_alerts()
returns table (restaurant_id uuid, alert text, change text, value double precision)
language plpgsql
set search_path = ''
as $$
-- Open a breach (and queue an ALERT email) for every condition newly over its threshold;
-- close it (and queue a RECOVERY email) when it is back under. Once per breach, whatever
-- how often this runs: the open breach is remembered in loyverse_alert_state.
begin
    create temporary table if not exists pg_temp.alert_changes (
        restaurant_id uuid, alert text, change text, value double precision, threshold double precision
    ) on commit drop;
    truncate pg_temp.alert_changes;

    with opened as (
        insert into loyverse.loyverse_alert_state as a (restaurant_id, alert, value, threshold)
        select m.restaurant_id, m.alert, m.value, m.threshold
          from loyverse.alert_measurements m
         where m.breached
           and not exists (select 1 from loyverse.loyverse_alert_state o
                            where o.restaurant_id = m.restaurant_id and o.alert = m.alert
                              and o.recovered_at is null)
        on conflict do nothing
        returning a.restaurant_id, a.alert, a.value, a.threshold
    )
    insert into pg_temp.alert_changes select o.restaurant_id, o.alert, 'BREACHED', o.value, o.threshold from opened o;

    with closed as (
        update loyverse.loyverse_alert_state a
           set recovered_at = now(), value = m.value
          from loyverse.alert_measurements m
         where a.restaurant_id = m.restaurant_id and a.alert = m.alert
           and a.recovered_at is null and not m.breached
        returning a.restaurant_id, a.alert, m.value, a.threshold
    )
    insert into pg_temp.alert_changes select c.restaurant_id, c.alert, 'RECOVERED', c.value, c.threshold from closed c;

    insert into loyverse.loyverse_notification_outbox (restaurant_id, kind, recipient, subject, body, payload, dedupe_key)
    select c.restaurant_id,
           case c.change when 'BREACHED' then 'ALERT' else 'RECOVERY' end,
           s.notification_email,
           format('[loyverse-sync] %s: %s %s', r.name, replace(lower(c.alert), '_', ' '),
                  case c.change when 'BREACHED' then 'over its threshold' else 'back to normal' end),
           format(E'Restaurant: %s
Condition: %s
Value: %s
Threshold: %s
At: %s

%s',
                  r.name, c.alert, round(c.value::numeric, 3), round(c.threshold::numeric, 3), now(),
                  case c.change when 'BREACHED'
                       then 'See `loyverse-sync sync status --restaurant ' || r.id || '` for details.'
                       else 'No action needed.' end),
           jsonb_build_object('alert', c.alert, 'change', c.change, 'value', c.value, 'threshold', c.threshold),
           format('alert:%s:%s:%s:%s', c.restaurant_id, c.alert, c.change,
                  (select max(a.breached_at) from loyverse.loyverse_alert_state a
                    where a.restaurant_id = c.restaurant_id and a.alert = c.alert))
      from pg_temp.alert_changes c
      join public.restaurants r on r.id = c.restaurant_id
      join loyverse.loyverse_price_sync_settings s on s.restaurant_id = c.restaurant_id
     where s.notification_email is not null
    on conflict (dedupe_key) do nothing;

    return query select c.restaurant_id, c.alert, c.change, c.value from pg_temp.alert_changes c;
end;
$$;

comment on function loyverse.evaluate_alerts() is
    'Compare every restaurant''s alert conditions with its thresholds; open/close breaches and queue one '
    'ALERT or RECOVERY email per change. Run periodically by the worker.';

-- ---- sql/0575_view_alerts.sql ----
-- Alert breaches, open and recovered, per restaurant.
create view loyverse.alerts as
select a.restaurant_id, r.name as restaurant_name, a.alert, a.breached_at, a.recovered_at, a.value, a.threshold,
       a.recovered_at is null as open
  from loyverse.loyverse_alert_state a
  join public.restaurants r on r.id = a.restaurant_id;

comment on view loyverse.alerts is 'Alert breaches, open and recovered, per restaurant.';

-- ---- sql/0580_view_price_drift.sql ----
-- The DBA's view of reconciliation: every mapped product whose price (as we would send it)
-- or availability differs from Loyverse at the last `sync reconcile`, and what was repaired.
create view loyverse.price_drift as
select d.restaurant_id,
       r.name as restaurant_name,
       d.product_id,
       p.name as product_name,
       d.kind,
       d.our_price,
       d.loyverse_price,
       d.our_available,
       d.loyverse_available,
       d.loyverse_item_id,
       d.loyverse_variant_id,
       d.found_at,
       d.repaired_at,
       d.repair
  from loyverse.loyverse_price_drift d
  join public.restaurants r on r.id = d.restaurant_id
  join public.products p on p.id = d.product_id;

comment on view loyverse.price_drift is
    'Drift found by the last reconciliation per restaurant: kind price (our_price = the price we would send, '
    'after rounding and price factor), availability, or missing (the item or variant is gone in Loyverse); '
    'repaired_at/repair once `sync reconcile --repair` fixed it.';

-- ---- sql/0585_view_inbound_decisions.sql ----
-- The DBA's view of the audit trail of changes heard from Loyverse, newest first by id.
create view loyverse.inbound_decisions as
select a.id,
       a.at,
       a.account_id,
       a.restaurant_id,
       r.name as restaurant_name,
       a.product_id,
       p.name as product_name,
       a.decision,
       a.applied,
       a.our_price,
       a.loyverse_price,
       a.loyverse_id,
       a.inbox_id,
       i.source,
       a.details
  from loyverse.loyverse_inbound_audit a
  left join public.restaurants r on r.id = a.restaurant_id
  left join public.products p on p.id = a.product_id
  left join loyverse.loyverse_inbox i on i.id = a.inbox_id;

comment on view loyverse.inbound_decisions is
    'Every decision on a change heard from Loyverse (webhook, poll, reconciliation): PRICE_APPLIED, '
    'ECHO_IGNORED, AGREED, CONFLICT_HELD / _KEPT_OURS / _KEPT_THEIRS (details.policy), STALE_IGNORED, '
    'TOMBSTONE_IGNORED, ITEM_CREATED / _RENAMED / _DELETED, VARIANT_DELETED, STOCK_APPLIED, '
    'DELIVERY_REJECTED / _FAILED, DRIFT_FOUND / _REPAIRED; applied = whether our tables were changed.';

-- ---- sql/0590_view_restaurant_roles.sql ----
-- Which role of the main app reads which restaurant (`loyverse-sync restaurant roles`).
create view loyverse.restaurant_roles as
select m.role_name,
       m.restaurant_id,
       r.name as restaurant_name,
       exists (select 1 from pg_catalog.pg_roles x where x.rolname = m.role_name) as role_exists,
       m.granted_at,
       m.granted_by
  from loyverse.loyverse_restaurant_roles m
  join public.restaurants r on r.id = m.restaurant_id;
comment on view loyverse.restaurant_roles is
    'Restaurants each role of the main app may read in the status and history views '
    '(loyverse.grant_restaurant_to_role); role_exists is false for a grant left by a dropped role.';

-- ---- sql/0600_function_normalize_name.sql ----
-- The key names are compared by when an import looks for "the same name": case- and
-- space-insensitive ("  Flat  White" = "flat white").
create function loyverse.normalize_name(p_name text)
returns text
language sql
immutable
parallel safe
-- No SET clause: the SQL-standard body is bound when created (no search_path lookup at run
-- time), and a function with SET is never inlined: the import calls this per row.
return lower(regexp_replace(btrim(p_name), '\s+', ' ', 'g'));

comment on function loyverse.normalize_name(text) is
    'Lower-cased, trimmed, inner whitespace collapsed: how the menu import compares names.';

-- ---- sql/0601_function_jsonb_to_int.sql ----
-- Safe reads of Loyverse JSON: a value of the wrong type (or out of range) is null, never
-- an error, so one hostile object cannot abort a set-based import.
create function loyverse.jsonb_to_int(p_value jsonb)
returns integer
language sql
immutable
parallel safe
-- No SET clause: the SQL-standard body is bound when created (no search_path lookup at run
-- time), and a function with SET is never inlined: the import calls this per row.
return case when jsonb_typeof(p_value) = 'number' then
            case when (p_value #>> '{}')::numeric between -2147483648 and 2147483647
                 then round((p_value #>> '{}')::numeric)::integer end end;

comment on function loyverse.jsonb_to_int(jsonb) is 'A JSON number as an integer; null for anything else or out of range.';

-- ---- sql/0602_function_jsonb_to_bool.sql ----
-- Safe read of a Loyverse JSON boolean (see jsonb_to_int).
create function loyverse.jsonb_to_bool(p_value jsonb)
returns boolean
language sql
immutable
parallel safe
-- No SET clause: the SQL-standard body is bound when created (no search_path lookup at run
-- time), and a function with SET is never inlined: the import calls this per row.
return case when jsonb_typeof(p_value) = 'boolean' then (p_value #>> '{}')::boolean end;

comment on function loyverse.jsonb_to_bool(jsonb) is 'A JSON boolean as boolean; null for anything else.';

-- ---- sql/0605_function_import_field_map_problems.sql ----
-- Checks an import's --map (Loyverse field -> our products column) against both schemas:
-- the Loyverse item/variant fields we know, and public.products as it is in this database.
create function loyverse.import_field_map_problems(p_map jsonb)
returns table (loyverse_field text, our_column text, problem text)
language sql
stable
set search_path = ''
as $$
    with m as (
        select e.key as f, e.value as c
          from jsonb_each(case when jsonb_typeof(p_map) = 'object' then p_map else '{}'::jsonb end) e
    ),
    lv(f) as (
        values ('item_name'), ('handle'), ('reference_id'), ('description'), ('form'), ('color'),
               ('image_url'), ('id'), ('option1_name'), ('option2_name'), ('option3_name'),
               ('sku'), ('barcode'), ('reference_variant_id'), ('variant_id'), ('option1_value'),
               ('option2_value'), ('option3_value'), ('cost'), ('purchase_cost')
    ),
    cols as (
        select a.attname::text as c, format_type(a.atttypid, a.atttypmod) as t
          from pg_catalog.pg_attribute a
         where a.attrelid = 'public.products'::regclass and a.attnum > 0 and not a.attisdropped
    )
    select m.f, m.c #>> '{}',
           case
             when jsonb_typeof(m.c) <> 'string' then 'the column must be given as text'
             when not exists (select 1 from lv where lv.f = m.f) then
               format('%s is not a Loyverse item or variant field (known: %s)', m.f,
                      (select string_agg(f, ', ' order by f) from lv))
             when not exists (select 1 from cols where cols.c = m.c #>> '{}') then
               format('products has no column %s', m.c #>> '{}')
             when (m.c #>> '{}') in ('id', 'restaurant_id', 'category_id', 'product_group_id', 'price',
                                    'is_active', 'created_at', 'updated_at') then
               format('products.%s is set by the import itself and cannot be mapped', m.c #>> '{}')
             when (select t from cols where cols.c = m.c #>> '{}') not in ('text', 'character varying')
                  and (select t from cols where cols.c = m.c #>> '{}') not like 'character varying(%' then
               format('products.%s is %s; only text columns can be mapped', m.c #>> '{}',
                      (select t from cols where cols.c = m.c #>> '{}'))
             when (select count(*) from m m2 where m2.c = m.c) > 1 then
               format('products.%s is mapped more than once', m.c #>> '{}')
           end
      from m
     where jsonb_typeof(m.c) <> 'string'
        or not exists (select 1 from lv where lv.f = m.f)
        or not exists (select 1 from cols where cols.c = m.c #>> '{}')
        or (m.c #>> '{}') in ('id', 'restaurant_id', 'category_id', 'product_group_id', 'price',
                             'is_active', 'created_at', 'updated_at')
        or (select t from cols where cols.c = m.c #>> '{}') not in ('text', 'character varying')
           and (select t from cols where cols.c = m.c #>> '{}') not like 'character varying(%'
        or (select count(*) from m m2 where m2.c = m.c) > 1;
$$;

comment on function loyverse.import_field_map_problems(jsonb) is
    'Problems of an import field mapping {"loyverse_field": "products_column"}; no rows = valid.';

-- ---- sql/0607_function_import_plan_progress.sql ----
-- How loyverse.import_plan tells its caller how far it is, while it runs: a NOTICE is sent to
-- the client at once (the statement has not returned), so the caller can write the run's
-- progress from another connection. The plan's own transaction writes nothing for it.
create function loyverse._import_plan_progress(p_run_id bigint, p_stage text, p_done bigint, p_total bigint)
returns void
language plpgsql
set search_path = ''
as $$
begin
    raise notice using
        message = format('import_plan progress: run %s, %s %s of %s', p_run_id, p_stage, p_done, p_total),
        detail = jsonb_build_object('run_id', p_run_id, 'stage', p_stage, 'done', p_done, 'total', p_total,
                                    'at', clock_timestamp())::text;
end;
$$;
comment on function loyverse._import_plan_progress(bigint, text, bigint, bigint) is
    'Internal to import_plan: a progress NOTICE (detail: JSON run_id, stage items|steps, done, total, at = '
    'the planning backend''s clock_timestamp()). psql shows it; loyverse_sync.importer.runs writes it to the run.';

-- ---- sql/0610_function_import_plan.sql ----
-- Builds an import run's plan from its snapshot, set-based: validation, pricing for the
-- linked store, conflict detection (mapping, then SKU, then name), resolution, and the
-- fidelity report. Writes only the run's plan tables; the catalogue is untouched. Tells how far
-- it is while it runs (a NOTICE per 1,000 items and per step: loyverse._import_plan_progress).
create function loyverse.import_plan(p_run_id bigint)
returns jsonb
language plpgsql
set search_path = ''
set jit = off
set enable_nestloop = off
set work_mem = '64MB'
set enable_memoize = off
as $$
declare
    v_run loyverse.loyverse_import_runs;
    v_opts jsonb;
    v_store text;
    v_dp integer;
    v_incl_tax boolean;
    v_conflict text;
    v_decisions jsonb;
    v_name_field text;
    v_sku_field text;
    v_extra jsonb;
    v_batch integer;
    v_unknown text;
    v_sel_items text[];
    v_sel_cats text[];
    v_excl text[];
    v_selecting boolean;
    v_inventory boolean;
    v_atomic boolean;
    -- progress (loyverse._import_plan_progress): items planned, then the steps after them
    v_items bigint;
    v_done bigint;
    v_after integer;
    v_upto integer;
    v_rows integer := 0;
    v_n integer;
    v_steps integer;
    v_chunk constant integer := 4000;  -- plan rows written per statement at the end
begin
    select * into v_run from loyverse.loyverse_import_runs r where r.id = p_run_id;
    if not found then
        raise exception 'import_plan: no import run %', p_run_id using errcode = 'no_data_found';
    end if;
    if v_run.snapshot_id is null then
        raise exception 'import_plan: run % has no snapshot', p_run_id using errcode = 'invalid_parameter_value';
    end if;
    v_opts := v_run.options;
    -- An atomic run (no --batch-size, not a dry run) plans and writes in one transaction.
    v_atomic := not v_run.dry_run and jsonb_typeof(v_opts -> 'batch_size') is distinct from 'number';
    select l.store_id into v_store
      from loyverse.loyverse_restaurant_links l where l.restaurant_id = v_run.restaurant_id;
    if v_store is null then
        raise exception 'restaurant % is not linked to a Loyverse store', v_run.restaurant_id
            using errcode = 'invalid_parameter_value';
    end if;
    -- The currency's decimals: what the snapshot's merchant says, else the account row.
    select coalesce(case when jsonb_typeof(s.merchant #> '{currency,decimal_places}') = 'number'
                         then (s.merchant #>> '{currency,decimal_places}')::numeric::integer end,
                    a.decimal_places, 2)
      into v_dp
      from loyverse.loyverse_snapshots s
      left join loyverse.loyverse_accounts a on a.id = s.account_id
     where s.id = v_run.snapshot_id;
    v_dp := least(greatest(coalesce(v_dp, 2), 0), 2);  -- products.price is numeric(12,2)
    select coalesce((select st.prices_include_tax from loyverse.loyverse_price_sync_settings st
                      where st.restaurant_id = v_run.restaurant_id), true)
      into v_incl_tax;
    v_conflict := coalesce(v_opts ->> 'conflict', 'skip');
    v_decisions := case when jsonb_typeof(v_opts -> 'decisions') = 'object' then v_opts -> 'decisions' else '{}' end;
    v_name_field := coalesce((select e.key from jsonb_each_text(coalesce(v_opts -> 'map', '{}')) e
                               where e.value = 'name' limit 1), 'item_name');
    v_sku_field := coalesce((select e.key from jsonb_each_text(coalesce(v_opts -> 'map', '{}')) e
                              where e.value = 'sku' limit 1), 'sku');
    v_extra := coalesce((select jsonb_object_agg(e.value, e.key) from jsonb_each_text(coalesce(v_opts -> 'map', '{}')) e
                          where e.value not in ('name', 'sku')), '{}');
    v_batch := greatest(coalesce((v_opts ->> 'batch_size')::integer, 500), 1);
    v_unknown := coalesce(v_opts ->> 'unknown_category', 'fallback');
    v_inventory := coalesce(loyverse.jsonb_to_bool(v_opts -> 'with_inventory'), false);
    select coalesce(array_agg(loyverse.normalize_name(x)), '{}') into v_sel_items
      from jsonb_array_elements_text(coalesce(v_opts -> 'items', '[]')) x;
    select coalesce(array_agg(loyverse.normalize_name(x)), '{}') into v_sel_cats
      from jsonb_array_elements_text(coalesce(v_opts -> 'categories', '[]')) x;
    select coalesce(array_agg(loyverse.normalize_name(x)), '{}') into v_excl
      from jsonb_array_elements_text(coalesce(v_opts -> 'exclude', '[]')) x;
    v_selecting := cardinality(v_sel_items) + cardinality(v_sel_cats) + cardinality(v_excl) > 0;

    delete from loyverse.loyverse_import_plan p where p.run_id = p_run_id;
    delete from loyverse.loyverse_import_plan_objects p where p.run_id = p_run_id;
    delete from loyverse.loyverse_import_issues i where i.run_id = p_run_id;

    -- Valid, live categories, taxes and modifiers of the snapshot.
    drop table if exists pg_temp._lv_cats, pg_temp._lv_taxes, pg_temp._lv_mods, pg_temp._lv_items, pg_temp._lv_rows,
        pg_temp._lv_stock, pg_temp._lv_plan;
    create temp table _lv_cats on commit drop as
    select distinct on (o.loyverse_id) o.loyverse_id as id, btrim(o.payload ->> 'name') as name, o.seq
      from loyverse.loyverse_snapshot_objects o
     where o.snapshot_id = v_run.snapshot_id and o.kind = 'category' and o.loyverse_id is not null
       and jsonb_typeof(o.payload -> 'name') = 'string' and btrim(o.payload ->> 'name') <> ''
       and length(o.payload ->> 'name') <= 64
       and coalesce(jsonb_typeof(o.payload -> 'deleted_at'), 'null') = 'null'
     order by o.loyverse_id, o.seq;

    create temp table _lv_taxes on commit drop as
    select distinct on (o.loyverse_id) o.loyverse_id as id, o.payload ->> 'type' as type,
           (o.payload ->> 'rate')::numeric as rate
      from loyverse.loyverse_snapshot_objects o
     where o.snapshot_id = v_run.snapshot_id and o.kind = 'tax' and o.loyverse_id is not null
       and jsonb_typeof(o.payload -> 'rate') = 'number'
       and (o.payload ->> 'rate')::numeric between 0 and 1000  -- a hostile rate is ignored (unknown_tax)
       and coalesce(jsonb_typeof(o.payload -> 'deleted_at'), 'null') = 'null'
       and (jsonb_typeof(o.payload -> 'stores') is distinct from 'array' or o.payload -> 'stores' ? v_store)
     order by o.loyverse_id, o.seq;

    create temp table _lv_mods on commit drop as
    select distinct on (o.loyverse_id) o.loyverse_id as id, btrim(o.payload ->> 'name') as name, o.payload as m,
           (jsonb_typeof(o.payload -> 'stores') is distinct from 'array' or o.payload -> 'stores' ? v_store) as in_store
      from loyverse.loyverse_snapshot_objects o
     where o.snapshot_id = v_run.snapshot_id and o.kind = 'modifier' and o.loyverse_id is not null
       and jsonb_typeof(o.payload -> 'name') = 'string' and btrim(o.payload ->> 'name') <> ''
       and coalesce(jsonb_typeof(o.payload -> 'deleted_at'), 'null') = 'null'
     order by o.loyverse_id, o.seq;

    -- Stock levels of the linked store (--with-inventory); negative stock is allowed.
    create temp table _lv_stock on commit drop as
    select distinct on (o.payload ->> 'variant_id') o.payload ->> 'variant_id' as variant_id,
           case when jsonb_typeof(o.payload -> 'in_stock') = 'number'
                     and (o.payload ->> 'in_stock')::numeric between -999999999 and 999999999
                then round((o.payload ->> 'in_stock')::numeric, 3) end as qty,
           o.payload -> 'in_stock' as raw
      from loyverse.loyverse_snapshot_objects o
     where v_inventory and o.snapshot_id = v_run.snapshot_id and o.kind = 'inventory'
       and o.payload ->> 'store_id' = v_store and jsonb_typeof(o.payload -> 'variant_id') = 'string'
     order by o.payload ->> 'variant_id', o.seq desc;

    -- Items, deduplicated by id (the first copy wins), then the selection.
    create temp table _lv_items on commit drop as
    -- i is the item without its variants (small: read many times without de-TOASTing the
    -- whole payload again), variants the array as sent (SQL null when the key is absent).
    -- (deduplicated by an anti join on the keys: sorting whole payloads spilled to disk)
    select o.seq, o.loyverse_id as item_id,
           case when jsonb_typeof(o.payload) = 'object' then o.payload - 'variants' else o.payload end as i,
           o.payload -> 'variants' as variants
      from loyverse.loyverse_snapshot_objects o
     where o.snapshot_id = v_run.snapshot_id and o.kind = 'item'
       and not exists (select 1 from loyverse.loyverse_snapshot_objects o2
                        where o2.snapshot_id = v_run.snapshot_id and o2.kind = 'item'
                          and o2.loyverse_id = o.loyverse_id and o2.seq < o.seq);

    analyze _lv_items (item_id);

    if v_selecting then
        delete from _lv_items it
         where not (
                 (cardinality(v_sel_items) = 0 and cardinality(v_sel_cats) = 0)
                 or loyverse.normalize_name(it.item_id) = any (v_sel_items)
                 or loyverse.normalize_name(it.i ->> 'item_name') = any (v_sel_items)
                 or loyverse.normalize_name(it.i ->> 'category_id') = any (v_sel_cats)
                 or exists (select 1 from _lv_cats c where c.id = it.i ->> 'category_id'
                             and loyverse.normalize_name(c.name) = any (v_sel_cats)))
            or loyverse.normalize_name(it.item_id) = any (v_excl)
            or loyverse.normalize_name(it.i ->> 'item_name') = any (v_excl)
            or loyverse.normalize_name(it.i ->> 'category_id') = any (v_excl)
            or exists (select 1 from _lv_cats c where c.id = it.i ->> 'category_id'
                        and loyverse.normalize_name(c.name) = any (v_excl));
    end if;

    v_items := (select count(*) from _lv_items);
    perform loyverse._import_plan_progress(p_run_id, 'items', 0, v_items);

    -- One row per variant (an item without variants yields one row that fails validation),
    -- built 1,000 items at a time so that the caller hears of progress while it plans (the
    -- progress notices; row_no continues from the chunk before).
    create temp table _lv_rows (
        row_no integer, item_seq integer, item_id text, variant_id text, base_name text, sku text,
        pricing_type text, raw_price numeric, added_rate numeric, included_rate numeric, cat_id text,
        modifier_ids text[], option1_value text, option2_value text, option3_value text,
        available_for_sale boolean, extra jsonb, adj_price numeric, price_factor numeric, name text,
        cat_known boolean, deleted boolean, errors text[]
    ) on commit drop;
    create index on _lv_items (seq);
    v_after := -1;
    v_done := 0;
    while v_done < v_items loop  -- (every chunk has at least one item)
        v_upto := (select it.seq from _lv_items it where it.seq > v_after order by it.seq offset 999 limit 1);
        v_upto := coalesce(v_upto, 2147483647);
        insert into _lv_rows
        with it as materialized (
            -- per item, not per variant: the tax sums and the in-store modifiers it links (read
            -- from i, which is small and stored uncompressed; the snapshot payload is compressed
            -- and every access to it decompresses it again)
            select it.*, tx.added_rate, tx.included_rate,
                   coalesce((select array_agg(m.id order by m.id)
                               from _lv_mods m
                              where m.in_store and jsonb_typeof(it.i -> 'modifier_ids') = 'array'
                                and it.i -> 'modifier_ids' ? m.id), '{}') as mod_ids
              from _lv_items it
              cross join lateral (
                     select coalesce(sum(t.rate) filter (where t.type = 'ADDED'), 0) as added_rate,
                            coalesce(sum(t.rate) filter (where t.type = 'INCLUDED'), 0) as included_rate
                       from _lv_taxes t
                      where jsonb_typeof(it.i -> 'tax_ids') = 'array' and it.i -> 'tax_ids' ? t.id) tx
             where it.seq > v_after and it.seq <= v_upto
        ),
        v as (
            select it.seq as item_seq, it.item_id, it.i, jsonb_typeof(it.variants) as variants_type, vv.ord, vv.v,
                   it.added_rate, it.included_rate, it.mod_ids,
                   case when jsonb_typeof(it.variants) = 'array' then jsonb_array_length(it.variants) else 0 end as n_variants,
                   case when jsonb_typeof(vv.v -> 'variant_id') = 'string' and btrim(vv.v ->> 'variant_id') <> ''
                        then vv.v ->> 'variant_id' end as variant_id,
                   se.e as se,
                   case when jsonb_typeof(coalesce(vv.v -> v_name_field, it.i -> v_name_field)) in ('string', 'number')
                        then btrim(coalesce(vv.v -> v_name_field, it.i -> v_name_field) #>> '{}') end as base_name,
                   case when jsonb_typeof(coalesce(vv.v -> v_sku_field, it.i -> v_sku_field)) in ('string', 'number')
                        then nullif(btrim(coalesce(vv.v -> v_sku_field, it.i -> v_sku_field) #>> '{}'), '') end as sku,
                   coalesce(jsonb_typeof(coalesce(vv.v -> v_sku_field, it.i -> v_sku_field)), 'null') as sku_type
              from it
              cross join lateral jsonb_array_elements(
                     case when jsonb_typeof(it.variants) = 'array' and jsonb_array_length(it.variants) > 0
                          then it.variants else '[null]'::jsonb end) with ordinality vv(v, ord)
              left join lateral (
                     select e from jsonb_array_elements(case when jsonb_typeof(vv.v -> 'stores') = 'array'
                                                             then vv.v -> 'stores' else '[]'::jsonb end) e
                      where e ->> 'store_id' = v_store limit 1) se on true
        ),
        p as (
            select v.*,
                   case when v.se is not null
                        then coalesce(v.se ->> 'pricing_type', v.v ->> 'default_pricing_type', 'FIXED')
                        when jsonb_typeof(v.v -> 'default_price') = 'number'
                        then coalesce(v.v ->> 'default_pricing_type', 'FIXED')
                        else coalesce(v.v ->> 'default_pricing_type', 'VARIABLE') end as pricing_type
              from v
        ),
        q as (
            select p.*,
                   case when p.pricing_type = 'FIXED' then
                        case when p.se is not null and coalesce(jsonb_typeof(p.se -> 'price'), 'null') <> 'null'
                             then p.se -> 'price' else p.v -> 'default_price' end end as price_json,
                   case when jsonb_typeof(p.i -> 'category_id') = 'string' then p.i ->> 'category_id' end as cat_id
              from p
        ),
        r as materialized (
            select q.*,
                   case when jsonb_typeof(q.price_json) = 'number' then (q.price_json #>> '{}')::numeric end as raw_price
              from q
        )
        -- (narrow: the item and variant JSON is not copied into the table, only what is used later)
        select v_rows + row_number() over (order by r.item_seq, r.ord)::integer as row_no,
               r.item_seq, r.item_id, r.variant_id, r.base_name, r.sku, r.pricing_type, r.raw_price,
               r.added_rate, r.included_rate, r.cat_id, r.mod_ids as modifier_ids,
               r.v ->> 'option1_value' as option1_value, r.v ->> 'option2_value' as option2_value,
               r.v ->> 'option3_value' as option3_value,
               loyverse.jsonb_to_bool(r.se -> 'available_for_sale') as available_for_sale,
               case when v_extra = '{}' then '{}'::jsonb else coalesce((select jsonb_object_agg(x.key,
                                  case when jsonb_typeof(coalesce(r.v -> (x.value #>> '{}'), r.i -> (x.value #>> '{}'))) in ('string', 'number', 'boolean')
                                       then coalesce(r.v -> (x.value #>> '{}'), r.i -> (x.value #>> '{}')) #>> '{}' end)
                           from jsonb_each(v_extra) x), '{}') end as extra,
               case when r.raw_price is null then null
                    when v_incl_tax and r.added_rate > 0 then r.raw_price * (1 + r.added_rate / 100)
                    when not v_incl_tax and r.included_rate > 0 then r.raw_price / (1 + r.included_rate / 100)
                    else r.raw_price end as adj_price,
               -- our price / Loyverse price (price sync sends our price / price_factor back)
               round(case when v_incl_tax and r.added_rate > 0 then 1 + r.added_rate / 100
                          when not v_incl_tax and r.included_rate > 0 then 1 / (1 + r.included_rate / 100)
                          else 1 end, 6) as price_factor,
               case when r.n_variants > 1 or coalesce(r.v ->> 'option1_value', r.v ->> 'option2_value', r.v ->> 'option3_value') is not null
                    then r.base_name || coalesce(' (' || nullif(concat_ws(' / ', r.v ->> 'option1_value', r.v ->> 'option2_value', r.v ->> 'option3_value'), '') || ')', '')
                    else r.base_name end as name,
               exists (select 1 from _lv_cats c where c.id = r.cat_id) as cat_known,
               (coalesce(jsonb_typeof(r.i -> 'deleted_at'), 'null') <> 'null'
                or coalesce(jsonb_typeof(r.v -> 'deleted_at'), 'null') <> 'null') as deleted,
               array_remove(array[
                 case when r.item_id is null then 'the item has no id' end,
                 case when r.variants_type <> 'array' then 'variants is not a list'
                      when r.n_variants = 0 then 'the item has no variants' end,
                 case when r.n_variants > 0 and r.variant_id is null then 'the variant has no variant_id' end,
                 case when r.base_name is null then format('%s is missing or not text', v_name_field)
                      when r.base_name = '' then format('%s is blank', v_name_field)
                      when length(r.base_name) > 64 then format('%s is longer than 64 characters (%s)', v_name_field, length(r.base_name)) end,
                 case when r.sku_type not in ('string', 'number', 'null') then format('%s is not text', v_sku_field)
                      when length(r.sku) > 40 then format('%s is longer than 40 characters', v_sku_field) end,
                 case when r.pricing_type not in ('FIXED', 'VARIABLE') then format('unknown pricing type %s', left(r.pricing_type, 40)) end,
                 case when r.price_json is not null and jsonb_typeof(r.price_json) not in ('number', 'null')
                      then format('price is not a number: %s', left(r.price_json::text, 40))
                      when r.raw_price < 0 then format('negative price %s', r.raw_price)
                      when r.raw_price * (1 + greatest(r.added_rate, 0) / 100) >= 100000000 then format('price %s is too large (at most 99999999.99)', r.raw_price) end,
                 case when r.i ? 'category_id' and coalesce(jsonb_typeof(r.i -> 'category_id'), 'null') not in ('string', 'null')
                      then 'category_id is not text'
                      when r.cat_id is not null and v_unknown = 'reject'
                           and not exists (select 1 from _lv_cats c where c.id = r.cat_id)
                      then format('unknown category %s', left(r.cat_id, 64)) end,
                 case when coalesce(jsonb_typeof(r.i -> 'modifier_ids'), 'null') not in ('array', 'null')
                      then 'modifier_ids is not a list' end,
                 case when jsonb_typeof(r.i -> 'option1_name') = 'string' and r.n_variants > 0
                           and coalesce(jsonb_typeof(r.v -> 'option1_value'), 'null') = 'null' then 'option1_value is missing' end,
                 case when jsonb_typeof(r.i -> 'option2_name') = 'string' and r.n_variants > 0
                           and coalesce(jsonb_typeof(r.v -> 'option2_value'), 'null') = 'null' then 'option2_value is missing' end,
                 case when jsonb_typeof(r.i -> 'option3_name') = 'string' and r.n_variants > 0
                           and coalesce(jsonb_typeof(r.v -> 'option3_value'), 'null') = 'null' then 'option3_value is missing' end
               ]::text[], null) as errors
          from r;
        get diagnostics v_n = row_count;
        v_rows := v_rows + v_n;
        v_done := v_done + (select count(*) from _lv_items it where it.seq > v_after and it.seq <= v_upto);
        perform loyverse._import_plan_progress(p_run_id, 'items', v_done, v_items);
        v_after := v_upto;
    end loop;
    analyze _lv_rows (row_no, variant_id, sku, item_id);
    v_steps := 9 + (v_rows + v_chunk - 1) / v_chunk;

    -- Duplicate SKUs inside Loyverse: the first variant keeps it, the others are rejected.
    update _lv_rows x
       set errors = x.errors || format('SKU %s is also used by variant %s in Loyverse', x.sku, d.first_variant)
      from (select r.row_no,
                   first_value(r.variant_id) over w as first_variant,
                   row_number() over w as n
              from _lv_rows r
             where r.sku is not null and cardinality(r.errors) = 0 and not r.deleted
            window w as (partition by r.sku order by r.row_no)) d
     where d.row_no = x.row_no and d.n > 1;
    perform loyverse._import_plan_progress(p_run_id, 'steps', 1, v_steps);

    -- The plan is built in a temp table (no WAL, no shared indexes to maintain while the
    -- passes below refine it) and inserted into loyverse_import_plan once, at the end.
    create temp table _lv_plan (like loyverse.loyverse_import_plan including defaults) on commit drop;
    -- One INSERT: values, conflict detection (in order: an existing mapping, the same SKU, the
    -- same name) and the decision, so the plan needs no UPDATE pass for them.
    -- Name matches ignore products already linked to another Loyverse variant (a menu may
    -- repeat a name legitimately); the oldest product of that name wins.
    insert into _lv_plan
        (run_id, row_no, item_id, variant_id, item_seq, batch_no, item_name, name, sku, price, loyverse_price,
         price_factor, stock_quantity, is_active, option1_value, option2_value, option3_value, category_ref, category_fallback, modifier_ids,
         extra, errors, needs_attention, attention_reason, match_rule, matched_product_id, matched_name, matched_variant_id,
         decision, decision_reason, product_id)
    select p_run_id, r.row_no, r.item_id, r.variant_id, r.item_seq,
           (dense_rank() over (order by r.item_seq) - 1)::integer / v_batch,
           r.base_name, r.name, r.sku,
           case when cardinality(r.errors) = 0 then round(coalesce(r.adj_price, 0), v_dp) end,
           r.raw_price,
           r.price_factor,
           (select s.qty from _lv_stock s where s.variant_id = r.variant_id),
           coalesce(r.available_for_sale, true),
           r.option1_value, r.option2_value, r.option3_value,
           case when r.cat_known then r.cat_id when r.cat_id is not null then '(fallback)' end,
           r.cat_id is not null and not r.cat_known,
           r.modifier_ids,
           r.extra,
           r.errors,
           r.pricing_type = 'VARIABLE',
           case when r.pricing_type = 'VARIABLE' then 'VARIABLE price in Loyverse: imported as 0' end,
           k.match_rule, k.matched_product_id, pn.name, k.matched_variant_id,
           case when cardinality(r.errors) > 0 then 'fail' when r.deleted then 'skip' else d.decision end,
           case when cardinality(r.errors) > 0 then array_to_string(r.errors, '; ') when r.deleted then 'deleted in Loyverse'
                else d.reason end,
           -- targets: an update writes the matched product, a create or duplicate a new id chosen now
           case when cardinality(r.errors) > 0 or r.deleted then null
                when d.decision = 'update' then k.matched_product_id
                when d.decision in ('create', 'duplicate') then gen_random_uuid() end
      from _lv_rows r
      left join loyverse.loyverse_item_mappings m
             on cardinality(r.errors) = 0 and not r.deleted
            and m.restaurant_id = v_run.restaurant_id and m.loyverse_variant_id = r.variant_id
      left join public.products ps
             on m.id is null and cardinality(r.errors) = 0 and not r.deleted
            and ps.restaurant_id = v_run.restaurant_id and ps.sku = r.sku
      left join loyverse.loyverse_item_mappings ms on ms.product_id = ps.id
      left join (select distinct on (loyverse.normalize_name(pr.name)) loyverse.normalize_name(pr.name) as k, pr.id
                   from public.products pr
                  where pr.restaurant_id = v_run.restaurant_id
                    and not exists (select 1 from loyverse.loyverse_item_mappings m2 where m2.product_id = pr.id)
                  order by loyverse.normalize_name(pr.name), pr.created_at, pr.id) c
             on m.id is null and ps.id is null and cardinality(r.errors) = 0 and not r.deleted
            and c.k = loyverse.normalize_name(r.name)
      cross join lateral (
             select case when m.id is not null then 'mapping' when ps.id is not null then 'sku'
                         when c.id is not null then 'name' end as match_rule,
                    coalesce(m.product_id, ps.id, c.id) as matched_product_id,
                    case when m.id is not null then m.loyverse_variant_id
                         when ps.id is not null then ms.loyverse_variant_id end as matched_variant_id,
                    coalesce(v_decisions ->> r.variant_id, v_decisions ->> r.item_id) as chosen) k
      left join public.products pn on pn.id = k.matched_product_id
      -- Resolution: a decision from the decisions file (by variant id, else item id) wins.
      cross join lateral (
             select case
                      when k.match_rule is null then
                        case when k.chosen = 'skip' then 'skip' else 'create' end
                      when k.chosen in ('skip', 'update', 'duplicate') then k.chosen
                      when k.match_rule = 'mapping' then 'update'
                      when v_conflict = 'manual' then null
                      else v_conflict
                    end as decision,
                    case
                      when k.chosen in ('skip', 'update', 'duplicate') then 'decisions file'
                      when k.match_rule = 'mapping' then 're-sync of a mapped product'
                      when k.match_rule is not null and v_conflict <> 'manual' then format('--conflict %s', v_conflict)
                      when k.match_rule is null then 'new'
                    end as reason) d;
    create index on _lv_plan (row_no);
    create index on _lv_plan (variant_id);
    analyze _lv_plan (row_no, variant_id, item_id, decision, product_id, category_ref, matched_product_id);
    perform loyverse._import_plan_progress(p_run_id, 'steps', 2, v_steps);

    -- Updates that cannot be: a product linked to another variant, or two variants for one product.
    update _lv_plan p
       set decision = 'fail', product_id = null,
           decision_reason = format('product "%s" is already linked to Loyverse variant %s', p.matched_name, p.matched_variant_id),
           errors = p.errors || format('product "%s" is already linked to Loyverse variant %s', p.matched_name, p.matched_variant_id)
     where p.run_id = p_run_id and p.decision = 'update' and p.match_rule <> 'mapping'
       and p.matched_variant_id is not null and p.matched_variant_id <> p.variant_id;

    update _lv_plan p
       set decision = 'fail', product_id = null,
           decision_reason = format('variant %s already updates product "%s"', d.first_variant, p.matched_name),
           errors = p.errors || format('variant %s already updates product "%s"', d.first_variant, p.matched_name)
      from (select p2.row_no, row_number() over w as n, first_value(p2.variant_id) over w as first_variant
              from _lv_plan p2
             where p2.run_id = p_run_id and p2.decision = 'update'
            window w as (partition by p2.matched_product_id order by p2.match_rule = 'mapping' desc, p2.row_no)) d
     where p.run_id = p_run_id and p.row_no = d.row_no and d.n > 1;
    perform loyverse._import_plan_progress(p_run_id, 'steps', 3, v_steps);

    -- Duplicates: " (Loyverse)", " (Loyverse 2)", ... after the highest suffix in use, and a
    -- SKU with the same suffix ("-LV", "-LV2", ...).
    update _lv_plan p
       set name = d.base || case when d.n = 1 then ' (Loyverse)' else format(' (Loyverse %s)', d.n) end,
           sku = case when p.sku is null then null
                      when d.n = 1 then p.sku || '-LV' else p.sku || '-LV' || d.n end
      from (select p2.row_no, p2.name as base,
                   coalesce((select max(coalesce(nullif(substring(pr.name from ' \(Loyverse ?([0-9]*)\)$'), ''), '1')::integer)
                               from public.products pr
                              where pr.restaurant_id = v_run.restaurant_id
                                and (loyverse.normalize_name(pr.name) like loyverse.normalize_name(p2.name) || ' (loyverse%)'
                                     or (p2.sku is not null and pr.sku like p2.sku || '-LV%'))), 0)
                   + row_number() over (partition by loyverse.normalize_name(p2.name) order by p2.row_no) as n
              from _lv_plan p2
             where p2.run_id = p_run_id and p2.decision = 'duplicate') d
     where p.run_id = p_run_id and p.row_no = d.row_no;
    perform loyverse._import_plan_progress(p_run_id, 'steps', 4, v_steps);

    -- A SKU that another product of the restaurant already has cannot be written.
    update _lv_plan p
       set decision = 'fail',
           decision_reason = format('SKU %s is already used by product "%s"', p.sku, pr.name),
           errors = p.errors || format('SKU %s is already used by product "%s"', p.sku, pr.name)
      from public.products pr
     where p.run_id = p_run_id and p.decision in ('create', 'update', 'duplicate') and p.sku is not null
       and pr.restaurant_id = v_run.restaurant_id and pr.sku = p.sku and pr.id <> p.product_id;
    perform loyverse._import_plan_progress(p_run_id, 'steps', 5, v_steps);

    -- Categories: mapped, else the same name, else new; the fallback for unknown ones.
    insert into loyverse.loyverse_import_plan_objects (run_id, kind, loyverse_id, name, local_id, match_rule, decision)
    select p_run_id, 'category', c.id, c.name,
           coalesce(om.local_id, byname.id, gen_random_uuid()),
           case when om.local_id is not null then 'mapping' when byname.id is not null then 'name' end,
           case when coalesce(om.local_id, byname.id) is not null
                     and exists (select 1 from public.categories x where x.id = coalesce(om.local_id, byname.id))
                then 'update' else 'create' end
      from (select c.id, c.name from _lv_cats c
             where not v_selecting
                or exists (select 1 from _lv_plan p
                            where p.run_id = p_run_id and p.category_ref = c.id
                              and p.decision in ('create', 'update', 'duplicate'))
            union all
            select '(fallback)', 'Uncategorised'
             where exists (select 1 from _lv_plan p
                            where p.run_id = p_run_id and p.category_ref = '(fallback)'
                              and p.decision in ('create', 'update', 'duplicate'))) c
      left join loyverse.loyverse_object_mappings om
             on om.restaurant_id = v_run.restaurant_id and om.kind = 'category' and om.loyverse_id = c.id
      left join lateral (select x.id from public.categories x
                          where x.restaurant_id = v_run.restaurant_id
                            and loyverse.normalize_name(x.name) = loyverse.normalize_name(c.name)
                          order by x.created_at, x.id limit 1) byname on om.local_id is null;
    perform loyverse._import_plan_progress(p_run_id, 'steps', 6, v_steps);

    -- Product groups: one per written item that has options or several variants.
    insert into loyverse.loyverse_import_plan_objects
        (run_id, kind, loyverse_id, name, option1_name, option2_name, option3_name, description, local_id, match_rule, decision)
    select p_run_id, 'item', g.item_id, g.item_name, g.o1, g.o2, g.o3, g.descr,
           coalesce(om.local_id, g.existing_group, gen_random_uuid()),
           case when om.local_id is not null or g.existing_group is not null then 'mapping' end,
           case when exists (select 1 from public.product_groups x where x.id = coalesce(om.local_id, g.existing_group))
                then 'update' else 'create' end
      from (select p.item_id, min(p.item_name) as item_name,
                   min(case when jsonb_typeof(it.i -> 'option1_name') = 'string' then it.i ->> 'option1_name' end) as o1,
                   min(case when jsonb_typeof(it.i -> 'option2_name') = 'string' then it.i ->> 'option2_name' end) as o2,
                   min(case when jsonb_typeof(it.i -> 'option3_name') = 'string' then it.i ->> 'option3_name' end) as o3,
                   min(case when jsonb_typeof(it.i -> 'description') = 'string' then it.i ->> 'description' end) as descr,
                   (array_agg(pr.product_group_id) filter (where pr.product_group_id is not null))[1] as existing_group
              from _lv_plan p
              join _lv_items it on it.item_id = p.item_id
              left join public.products pr on pr.id = p.product_id and p.match_rule = 'mapping'
             where p.run_id = p_run_id and p.decision in ('create', 'update', 'duplicate')
               and (case when jsonb_typeof(it.variants) = 'array' then jsonb_array_length(it.variants) else 0 end > 1
                    or jsonb_typeof(it.i -> 'option1_name') = 'string')
             group by p.item_id) g
      left join loyverse.loyverse_object_mappings om
             on om.restaurant_id = v_run.restaurant_id and om.kind = 'item' and om.loyverse_id = g.item_id;
    perform loyverse._import_plan_progress(p_run_id, 'steps', 7, v_steps);

    -- (group_id is set from these objects by the final insert into loyverse_import_plan)

    -- Modifier groups linked from written items (available in the store), and their options.
    insert into loyverse.loyverse_import_plan_objects (run_id, kind, loyverse_id, name, position, local_id, match_rule, decision)
    select p_run_id, 'modifier', m.id, m.name,
           coalesce(loyverse.jsonb_to_int(m.m -> 'position'), 0),
           coalesce(om.local_id, byname.id, gen_random_uuid()),
           case when om.local_id is not null then 'mapping' when byname.id is not null then 'name' end,
           case when exists (select 1 from public.modifier_groups x where x.id = coalesce(om.local_id, byname.id))
                then 'update' else 'create' end
      from _lv_mods m
      left join loyverse.loyverse_object_mappings om
             on om.restaurant_id = v_run.restaurant_id and om.kind = 'modifier' and om.loyverse_id = m.id
      left join lateral (select x.id from public.modifier_groups x
                          where x.restaurant_id = v_run.restaurant_id
                            and loyverse.normalize_name(x.name) = loyverse.normalize_name(m.name)
                          order by x.created_at, x.id limit 1) byname on om.local_id is null
     where exists (select 1 from _lv_plan p
                    where p.run_id = p_run_id and p.decision in ('create', 'update', 'duplicate')
                      and m.id = any (p.modifier_ids));

    insert into loyverse.loyverse_import_plan_objects
        (run_id, kind, loyverse_id, parent_loyverse_id, name, price, position, local_id, match_rule, decision)
    select p_run_id, 'modifier_option', o.opt ->> 'id', g.loyverse_id, btrim(o.opt ->> 'name'),
           round(coalesce(case when jsonb_typeof(o.opt -> 'price') = 'number' then (o.opt ->> 'price')::numeric end, 0), v_dp),
           coalesce(loyverse.jsonb_to_int(o.opt -> 'position'), o.ord::integer - 1),
           coalesce(om.local_id, byname.id, gen_random_uuid()),
           case when om.local_id is not null then 'mapping' when byname.id is not null then 'name' end,
           case when exists (select 1 from public.modifier_options x where x.id = coalesce(om.local_id, byname.id))
                then 'update' else 'create' end
      from loyverse.loyverse_import_plan_objects g
      join _lv_mods m on m.id = g.loyverse_id
      cross join lateral jsonb_array_elements(case when jsonb_typeof(m.m -> 'modifier_options') = 'array'
                                                   then m.m -> 'modifier_options' else '[]'::jsonb end) with ordinality o(opt, ord)
      left join loyverse.loyverse_object_mappings om
             on om.restaurant_id = v_run.restaurant_id and om.kind = 'modifier_option' and om.loyverse_id = o.opt ->> 'id'
      left join lateral (select x.id from public.modifier_options x
                          where x.modifier_group_id = g.local_id
                            and loyverse.normalize_name(x.name) = loyverse.normalize_name(o.opt ->> 'name')
                          order by x.created_at, x.id limit 1) byname on om.local_id is null
     where g.run_id = p_run_id and g.kind = 'modifier'
       and jsonb_typeof(o.opt -> 'id') = 'string' and jsonb_typeof(o.opt -> 'name') = 'string'
       and btrim(o.opt ->> 'name') <> ''
       and coalesce(jsonb_typeof(o.opt -> 'deleted_at'), 'null') = 'null'
       and coalesce(jsonb_typeof(o.opt -> 'price'), 'null') in ('number', 'null')
       and coalesce(case when jsonb_typeof(o.opt -> 'price') = 'number' then (o.opt ->> 'price')::numeric end, 0) between 0 and 9999999999
    on conflict do nothing;
    perform loyverse._import_plan_progress(p_run_id, 'steps', 8, v_steps);

    -- The report: errors, warnings and what cannot carry over faithfully.
    insert into loyverse.loyverse_import_issues (run_id, severity, code, item_id, variant_id, name, message)
    select p_run_id, 'error', 'invalid', p.item_id, p.variant_id, coalesce(p.name, p.item_name), e
      from _lv_plan p cross join lateral unnest(p.errors) e
     where p.run_id = p_run_id
    union all
    select p_run_id, 'fidelity', 'deleted', p.item_id, p.variant_id, p.name, 'deleted in Loyverse: not imported'
      from _lv_plan p
     where p.run_id = p_run_id and p.decision = 'skip' and p.decision_reason = 'deleted in Loyverse'
    union all
    select p_run_id, 'fidelity', 'variable_price', p.item_id, p.variant_id, p.name,
           'VARIABLE price (entered at the counter in Loyverse): imported as 0 and flagged'
      from _lv_plan p
     where p.run_id = p_run_id and p.needs_attention and p.decision in ('create', 'update', 'duplicate')
    union all
    select p_run_id, 'fidelity', 'price_rounded', r.item_id, r.variant_id, r.name,
           format('price %s rounded to %s decimal places', r.adj_price, v_dp)
      from _lv_rows r
     where cardinality(r.errors) = 0 and r.adj_price is not null and round(r.adj_price, v_dp) <> r.adj_price
    union all
    select p_run_id, 'fidelity', 'tax_adjusted', r.item_id, r.variant_id, r.name,
           case when v_incl_tax then format('Loyverse price %s excludes %s%% ADDED tax; imported tax-inclusive', r.raw_price, r.added_rate)
                else format('Loyverse price %s includes %s%% tax; imported without it', r.raw_price, r.included_rate) end
      from _lv_rows r
     where cardinality(r.errors) = 0 and r.raw_price is not null
       and ((v_incl_tax and r.added_rate > 0) or (not v_incl_tax and r.included_rate > 0))
    union all
    select p_run_id, 'fidelity', 'not_for_sale', r.item_id, r.variant_id, r.name,
           'not available for sale in the store: imported inactive'
      from _lv_rows r
     where cardinality(r.errors) = 0 and r.available_for_sale is false
    union all
    select p_run_id, 'warning', 'invalid_stock', r.item_id, r.variant_id, r.name,
           format('stock level %s is not a number in range: stock not imported', left(s.raw::text, 40))
      from _lv_rows r join _lv_stock s on s.variant_id = r.variant_id
     where cardinality(r.errors) = 0 and s.qty is null
    union all
    select p_run_id, 'warning', 'unknown_category', min(r.item_id), null, min(r.base_name),
           format('category %s is not in the category list: imported under "Uncategorised"', left(r.cat_id, 64))
      from _lv_rows r
     where cardinality(r.errors) = 0 and r.cat_id is not null and not r.cat_known
     group by r.item_id, r.cat_id
    union all
    select p_run_id, 'fidelity', 'composite', it.item_id, null, it.i ->> 'item_name',
           'composite item (made of other items): imported as a plain product'
      from _lv_items it
     where it.item_id is not null and loyverse.jsonb_to_bool(it.i -> 'is_composite')
    union all
    select p_run_id, 'fidelity', 'sold_by_weight', it.item_id, null, it.i ->> 'item_name',
           'sold by weight in Loyverse: imported with its unit price'
      from _lv_items it
     where it.item_id is not null and loyverse.jsonb_to_bool(it.i -> 'sold_by_weight')
    union all
    select p_run_id, 'fidelity', 'several_taxes', it.item_id, null, it.i ->> 'item_name',
           format('%s taxes in Loyverse; our catalogue keeps none', jsonb_array_length(it.i -> 'tax_ids'))
      from _lv_items it
     where it.item_id is not null
       and case when jsonb_typeof(it.i -> 'tax_ids') = 'array' then jsonb_array_length(it.i -> 'tax_ids') > 1 else false end
    union all
    select p_run_id, case when m.id is null then 'warning' else 'fidelity' end,
           case when m.id is null then 'unknown_modifier' else 'modifier_not_in_store' end,
           it.item_id, null, it.i ->> 'item_name',
           case when m.id is null then format('modifier %s does not exist: link dropped', left(x.mid, 64))
                else format('modifier "%s" is not available in the store: not linked', m.name) end
      from _lv_items it
      cross join lateral jsonb_array_elements_text(case when jsonb_typeof(it.i -> 'modifier_ids') = 'array'
                                                        then it.i -> 'modifier_ids' else '[]'::jsonb end) x(mid)
      left join _lv_mods m on m.id = x.mid
     where it.item_id is not null and (m.id is null or not m.in_store)
    union all
    select p_run_id, 'warning', 'unknown_tax', it.item_id, null, it.i ->> 'item_name',
           format('tax %s is not in the tax list (or not in this store, or its rate is not 0..1000): ignored', left(x.tid, 64))
      from _lv_items it
      cross join lateral jsonb_array_elements_text(case when jsonb_typeof(it.i -> 'tax_ids') = 'array'
                                                        then it.i -> 'tax_ids' else '[]'::jsonb end) x(tid)
     where it.item_id is not null and not exists (select 1 from _lv_taxes t where t.id = x.tid);
    perform loyverse._import_plan_progress(p_run_id, 'steps', 9, v_steps);

    -- The product group of written rows, and (atomic runs: plan and writes commit together) the
    -- outcome the write will have, so import_apply_batch needs no UPDATE of the plan for it
    -- ('unchanged' until an update is seen to change something).
    -- (in chunks of v_chunk rows, each followed by a progress notice)
    v_after := 0;
    v_n := 9;
    while v_after < v_rows loop
        insert into loyverse.loyverse_import_plan
            (run_id, row_no, item_id, variant_id, item_seq, batch_no, item_name, name, sku, price, loyverse_price,
             price_factor, stock_quantity, is_active, option1_value, option2_value, option3_value, category_ref,
             category_fallback, modifier_ids, extra, errors, needs_attention, attention_reason, match_rule,
             matched_product_id, matched_name, matched_variant_id, decision, decision_reason, product_id,
             group_id, outcome, done)
        select p.run_id, p.row_no, p.item_id, p.variant_id, p.item_seq, p.batch_no, p.item_name, p.name, p.sku, p.price,
               p.loyverse_price, p.price_factor, p.stock_quantity, p.is_active, p.option1_value, p.option2_value,
               p.option3_value, p.category_ref, p.category_fallback, p.modifier_ids, p.extra, p.errors,
               p.needs_attention, p.attention_reason, p.match_rule, p.matched_product_id, p.matched_name,
               p.matched_variant_id, p.decision, p.decision_reason, p.product_id,
               case when p.decision in ('create', 'update', 'duplicate') then o.local_id end,
               case when v_atomic then
                    case p.decision when 'create' then 'created' when 'duplicate' then 'duplicated'
                                    when 'skip' then 'skipped' when 'fail' then 'failed'
                                    when 'update' then 'unchanged' end end,
               v_atomic and p.decision is not null
          from _lv_plan p
          left join loyverse.loyverse_import_plan_objects o
                 on o.run_id = p_run_id and o.kind = 'item' and o.loyverse_id = p.item_id
         where p.row_no > v_after and p.row_no <= v_after + v_chunk;
        v_after := v_after + v_chunk;
        v_n := v_n + 1;
        perform loyverse._import_plan_progress(p_run_id, 'steps', v_n, v_steps);
    end loop;

    -- The run row's progress (items_total) is left to the caller: during an atomic run it is
    -- written from another connection, and a lock taken here would block that.
    return loyverse.import_plan_summary(p_run_id);
end;
$$;

comment on function loyverse.import_plan(bigint) is
    'Plan an import run from its snapshot and options (validation, pricing, conflicts, decisions, '
    'fidelity report); writes only the plan tables. Returns import_plan_summary().';

-- ---- sql/0615_function_import_plan_summary.sql ----
-- What an import run's plan would do: counts by decision, conflicts by rule, objects, issues.
create function loyverse.import_plan_summary(p_run_id bigint)
returns jsonb
language sql
stable
set search_path = ''
as $$
    select jsonb_build_object(
        'run_id', p_run_id,
        'variants', count(*),
        'items', count(distinct p.item_seq),
        'create', count(*) filter (where p.decision = 'create'),
        'update', count(*) filter (where p.decision = 'update'),
        'skip', count(*) filter (where p.decision = 'skip'),
        'duplicate', count(*) filter (where p.decision = 'duplicate'),
        'fail', count(*) filter (where p.decision = 'fail'),
        'undecided', count(*) filter (where p.decision is null),
        'matched', jsonb_build_object(
            'mapping', count(*) filter (where p.match_rule = 'mapping'),
            'sku', count(*) filter (where p.match_rule = 'sku'),
            'name', count(*) filter (where p.match_rule = 'name')),
        'objects', (select coalesce(jsonb_object_agg(x.kind, x.counts), '{}')
                      from (select o.kind, jsonb_build_object('create', count(*) filter (where o.decision = 'create'),
                                                              'update', count(*) filter (where o.decision = 'update')) as counts
                              from loyverse.loyverse_import_plan_objects o
                             where o.run_id = p_run_id group by o.kind) x),
        'issues', (select coalesce(jsonb_object_agg(x.severity, x.n), '{}')
                     from (select i.severity, count(*) as n from loyverse.loyverse_import_issues i
                            where i.run_id = p_run_id group by i.severity) x))
      from loyverse.loyverse_import_plan p
     where p.run_id = p_run_id;
$$;

comment on function loyverse.import_plan_summary(bigint) is
    'Counts of an import run''s plan: variants by decision (create/update/skip/duplicate/fail/undecided), '
    'matches by rule, categories/groups/modifiers to create or update, issues by severity.';

-- ---- sql/0620_function_import_journal_before.sql ----
-- Records before-images of rows an import is about to change or delete (the first image
-- per run wins, so a resumed batch keeps the state from before the run).
create function loyverse.import_journal_before(p_run_id bigint, p_table text, p_keys text[], p_action text default 'UPDATE')
returns integer
language plpgsql
set search_path = ''
set jit = off
as $$
declare
    v_rel text;
    v_key text;
    v_n integer;
begin
    if p_keys is null or cardinality(p_keys) = 0 then
        return 0;
    end if;
    v_rel := case when p_table in ('loyverse_item_mappings') then 'loyverse.' else 'public.' end || quote_ident(p_table);
    v_key := case p_table
               when 'product_modifier_groups' then 't.product_id::text || '':'' || t.modifier_group_id::text'
               else 't.id::text' end;
    execute format(
        'insert into loyverse.loyverse_import_journal (run_id, table_name, row_key, action, before_image)
         select $1, %L, %s, %L, to_jsonb(t)
           from %s t join unnest($2::text[]) k(key) on %s = k.key
         on conflict (run_id, table_name, row_key) do nothing', p_table, v_key, p_action, v_rel, v_key)
        using p_run_id, p_keys;
    get diagnostics v_n = row_count;
    return v_n;
end;
$$;

comment on function loyverse.import_journal_before(bigint, text, text[], text) is
    'Journal the current rows (keys p_keys of table p_table) as before-images of an import run.';

-- ---- sql/0625_function_import_journal_refresh.sql ----
-- Brings the after-images of an import run's journal up to date (undo compares them with
-- the rows later, to see what changed after the run). Rows the run created carry their
-- after-image from the INSERT itself, so only journal rows without one, and the (few)
-- UPDATE rows, are refreshed: each through its table's primary key.
create function loyverse.import_journal_refresh(p_run_id bigint)
returns void
language plpgsql
set search_path = ''
set jit = off
set enable_nestloop = on
as $$
declare
    v_table text;
    v_keys text[];
begin
    for v_table, v_keys in
        select j.table_name, array_agg(j.row_key)
          from loyverse.loyverse_import_journal j
         where j.run_id = p_run_id and j.action <> 'DELETE'
           and (j.after_image is null or j.action = 'UPDATE')
         group by j.table_name
    loop
        execute format(
            'update loyverse.loyverse_import_journal j set after_image = to_jsonb(t)
               from unnest($2::text[]) k(key), %s t
              where j.run_id = $1 and j.table_name = %L and j.row_key = k.key and %s
                and j.after_image is distinct from to_jsonb(t)',
            case when v_table = 'loyverse_item_mappings' then 'loyverse.' else 'public.' end || quote_ident(v_table),
            v_table,
            case v_table
              when 'product_modifier_groups'
                then '(t.product_id, t.modifier_group_id) = (split_part(k.key, '':'', 1)::uuid, split_part(k.key, '':'', 2)::uuid)'
              when 'loyverse_item_mappings' then 't.id = k.key::bigint'
              else 't.id = k.key::uuid' end)
            using p_run_id, v_keys;
    end loop;
end;
$$;

comment on function loyverse.import_journal_refresh(bigint) is
    'Set the after_image of an import run''s journal rows that have none, and of its UPDATE rows, '
    'to the row as it is now.';

-- ---- sql/0630_function_import_apply_objects.sql ----
-- Writes the objects around products for an import run: categories, product groups,
-- modifier groups and options (create, or update only what differs), with journal and
-- object mappings. A created row's after-image is journaled with it (import_finish then
-- refreshes only the after-images of updated rows). Idempotent: a resumed run calls it again harmlessly.
create function loyverse.import_apply_objects(p_run_id bigint)
returns jsonb
language plpgsql
set search_path = ''
set jit = off
set enable_nestloop = off
as $$
declare
    v_toast text := current_setting('default_toast_compression');
    v_rest uuid;
    v_ids text[];
    v_created integer := 0;
    v_updated integer := 0;
    v_n integer;
begin
    perform set_config('loyverse_sync.origin', 'loyverse', true);
    -- The journal's arrays of created rows are compressed with lz4 where the server has it
    -- (~2x faster than pglz here); the setting is put back before returning.
    if exists (select 1 from pg_catalog.pg_settings s
                where s.name = 'default_toast_compression' and 'lz4' = any (s.enumvals)) then
        perform set_config('default_toast_compression', 'lz4', true);
    end if;
    select r.restaurant_id into v_rest from loyverse.loyverse_import_runs r where r.id = p_run_id;

    -- Categories.
    with ins as (
        insert into public.categories (id, restaurant_id, name)
        select o.local_id, v_rest, o.name from loyverse.loyverse_import_plan_objects o
         where o.run_id = p_run_id and o.kind = 'category' and o.decision = 'create'
        on conflict (id) do nothing
        returning *)
    insert into loyverse.loyverse_import_journal (run_id, table_name, row_key, action, after_image)
    select p_run_id, 'categories', ins.id::text, 'INSERT', to_jsonb(ins) from ins
    on conflict do nothing;
    get diagnostics v_n = row_count; v_created := v_created + v_n;

    select array_agg(c.id::text) into v_ids
      from public.categories c join loyverse.loyverse_import_plan_objects o on o.local_id = c.id
     where o.run_id = p_run_id and o.kind = 'category' and c.name is distinct from o.name;
    perform loyverse.import_journal_before(p_run_id, 'categories', v_ids);
    update public.categories c set name = o.name, updated_at = now()
      from loyverse.loyverse_import_plan_objects o, unnest(v_ids) k(id)
     where o.run_id = p_run_id and o.kind = 'category' and o.local_id = c.id and c.id::text = k.id;
    get diagnostics v_n = row_count; v_updated := v_updated + v_n;

    -- Product groups (one per multi-variant item), in the item's category.
    drop table if exists pg_temp._lv_groups;
    create temp table _lv_groups on commit drop as
    select o.local_id as id, o.name, o.description, o.option1_name, o.option2_name, o.option3_name,
           ic.category_id, o.decision
      from loyverse.loyverse_import_plan_objects o
      left join (select distinct on (p.item_id) p.item_id, c.local_id as category_id
                   from loyverse.loyverse_import_plan p
                   join loyverse.loyverse_import_plan_objects c
                     on c.run_id = p.run_id and c.kind = 'category' and c.loyverse_id = p.category_ref
                  where p.run_id = p_run_id
                  order by p.item_id, p.row_no) ic on ic.item_id = o.loyverse_id
     where o.run_id = p_run_id and o.kind = 'item';

    with ins as (
        insert into public.product_groups (id, restaurant_id, category_id, name, description, option1_name, option2_name, option3_name)
        select g.id, v_rest, g.category_id, g.name, g.description, g.option1_name, g.option2_name, g.option3_name
          from _lv_groups g where g.decision = 'create'
        on conflict (id) do nothing
        returning *)
    , j as (
        -- set-based journal (as import_apply_batch does): one journal row per 5,000 new groups
        insert into loyverse.loyverse_import_journal (run_id, table_name, row_key, action, after_image)
        select p_run_id, 'product_groups', format('#%s.objects.%s', pg_current_xact_id(), c.chunk), 'INSERT',
               jsonb_agg(c.image)
          from (select to_jsonb(ins) as image, (row_number() over () - 1) / 5000 as chunk from ins) c
         group by c.chunk)
    select count(*) into v_n from ins;
    v_created := v_created + v_n;

    select array_agg(x.id::text) into v_ids
      from public.product_groups x join _lv_groups g on g.id = x.id
     where (x.name, x.description, x.option1_name, x.option2_name, x.option3_name, x.category_id)
           is distinct from (g.name, g.description, g.option1_name, g.option2_name, g.option3_name, coalesce(g.category_id, x.category_id));
    perform loyverse.import_journal_before(p_run_id, 'product_groups', v_ids);
    update public.product_groups x
       set name = g.name, description = g.description, option1_name = g.option1_name,
           option2_name = g.option2_name, option3_name = g.option3_name,
           category_id = coalesce(g.category_id, x.category_id), updated_at = now()
      from _lv_groups g, unnest(v_ids) k(id)
     where g.id = x.id and x.id::text = k.id;
    get diagnostics v_n = row_count; v_updated := v_updated + v_n;

    -- Modifier groups.
    with ins as (
        insert into public.modifier_groups (id, restaurant_id, name, position)
        select o.local_id, v_rest, o.name, coalesce(o.position, 0) from loyverse.loyverse_import_plan_objects o
         where o.run_id = p_run_id and o.kind = 'modifier' and o.decision = 'create'
        on conflict (id) do nothing
        returning *)
    insert into loyverse.loyverse_import_journal (run_id, table_name, row_key, action, after_image)
    select p_run_id, 'modifier_groups', ins.id::text, 'INSERT', to_jsonb(ins) from ins
    on conflict do nothing;
    get diagnostics v_n = row_count; v_created := v_created + v_n;

    select array_agg(x.id::text) into v_ids
      from public.modifier_groups x join loyverse.loyverse_import_plan_objects o on o.local_id = x.id
     where o.run_id = p_run_id and o.kind = 'modifier'
       and (x.name, x.position) is distinct from (o.name, coalesce(o.position, 0));
    perform loyverse.import_journal_before(p_run_id, 'modifier_groups', v_ids);
    update public.modifier_groups x set name = o.name, position = coalesce(o.position, 0), updated_at = now()
      from loyverse.loyverse_import_plan_objects o, unnest(v_ids) k(id)
     where o.run_id = p_run_id and o.kind = 'modifier' and o.local_id = x.id and x.id::text = k.id;
    get diagnostics v_n = row_count; v_updated := v_updated + v_n;

    -- Modifier options.
    with ins as (
        insert into public.modifier_options (id, modifier_group_id, name, price, position)
        select o.local_id, g.local_id, o.name, coalesce(o.price, 0), coalesce(o.position, 0)
          from loyverse.loyverse_import_plan_objects o
          join loyverse.loyverse_import_plan_objects g
            on g.run_id = o.run_id and g.kind = 'modifier' and g.loyverse_id = o.parent_loyverse_id
         where o.run_id = p_run_id and o.kind = 'modifier_option' and o.decision = 'create'
        on conflict (id) do nothing
        returning *)
    insert into loyverse.loyverse_import_journal (run_id, table_name, row_key, action, after_image)
    select p_run_id, 'modifier_options', ins.id::text, 'INSERT', to_jsonb(ins) from ins
    on conflict do nothing;
    get diagnostics v_n = row_count; v_created := v_created + v_n;

    select array_agg(x.id::text) into v_ids
      from public.modifier_options x
      join loyverse.loyverse_import_plan_objects o on o.local_id = x.id
      join loyverse.loyverse_import_plan_objects g
        on g.run_id = o.run_id and g.kind = 'modifier' and g.loyverse_id = o.parent_loyverse_id
     where o.run_id = p_run_id and o.kind = 'modifier_option'
       and (x.modifier_group_id, x.name, x.price, x.position)
           is distinct from (g.local_id, o.name, coalesce(o.price, 0), coalesce(o.position, 0));
    perform loyverse.import_journal_before(p_run_id, 'modifier_options', v_ids);
    update public.modifier_options x
       set modifier_group_id = g.local_id, name = o.name, price = coalesce(o.price, 0),
           position = coalesce(o.position, 0), updated_at = now()
      from loyverse.loyverse_import_plan_objects o
      join loyverse.loyverse_import_plan_objects g
        on g.run_id = o.run_id and g.kind = 'modifier' and g.loyverse_id = o.parent_loyverse_id,
           unnest(v_ids) k(id)
     where o.run_id = p_run_id and o.kind = 'modifier_option' and o.local_id = x.id and x.id::text = k.id;
    get diagnostics v_n = row_count; v_updated := v_updated + v_n;

    -- Remember where each object came from (only new links are written).
    insert into loyverse.loyverse_object_mappings (restaurant_id, kind, loyverse_id, local_id, import_run_id)
    select v_rest, o.kind, o.loyverse_id, o.local_id, p_run_id
      from loyverse.loyverse_import_plan_objects o
     where o.run_id = p_run_id
    on conflict (restaurant_id, kind, loyverse_id) do nothing;

    perform set_config('default_toast_compression', v_toast, true);
    return jsonb_build_object('created', v_created, 'updated', v_updated);
end;
$$;

comment on function loyverse.import_apply_objects(bigint) is
    'Write an import run''s categories, product groups, modifier groups and options (journaled; '
    'unchanged rows are not touched). Returns {"created": n, "updated": n}.';

-- ---- sql/0635_function_import_apply_batch.sql ----
-- Writes one batch of an import run's plan: products (created, duplicated, or updated only
-- where something differs), their item mappings and modifier links, all journaled; marks
-- the batch's plan rows done. The writes are marked as coming from Loyverse (origin).
create function loyverse.import_apply_batch(p_run_id bigint, p_batch_no integer)
returns jsonb
language plpgsql
set search_path = ''
set jit = off
set enable_nestloop = off
as $$
declare
    v_toast text := current_setting('default_toast_compression');
    v_run loyverse.loyverse_import_runs;
    v_store text;
    v_extra_cols text := '';
    v_extra_vals text := '';
    v_ids text[];
    v_changed text[];
    v_n integer;
    v_result jsonb;
    v_atomic boolean;
begin
    perform set_config('loyverse_sync.origin', 'loyverse', true);
    -- The journal's arrays of created rows are compressed with lz4 where the server has it
    -- (~2x faster than pglz here); the setting is put back before returning.
    if exists (select 1 from pg_catalog.pg_settings s
                where s.name = 'default_toast_compression' and 'lz4' = any (s.enumvals)) then
        perform set_config('default_toast_compression', 'lz4', true);
    end if;
    select * into v_run from loyverse.loyverse_import_runs r where r.id = p_run_id;
    -- Atomic run, every row (p_batch_no null): import_plan wrote the plan rows done, with the
    -- outcome of the write, in this same transaction; only 'updated' is left to set here.
    v_atomic := p_batch_no is null and not v_run.dry_run
                and jsonb_typeof(v_run.options -> 'batch_size') is distinct from 'number';
    select l.store_id into v_store from loyverse.loyverse_restaurant_links l where l.restaurant_id = v_run.restaurant_id;

    -- Columns filled through --map (validated by import_field_map_problems before planning).
    select coalesce(string_agg(format(', %I', e.value), '' order by e.key), ''),
           coalesce(string_agg(format(', p.extra ->> %L', e.value), '' order by e.key), '')
      into v_extra_cols, v_extra_vals
      from jsonb_each_text(coalesce(v_run.options -> 'map', '{}')) e
     where e.value not in ('name', 'sku');

    drop table if exists pg_temp._lv_batch;
    create temp table _lv_batch on commit drop as
    select p.*, c.local_id as category_id,
           -- stock is written only by an import --with-inventory; otherwise it stays as it is
           case when coalesce(loyverse.jsonb_to_bool(v_run.options -> 'with_inventory'), false)
                then p.stock_quantity else pr.stock_quantity end as stock,
           -- the store's pricing type, for the mapping: import_plan flags a VARIABLE price (and
           -- only that) with this reason
           case when p.needs_attention and p.attention_reason like 'VARIABLE price%'
                then 'VARIABLE' else 'FIXED' end as pricing_type
      from loyverse.loyverse_import_plan p
      left join loyverse.loyverse_import_plan_objects c
        on c.run_id = p.run_id and c.kind = 'category' and c.loyverse_id = p.category_ref
      left join public.products pr on pr.id = p.product_id
     where p.run_id = p_run_id and (p_batch_no is null or p.batch_no = p_batch_no) and (v_atomic or not p.done);

    -- New products (create and duplicate): ids were chosen when planning. Rows this statement
    -- created (products, mappings, links) are journaled set-based: one journal row per
    -- 5,000 created rows (row_key '#<xid>.<batch>.<chunk>', action INSERT, after_image a JSON
    -- array of the rows' images), not one per row: each journal row costs an insert, two
    -- index entries and a foreign-key check (~0.25 s per 19k rows). import_undo expands them.
    -- The key is new (this transaction's id), so no ON CONFLICT is needed.
    execute format(
        'with ins as (
             insert into public.products (id, restaurant_id, category_id, product_group_id, name, sku, price,
                                          is_active, option1_value, option2_value, option3_value, stock_quantity%s)
             select p.product_id, $2, p.category_id, p.group_id, p.name, p.sku, p.price, p.is_active,
                    p.option1_value, p.option2_value, p.option3_value, p.stock%s
               from pg_temp._lv_batch p
              where p.decision in (''create'', ''duplicate'')
             %s
             returning *)
         insert into loyverse.loyverse_import_journal (run_id, table_name, row_key, action, after_image)
         select $1, ''products'', format(''#%%s.%%s.%%s'', pg_current_xact_id(), coalesce($3::text, ''all''), c.chunk),
                ''INSERT'', jsonb_agg(c.image)
           from (select to_jsonb(ins) as image, (row_number() over () - 1) / 5000 as chunk from ins) c
          group by c.chunk', v_extra_cols, v_extra_vals,
        -- an atomic run's ids are new (planned in this transaction): no speculative insert
        case when v_atomic then '' else 'on conflict (id) do nothing' end)
        using p_run_id, v_run.restaurant_id, p_batch_no;

    -- Updates: only rows where something differs (an unchanged menu writes nothing).
    execute format(
        'select array_agg(pr.id::text)
           from public.products pr join pg_temp._lv_batch p on p.product_id = pr.id
          where p.decision = ''update''
            and (pr.name, pr.sku, pr.price, pr.is_active, pr.category_id, pr.product_group_id,
                 pr.option1_value, pr.option2_value, pr.option3_value, pr.stock_quantity%s)
                is distinct from
                (p.name, p.sku, p.price, p.is_active, coalesce(p.category_id, pr.category_id),
                 coalesce(p.group_id, pr.product_group_id), p.option1_value, p.option2_value, p.option3_value,
                 p.stock%s)',
        replace(v_extra_cols, ', ', ', pr.'), v_extra_vals)
        into v_changed;
    perform loyverse.import_journal_before(p_run_id, 'products', v_changed);
    execute format(
        'update public.products pr
            set (name, sku, price, is_active, category_id, product_group_id, option1_value, option2_value,
                 option3_value, stock_quantity%s, updated_at)
              = (p.name, p.sku, p.price, p.is_active, coalesce(p.category_id, pr.category_id),
                 coalesce(p.group_id, pr.product_group_id), p.option1_value, p.option2_value,
                 p.option3_value, p.stock%s, now())
           from pg_temp._lv_batch p, unnest($1::text[]) k(id)
          where p.product_id = pr.id and p.decision = ''update'' and pr.id::text = k.id',
        v_extra_cols, v_extra_vals)
        using v_changed;

    -- Item mappings: insert new ones, update those that differ.
    select array_agg(m.id::text) into v_ids
      from loyverse.loyverse_item_mappings m
      join _lv_batch p on m.restaurant_id = v_run.restaurant_id and m.loyverse_variant_id = p.variant_id
     where p.decision in ('create', 'update', 'duplicate')
       and (m.product_id, m.account_id, m.loyverse_item_id, m.loyverse_store_id, m.last_synced_price,
            m.needs_attention, m.attention_reason, m.price_factor, m.loyverse_pricing_type)
           is distinct from
           (p.product_id, v_run.account_id, p.item_id, v_store, round(p.loyverse_price, 2),
            p.needs_attention, p.attention_reason, p.price_factor, p.pricing_type);
    perform loyverse.import_journal_before(p_run_id, 'loyverse_item_mappings', v_ids);
    with up as (
        insert into loyverse.loyverse_item_mappings as m
            (product_id, restaurant_id, account_id, loyverse_item_id, loyverse_variant_id, loyverse_store_id,
             last_synced_price, last_synced_at, sync_direction, needs_attention, attention_reason, import_run_id,
             price_factor, loyverse_pricing_type)
        select p.product_id, v_run.restaurant_id, v_run.account_id, p.item_id, p.variant_id, v_store,
               round(p.loyverse_price, 2), now(), 'FROM_LOYVERSE', p.needs_attention, p.attention_reason, p_run_id,
               p.price_factor, p.pricing_type
          from _lv_batch p
         where p.decision in ('create', 'update', 'duplicate')
        on conflict (restaurant_id, loyverse_variant_id) do update
           set product_id = excluded.product_id, account_id = excluded.account_id,
               loyverse_item_id = excluded.loyverse_item_id, loyverse_store_id = excluded.loyverse_store_id,
               last_synced_price = excluded.last_synced_price, last_synced_at = excluded.last_synced_at,
               sync_direction = 'FROM_LOYVERSE', needs_attention = excluded.needs_attention,
               attention_reason = excluded.attention_reason, import_run_id = excluded.import_run_id,
               price_factor = excluded.price_factor, loyverse_pricing_type = excluded.loyverse_pricing_type,
               updated_at = now()
         where (m.product_id, m.account_id, m.loyverse_item_id, m.loyverse_store_id, m.last_synced_price,
                m.needs_attention, m.attention_reason, m.price_factor, m.loyverse_pricing_type)
               is distinct from
               (excluded.product_id, excluded.account_id, excluded.loyverse_item_id, excluded.loyverse_store_id,
                excluded.last_synced_price, excluded.needs_attention, excluded.attention_reason, excluded.price_factor,
                excluded.loyverse_pricing_type)
        returning m.id, m.product_id, (m.xmax = 0) as inserted, to_jsonb(m) as image)
    , j as (
        insert into loyverse.loyverse_import_journal (run_id, table_name, row_key, action, after_image)
        select p_run_id, 'loyverse_item_mappings',
               format('#%s.%s.%s', pg_current_xact_id(), coalesce(p_batch_no::text, 'all'), c.chunk), 'INSERT',
               jsonb_agg(c.image)
          from (select up.image, (row_number() over () - 1) / 5000 as chunk from up where up.inserted) c
         group by c.chunk)
    select array_agg(up.product_id::text) || coalesce(v_changed, '{}') into v_changed from up;

    -- Modifier links (only new ones are written).
    with ins as (
        insert into public.product_modifier_groups (product_id, modifier_group_id)
        select distinct p.product_id, o.local_id
          from _lv_batch p
          cross join lateral unnest(p.modifier_ids) mid
          join loyverse.loyverse_import_plan_objects o
            on o.run_id = p.run_id and o.kind = 'modifier' and o.loyverse_id = mid
         where p.decision in ('create', 'update', 'duplicate')
        on conflict do nothing
        returning *)
    insert into loyverse.loyverse_import_journal (run_id, table_name, row_key, action, after_image)
    select p_run_id, 'product_modifier_groups',
           format('#%s.%s.%s', pg_current_xact_id(), coalesce(p_batch_no::text, 'all'), c.chunk), 'INSERT',
           jsonb_agg(c.image)
      from (select to_jsonb(ins) as image, (row_number() over () - 1) / 5000 as chunk from ins) c
     group by c.chunk;  -- new links only, journaled set-based as above

    -- Links to Loyverse modifiers the item no longer has (or that left the store) are removed
    -- (journaled, so undo puts them back); links to our own modifier groups stay.
    select array_agg(l.product_id::text || ':' || l.modifier_group_id::text) into v_ids
      from public.product_modifier_groups l
      join _lv_batch p on p.product_id = l.product_id
      join loyverse.loyverse_object_mappings om
        on om.restaurant_id = v_run.restaurant_id and om.kind = 'modifier' and om.local_id = l.modifier_group_id
     where p.decision in ('create', 'update', 'duplicate') and not (om.loyverse_id = any (p.modifier_ids));
    if v_ids is not null then
        perform loyverse.import_journal_before(p_run_id, 'product_modifier_groups', v_ids, 'DELETE');
        delete from public.product_modifier_groups l
         using unnest(v_ids) k(key)
         where l.product_id::text || ':' || l.modifier_group_id::text = k.key;
        select array_agg(distinct split_part(k.key, ':', 1)) || coalesce(v_changed, '{}') into v_changed
          from unnest(v_ids) k(key);
    end if;

    if not v_atomic then
      update loyverse.loyverse_import_plan p
       set done = true,
           outcome = case p.decision when 'create' then 'created' when 'duplicate' then 'duplicated'
                                     when 'skip' then 'skipped' when 'fail' then 'failed'
                                     when 'update' then 'unchanged' end
      from _lv_batch b
     where p.run_id = p_run_id and p.row_no = b.row_no and p.decision is not null;
    end if;
    update loyverse.loyverse_import_plan p
       set outcome = 'updated'
      from (select distinct unnest(v_changed) as id) c
     where p.run_id = p_run_id and p.decision = 'update' and p.outcome = 'unchanged'
       and p.product_id::text = c.id;

    select jsonb_build_object(
               'rows', count(*),
               'created', count(*) filter (where p.outcome = 'created'),
               'updated', count(*) filter (where p.outcome = 'updated'),
               'unchanged', count(*) filter (where p.outcome = 'unchanged'),
               'skipped', count(*) filter (where p.outcome = 'skipped'),
               'duplicated', count(*) filter (where p.outcome = 'duplicated'),
               'failed', count(*) filter (where p.outcome = 'failed'))
      into v_result
      from loyverse.loyverse_import_plan p join _lv_batch b on b.row_no = p.row_no
     where p.run_id = p_run_id;
    perform set_config('default_toast_compression', v_toast, true);
    return v_result;
end;
$$;

comment on function loyverse.import_apply_batch(bigint, integer) is
    'Write batch p_batch_no (null: every remaining row; in an atomic run, every row: import_plan wrote '
    'them done with their outcome) of an import run''s plan; returns counts by outcome.';

-- ---- sql/0640_function_import_finish.sql ----
-- Completes an import run: handles mapped products whose Loyverse variant is gone
-- (deactivate, delete or keep), brings the journal's after-images up to date, writes the
-- run's counts, status and report, and its one loyverse_sync_logs row.
create function loyverse.import_finish(p_run_id bigint)
returns jsonb
language plpgsql
set search_path = ''
set jit = off
set enable_nestloop = off
as $$
declare
    v_run loyverse.loyverse_import_runs;
    v_missing text;
    v_selecting boolean;
    v_ids text[];
    v_missing_n integer := 0;
    v_counts jsonb;
    v_status text;
    v_requests integer;
    v_errors jsonb;
    v_log_id bigint;
begin
    perform set_config('loyverse_sync.origin', 'loyverse', true);
    select * into v_run from loyverse.loyverse_import_runs r where r.id = p_run_id for update;
    v_missing := coalesce(v_run.options ->> 'missing', 'deactivate');
    v_selecting := jsonb_array_length(coalesce(v_run.options -> 'items', '[]')) > 0
                or jsonb_array_length(coalesce(v_run.options -> 'categories', '[]')) > 0
                or jsonb_array_length(coalesce(v_run.options -> 'exclude', '[]')) > 0;

    -- Mapped products whose variant is no longer live in Loyverse (only on a full import:
    -- a selection says nothing about the items it leaves out).
    if not v_selecting and v_missing in ('deactivate', 'delete') then
        drop table if exists pg_temp._lv_live;
        create temp table _lv_live on commit drop as
        select distinct v.v ->> 'variant_id' as variant_id, null::text as item_id
          from loyverse.loyverse_snapshot_objects o
          cross join lateral jsonb_array_elements(o.payload -> 'variants') v(v)
         where o.snapshot_id = v_run.snapshot_id and o.kind = 'item'
           and jsonb_typeof(o.payload -> 'variants') = 'array'
           and coalesce(jsonb_typeof(o.payload -> 'deleted_at'), 'null') = 'null'
           and coalesce(jsonb_typeof(v.v -> 'deleted_at'), 'null') = 'null'
        union all
        -- an item whose variants we cannot read keeps all its products (not a deletion)
        select null, o.loyverse_id
          from loyverse.loyverse_snapshot_objects o
         where o.snapshot_id = v_run.snapshot_id and o.kind = 'item'
           and jsonb_typeof(o.payload -> 'variants') is distinct from 'array'
           and coalesce(jsonb_typeof(o.payload -> 'deleted_at'), 'null') = 'null';

        select array_agg(m.product_id::text) into v_ids
          from loyverse.loyverse_item_mappings m
          join public.products pr on pr.id = m.product_id
         where m.restaurant_id = v_run.restaurant_id and m.account_id = v_run.account_id
           and not exists (select 1 from _lv_live l where l.variant_id = m.loyverse_variant_id)
           and not exists (select 1 from _lv_live l where l.item_id = m.loyverse_item_id)
           and (v_missing = 'delete' or pr.is_active);
        v_missing_n := coalesce(cardinality(v_ids), 0);

        if v_missing = 'deactivate' then
            perform loyverse.import_journal_before(p_run_id, 'products', v_ids);
            update public.products pr set is_active = false, updated_at = now()
              from unnest(v_ids) k(id) where pr.id::text = k.id;
        elsif v_missing_n > 0 then
            -- Keep what the cascade removes too, so undo can put it back.
            perform loyverse.import_journal_before(p_run_id, 'products', v_ids, 'DELETE');
            perform loyverse.import_journal_before(
                p_run_id, 'loyverse_item_mappings',
                (select array_agg(m.id::text) from loyverse.loyverse_item_mappings m
                   join unnest(v_ids) k(id) on m.product_id::text = k.id), 'DELETE');
            perform loyverse.import_journal_before(
                p_run_id, 'product_modifier_groups',
                (select array_agg(l.product_id::text || ':' || l.modifier_group_id::text)
                   from public.product_modifier_groups l join unnest(v_ids) k(id) on l.product_id::text = k.id),
                'DELETE');
            delete from public.products pr using unnest(v_ids) k(id) where pr.id::text = k.id;
        end if;
    end if;

    perform loyverse.import_journal_refresh(p_run_id);

    select jsonb_build_object(
               'created', count(*) filter (where p.outcome = 'created'),
               'updated', count(*) filter (where p.outcome = 'updated'),
               'unchanged', count(*) filter (where p.outcome = 'unchanged'),
               'skipped', count(*) filter (where p.outcome = 'skipped'),
               'duplicated', count(*) filter (where p.outcome = 'duplicated'),
               'failed', count(*) filter (where p.outcome = 'failed'),
               'total', count(*))
      into v_counts
      from loyverse.loyverse_import_plan p where p.run_id = p_run_id;
    v_counts := v_counts || jsonb_build_object('missing', v_missing_n, 'missing_action', v_missing);
    v_status := case when (v_counts ->> 'failed')::integer > 0 then 'PARTIAL' else 'SUCCESS' end;

    select coalesce(jsonb_agg(jsonb_build_object('item_id', i.item_id, 'variant_id', i.variant_id,
                                                 'name', i.name, 'error', i.message) order by i.id), '[]')
      into v_errors
      from (select * from loyverse.loyverse_import_issues i
             where i.run_id = p_run_id and i.severity = 'error' order by i.id limit 200) i;
    select s.requests_made into v_requests from loyverse.loyverse_snapshots s where s.id = v_run.snapshot_id;

    insert into loyverse.loyverse_sync_logs
        (restaurant_id, account_id, sync_type, status, items_total, items_succeeded, items_failed,
         items_skipped, requests_made, error_details, details, started_at, completed_at)
    values (v_run.restaurant_id, v_run.account_id, 'MENU_IMPORT', v_status, (v_counts ->> 'total')::integer,
            (v_counts ->> 'created')::integer + (v_counts ->> 'updated')::integer
              + (v_counts ->> 'unchanged')::integer + (v_counts ->> 'duplicated')::integer,
            (v_counts ->> 'failed')::integer, (v_counts ->> 'skipped')::integer, coalesce(v_requests, 0),
            v_errors, v_counts || jsonb_build_object('run_id', p_run_id, 'snapshot_id', v_run.snapshot_id),
            least(v_run.started_at, now()), now())
    returning id into v_log_id;

    update loyverse.loyverse_import_runs r
       set status = v_status,
           items_done = r.items_total,
           created_count = (v_counts ->> 'created')::integer,
           updated_count = (v_counts ->> 'updated')::integer,
           skipped_count = (v_counts ->> 'skipped')::integer,
           duplicated_count = (v_counts ->> 'duplicated')::integer,
           failed_count = (v_counts ->> 'failed')::integer,
           report = jsonb_build_object('counts', v_counts, 'summary', loyverse.import_plan_summary(p_run_id),
                                       'sync_log_id', v_log_id),
           error = null,
           updated_at = now(),
           completed_at = now()
     where r.id = p_run_id;

    return v_counts || jsonb_build_object('status', v_status, 'sync_log_id', v_log_id);
end;
$$;

comment on function loyverse.import_finish(bigint) is
    'Finish an import run: missing variants (options.missing: deactivate|delete|keep), journal '
    'after-images, counts, status (SUCCESS, or PARTIAL when variants failed) and the sync log row.';

-- ---- sql/0645_function_import_undo.sql ----
-- Undoes an import run from its journal: removes the rows it created (mappings included),
-- restores the before-image of every row it updated or deleted. Refuses, listing them, when
-- a row the run touched changed afterwards, unless p_force. Created rows journaled set-based
-- (row_key '#...': after_image is a JSON array of the rows' images) are expanded to one entry
-- per row first, so every row is checked and removed exactly as a per-row entry would be.
create function loyverse.import_undo(p_run_id bigint, p_force boolean default false)
returns jsonb
language plpgsql
set search_path = ''
set jit = off
as $$
declare
    v_run loyverse.loyverse_import_runs;
    v_table text;
    v_rel text;
    v_key text;
    v_changed jsonb;
    v_deleted integer := 0;
    v_restored integer := 0;
    v_reinserted integer := 0;
    v_n integer;
    v_tables constant text[] := array['categories', 'product_groups', 'products', 'modifier_groups',
                                      'modifier_options', 'product_modifier_groups', 'loyverse_item_mappings'];
begin
    select * into v_run from loyverse.loyverse_import_runs r where r.id = p_run_id for update;
    if not found then
        raise exception 'no import run %', p_run_id using errcode = 'no_data_found';
    end if;
    if v_run.status = 'UNDONE' then
        raise exception 'import run % was already undone at %', p_run_id, v_run.undone_at
            using errcode = 'invalid_parameter_value';
    end if;
    if v_run.dry_run then
        raise exception 'import run % was a dry run: there is nothing to undo', p_run_id
            using errcode = 'invalid_parameter_value';
    end if;
    perform set_config('loyverse_sync.origin', 'loyverse', true);

    -- The run's journal, one entry per row.
    drop table if exists pg_temp._lv_journal;
    create temp table _lv_journal on commit drop as
    select j.table_name, j.row_key, j.action, j.before_image, j.after_image
      from loyverse.loyverse_import_journal j
     where j.run_id = p_run_id and j.row_key not like '#%'
    union all
    select j.table_name,
           case when j.table_name = 'product_modifier_groups' then (e.image ->> 'product_id') || ':' || (e.image ->> 'modifier_group_id')
                else e.image ->> 'id' end,
           j.action, null, e.image
      from loyverse.loyverse_import_journal j
      cross join lateral jsonb_array_elements(j.after_image) e(image)
     where j.run_id = p_run_id and j.row_key like '#%';
    create index on _lv_journal (table_name, row_key);
    analyze _lv_journal;

    -- Rows changed (or deleted, or re-created) since the run.
    drop table if exists pg_temp._lv_changed;
    create temp table _lv_changed (table_name text, row_key text, reason text, current jsonb) on commit drop;
    foreach v_table in array v_tables loop
        v_rel := case when v_table = 'loyverse_item_mappings' then 'loyverse.' else 'public.' end || quote_ident(v_table);
        v_key := case when v_table = 'product_modifier_groups' then 't.product_id::text || '':'' || t.modifier_group_id::text'
                      else 't.id::text' end;
        execute format(
            'insert into pg_temp._lv_changed
             select j.table_name, j.row_key,
                    case when j.action = ''DELETE'' then ''re-created since the run''
                         when t is null then ''deleted since the run'' else ''changed since the run'' end,
                    to_jsonb(t)
               from pg_temp._lv_journal j
               left join %s t on %s = j.row_key
              where j.table_name = %L
                and case when j.action = ''DELETE'' then t is not null
                         else t is null or to_jsonb(t) is distinct from j.after_image end',
            v_rel, v_key, v_table)
            using p_run_id;
    end loop;
    -- A mapping or link removed together with its product is not a separate change.
    delete from _lv_changed c
     where c.reason = 'deleted since the run' and c.table_name in ('loyverse_item_mappings', 'product_modifier_groups')
       and exists (select 1 from _lv_changed p where p.table_name = 'products' and p.reason = 'deleted since the run');

    select coalesce(jsonb_agg(jsonb_build_object('table', c.table_name, 'key', c.row_key, 'reason', c.reason,
                                                 'name', c.current ->> 'name') order by c.table_name, c.row_key), '[]')
      into v_changed from _lv_changed c;
    if jsonb_array_length(v_changed) > 0 and not p_force then
        return jsonb_build_object('refused', true, 'changed', v_changed);
    end if;

    -- Remove what the run created, dependants first.
    foreach v_table in array array['product_modifier_groups', 'loyverse_item_mappings', 'products', 'modifier_options',
                                   'modifier_groups', 'product_groups', 'categories'] loop
        v_rel := case when v_table = 'loyverse_item_mappings' then 'loyverse.' else 'public.' end || quote_ident(v_table);
        v_key := case when v_table = 'product_modifier_groups' then 't.product_id::text || '':'' || t.modifier_group_id::text'
                      else 't.id::text' end;
        execute format(
            'delete from %s t using pg_temp._lv_journal j
              where j.table_name = %L and j.action = ''INSERT'' and %s = j.row_key',
            v_rel, v_table, v_key)
            using p_run_id;
        get diagnostics v_n = row_count; v_deleted := v_deleted + v_n;
    end loop;

    -- Put back what it deleted, then restore what it updated, parents first.
    foreach v_table in array v_tables loop
        v_rel := case when v_table = 'loyverse_item_mappings' then 'loyverse.' else 'public.' end || quote_ident(v_table);
        execute format(
            'insert into %s overriding system value
             select r.* from pg_temp._lv_journal j,
                    lateral jsonb_populate_record(null::%s, j.before_image) r
              where j.table_name = %L and j.action = ''DELETE''
             on conflict do nothing',
            v_rel, v_rel, v_table)
            using p_run_id;
        get diagnostics v_n = row_count; v_reinserted := v_reinserted + v_n;
    end loop;
    foreach v_table in array v_tables loop
        continue when v_table = 'product_modifier_groups';  -- a link has nothing to update
        v_rel := case when v_table = 'loyverse_item_mappings' then 'loyverse.' else 'public.' end || quote_ident(v_table);
        execute (
            select format(
                'update %s t set (%s) = (%s)
                   from pg_temp._lv_journal j,
                        lateral jsonb_populate_record(null::%s, j.before_image) r
                  where j.table_name = %L and j.action = ''UPDATE'' and t.id::text = j.row_key',
                v_rel,
                string_agg(quote_ident(a.attname), ', ' order by a.attnum),
                case when count(*) = 1 then 'row(' else '' end
                  || string_agg('r.' || quote_ident(a.attname), ', ' order by a.attnum)
                  || case when count(*) = 1 then ')' else '' end,
                v_rel, v_table)
              from pg_catalog.pg_attribute a
             where a.attrelid = v_rel::regclass and a.attnum > 0 and not a.attisdropped
               and a.attname <> 'id' and a.attidentity = '' and a.attgenerated = '')
            using p_run_id;
        get diagnostics v_n = row_count; v_restored := v_restored + v_n;
    end loop;

    delete from loyverse.loyverse_object_mappings om where om.import_run_id = p_run_id;

    update loyverse.loyverse_import_runs r
       set status = 'UNDONE', undone_at = now(), updated_at = now(),
           report = r.report || jsonb_build_object('undo', jsonb_build_object(
               'deleted', v_deleted, 'restored', v_restored, 'reinserted', v_reinserted,
               'forced_over', v_changed))
     where r.id = p_run_id;

    insert into loyverse.loyverse_sync_logs
        (restaurant_id, account_id, sync_type, status, items_total, items_succeeded, details, completed_at)
    values (v_run.restaurant_id, v_run.account_id, 'IMPORT_UNDO', 'SUCCESS', v_deleted + v_restored + v_reinserted,
            v_deleted + v_restored + v_reinserted,
            jsonb_build_object('run_id', p_run_id, 'deleted', v_deleted, 'restored', v_restored,
                               'reinserted', v_reinserted, 'forced_over', v_changed),
            now());

    return jsonb_build_object('refused', false, 'deleted', v_deleted, 'restored', v_restored,
                              'reinserted', v_reinserted, 'forced_over', v_changed);
end;
$$;

comment on function loyverse.import_undo(bigint, boolean) is
    'Undo an import run from its journal. Returns {"refused": true, "changed": [...]} without changing '
    'anything when rows it touched changed since (unless p_force), else the counts.';

-- ---- sql/0700_view_import_runs.sql ----
-- Import runs for DBAs and `import status`/`import list`: progress, counts, snapshot age. A role
-- of the main app sees only its restaurants' runs (loyverse.readable_restaurants).
create view loyverse.import_runs as
select r.id as run_id,
       r.restaurant_id,
       rs.name as restaurant_name,
       r.account_id,
       r.snapshot_id,
       s.fetched_at as snapshot_fetched_at,
       r.status,
       r.dry_run,
       r.items_done,
       r.items_total,
       case when r.items_total > 0 then round(100.0 * r.items_done / r.items_total, 1) end as percent_done,
       r.created_count,
       r.updated_count,
       r.skipped_count,
       r.duplicated_count,
       r.failed_count,
       r.options,
       r.error,
       r.started_at,
       r.completed_at,
       r.undone_at
  from loyverse.loyverse_import_runs r
  join public.restaurants rs on rs.id = r.restaurant_id
  left join loyverse.loyverse_snapshots s on s.id = r.snapshot_id
 -- a role of the main app reads only its restaurants' runs (loyverse.readable_restaurants: null = all)
 where (select loyverse.readable_restaurants(current_user)) is null or r.restaurant_id = any ((select loyverse.readable_restaurants(current_user))::uuid[]);

comment on view loyverse.import_runs is
    'Menu import runs with live progress (items_done of items_total, percent_done), outcome counts and snapshot age.';

-- ---- sql/0800_function_create_api_key.sql ----
-- SQL API: register an API key of the HTTP server by its SHA-256 (the caller makes the key:
-- the key itself never reaches the database). Writes an API_KEY row to loyverse_sync_logs.
create function loyverse.create_api_key(p_name text, p_key_hash bytea, p_restaurant_id uuid, p_admin boolean)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_id bigint;
begin
    if p_name is null or btrim(p_name) = '' then
        raise exception 'name: must not be blank' using errcode = 'invalid_parameter_value', column = 'name';
    end if;
    if coalesce(p_admin, false) = (p_restaurant_id is not null) then
        raise exception 'restaurant: give a restaurant or admin, not both or neither'
            using errcode = 'invalid_parameter_value', column = 'restaurant';
    end if;
    if p_restaurant_id is not null and not exists (select 1 from public.restaurants r where r.id = p_restaurant_id) then
        raise exception 'restaurant: no restaurant %', p_restaurant_id using errcode = 'no_data_found', column = 'restaurant';
    end if;
    if exists (select 1 from loyverse.loyverse_api_keys k where k.name = p_name) then
        raise exception 'name: an API key named % exists (names stay taken after revoking)', p_name
            using errcode = 'unique_violation', column = 'name';
    end if;
    insert into loyverse.loyverse_api_keys (name, key_hash, restaurant_id, is_admin)
    values (p_name, p_key_hash, p_restaurant_id, coalesce(p_admin, false))
    returning id into v_id;
    insert into loyverse.loyverse_sync_logs (restaurant_id, sync_type, status, details, completed_at)
    values (p_restaurant_id, 'API_KEY', 'SUCCESS',
            jsonb_build_object('action', 'create', 'key', p_name, 'admin', coalesce(p_admin, false)), now());
    return v_id;
end;
$$;
comment on function loyverse.create_api_key(text, bytea, uuid, boolean) is
    'Register an API key by its SHA-256 (32 bytes): a restaurant key (p_restaurant_id) or an admin key '
    '(p_admin). Returns its id. `loyverse-sync apikey create` makes the key and calls this.';

-- ---- sql/0801_function_revoke_api_key.sql ----
-- SQL API: revoke an API key by name; it stops working at once (console sessions too,
-- which look their key up on every request). Writes an API_KEY row to loyverse_sync_logs.
create function loyverse.revoke_api_key(p_name text)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_restaurant uuid;
begin
    if not exists (select 1 from loyverse.loyverse_api_keys k where k.name = p_name) then
        raise exception 'name: no API key named %', p_name using errcode = 'no_data_found', column = 'name';
    end if;
    update loyverse.loyverse_api_keys k
       set revoked_at = now(), revoked_by = loyverse.current_actor()
     where k.name = p_name and k.revoked_at is null
    returning k.restaurant_id into v_restaurant;
    if not found then
        return false;
    end if;
    insert into loyverse.loyverse_sync_logs (restaurant_id, sync_type, status, details, completed_at)
    values (v_restaurant, 'API_KEY', 'SUCCESS', jsonb_build_object('action', 'revoke', 'key', p_name), now());
    return true;
end;
$$;
comment on function loyverse.revoke_api_key(text) is
    'Revoke an API key by name (it stops working at once). False when it was revoked already.';

-- ---- sql/0802_function_api_key_lookup.sql ----
-- The HTTP server's key check: the live key with this SHA-256.
-- last_used_at is written at most once a minute per key: a lookup per request stays a read.
create function loyverse.api_key_lookup(p_key_hash bytea)
returns table (key_id bigint, name text, restaurant_id uuid, is_admin boolean)
language plpgsql
security definer
set search_path = ''
as $$
begin
    update loyverse.loyverse_api_keys k set last_used_at = now()
     where k.key_hash = p_key_hash and k.revoked_at is null
       and (k.last_used_at is null or k.last_used_at < now() - interval '1 minute');
    return query
        select k.id, k.name, k.restaurant_id, k.is_admin
          from loyverse.loyverse_api_keys k
         where k.key_hash = p_key_hash and k.revoked_at is null;
end;
$$;
comment on function loyverse.api_key_lookup(bytea) is
    'The live (not revoked) API key with this SHA-256, if any: id, name, restaurant_id (null for admin), is_admin.';

-- ---- sql/0805_function_request_menu_import.sql ----
-- SQL API: ask for a menu import. Validates the request (each key against its allowed
-- values; an error names the key and nothing is written), records a PENDING run with the
-- requester, and defers procrastinate's import_loyverse_menu job, which fetches the menu
-- and runs the import (loyverse_sync/importer/runs.py). Returns the run id at once; read
-- progress from loyverse.import_runs.
create function loyverse.request_menu_import(p_restaurant_id uuid, p_request jsonb default '{}')
returns bigint
language plpgsql
security definer
-- procrastinate's defer function names its tables unqualified (as in wake_price_sync): public
-- on the path; everything of ours is schema-qualified.
set search_path = public, pg_temp
as $$
declare
    v_account bigint;
    v_key text;
    v_value jsonb;
    v_busy bigint;
    v_run bigint;
    v_problem record;
    v_options jsonb := '{}';
    v_known constant text[] := array['conflict', 'decisions', 'map', 'categories', 'items', 'exclude',
        'unknown_category', 'missing', 'batch_size', 'with_inventory', 'refresh', 'max_age'];
begin
    if p_request is null or jsonb_typeof(p_request) <> 'object' then
        raise exception 'request: expected a json object' using errcode = 'invalid_parameter_value', column = 'request';
    end if;
    if not exists (select 1 from public.restaurants r where r.id = p_restaurant_id) then
        raise exception 'restaurant_id: no restaurant %', p_restaurant_id
            using errcode = 'no_data_found', column = 'restaurant_id';
    end if;
    select l.account_id into v_account from loyverse.loyverse_restaurant_links l where l.restaurant_id = p_restaurant_id;
    if v_account is null then
        raise exception 'restaurant_id: the restaurant is not linked to a Loyverse store'
            using errcode = 'object_not_in_prerequisite_state', column = 'restaurant_id';
    end if;
    for v_key, v_value in select * from jsonb_each(p_request) loop
        if not v_key = any (v_known) then
            raise exception '%: unknown option (known: %)', v_key, array_to_string(v_known, ', ')
                using errcode = 'invalid_parameter_value', column = v_key;
        end if;
        if v_key = 'conflict' and not (jsonb_typeof(v_value) = 'string'
                and v_value #>> '{}' in ('skip', 'update', 'duplicate', 'manual')) then
            raise exception 'conflict: must be one of skip, update, duplicate, manual'
                using errcode = 'invalid_parameter_value', column = 'conflict';
        elsif v_key = 'unknown_category' and not (jsonb_typeof(v_value) = 'string'
                and v_value #>> '{}' in ('fallback', 'reject')) then
            raise exception 'unknown_category: must be one of fallback, reject'
                using errcode = 'invalid_parameter_value', column = 'unknown_category';
        elsif v_key = 'missing' and not (jsonb_typeof(v_value) = 'string'
                and v_value #>> '{}' in ('deactivate', 'delete', 'keep')) then
            raise exception 'missing: must be one of deactivate, delete, keep'
                using errcode = 'invalid_parameter_value', column = 'missing';
        elsif v_key in ('categories', 'items', 'exclude') and not (jsonb_typeof(v_value) = 'array'
                and not exists (select 1 from jsonb_array_elements(v_value) e where jsonb_typeof(e) <> 'string')) then
            raise exception '%: must be a list of ids or names (strings)', v_key
                using errcode = 'invalid_parameter_value', column = v_key;
        elsif v_key = 'decisions' and not (jsonb_typeof(v_value) = 'object'
                and not exists (select 1 from jsonb_each(v_value) e
                                 where jsonb_typeof(e.value) <> 'string'
                                    or e.value #>> '{}' not in ('skip', 'update', 'duplicate'))) then
            raise exception 'decisions: must map variant ids to one of skip, update, duplicate'
                using errcode = 'invalid_parameter_value', column = 'decisions';
        elsif v_key = 'map' then
            if jsonb_typeof(v_value) <> 'object'
               or exists (select 1 from jsonb_each(v_value) e where jsonb_typeof(e.value) <> 'string') then
                raise exception 'map: must map Loyverse fields to product columns (strings)'
                    using errcode = 'invalid_parameter_value', column = 'map';
            end if;
            select * into v_problem from loyverse.import_field_map_problems(v_value) limit 1;
            if found then
                raise exception 'map: %=%: %', v_problem.loyverse_field, v_problem.our_column, v_problem.problem
                    using errcode = 'invalid_parameter_value', column = 'map';
            end if;
        elsif v_key = 'batch_size' and not (v_value = 'null'::jsonb or (jsonb_typeof(v_value) = 'number'
                and v_value::numeric = trunc(v_value::numeric) and v_value::numeric between 1 and 1000000)) then
            raise exception 'batch_size: must be a whole number from 1 to 1000000, or null'
                using errcode = 'invalid_parameter_value', column = 'batch_size';
        elsif v_key in ('with_inventory', 'refresh') and jsonb_typeof(v_value) <> 'boolean' then
            raise exception '%: must be true or false', v_key using errcode = 'invalid_parameter_value', column = v_key;
        elsif v_key = 'max_age' and not (jsonb_typeof(v_value) = 'number' and v_value::numeric between 0 and 86400) then
            raise exception 'max_age: must be a number of seconds from 0 to 86400'
                using errcode = 'invalid_parameter_value', column = 'max_age';
        end if;
    end loop;
    if p_request ->> 'conflict' = 'manual' and not p_request ? 'decisions' then
        raise exception 'decisions: conflict manual needs decisions (variant id -> skip|update|duplicate)'
            using errcode = 'invalid_parameter_value', column = 'decisions';
    end if;
    -- one import at a time per restaurant (the job also takes a lock per restaurant)
    select r.id into v_busy from loyverse.loyverse_import_runs r
     where r.restaurant_id = p_restaurant_id and r.status in ('PENDING', 'RUNNING') and not r.dry_run
       and r.updated_at > now() - interval '1 hour'
     limit 1;
    if v_busy is not null then
        raise exception 'restaurant_id: import run % of this restaurant is still running', v_busy
            using errcode = 'object_not_in_prerequisite_state', column = 'restaurant_id';
    end if;
    v_options := p_request || jsonb_build_object('requested_by', loyverse.current_actor());
    insert into loyverse.loyverse_import_runs (restaurant_id, account_id, status, dry_run, options)
    values (p_restaurant_id, v_account, 'PENDING', false, v_options)
    returning id into v_run;
    perform public.procrastinate_defer_jobs_v1(array[
        row('price_sync', 'import_loyverse_menu', 0, 'loyverse_menu_import:' || p_restaurant_id, null,
            jsonb_build_object('run_id', v_run), null)::public.procrastinate_job_to_defer_v1]);
    return v_run;
end;
$$;
comment on function loyverse.request_menu_import(uuid, jsonb) is
    'Ask for a menu import (runs in the worker): p_request = {conflict: skip|update|duplicate|manual, decisions: '
    '{variant_id: skip|update|duplicate}, map: {loyverse_field: column}, categories: [], items: [], exclude: [], '
    'unknown_category, missing, batch_size, with_inventory, refresh, max_age}. Returns the run id; progress in '
    'loyverse.import_runs. Example: select loyverse.request_menu_import(''<uuid>'', ''{"conflict": "update"}'');';

-- ---- sql/0810_function_price_sync_timeline.sql ----
-- The dashboard's chart: queue depth at the end of each of p_buckets equal slices of the
-- last p_minutes, and the changes synced and failed within each. One pass over the
-- restaurant's rows that were open at some point in the window.
create function loyverse.price_sync_timeline(p_restaurant_id uuid, p_minutes integer default 60, p_buckets integer default 12)
returns table (bucket_end timestamptz, queue_depth bigint, synced bigint, failed bigint)
language sql
stable
security definer
set search_path = ''
as $$
    with b as (
        select now() - make_interval(mins => p_minutes) * (p_buckets - i) / p_buckets as t,
               make_interval(mins => p_minutes) / p_buckets as width
          from generate_series(0, least(greatest(p_buckets, 1), 240)) i
    ), q as (
        select y.created_at, y.completed_at, y.status
          from loyverse.loyverse_price_sync_queue y
         where y.restaurant_id = p_restaurant_id
           and (y.completed_at is null or y.completed_at > now() - make_interval(mins => p_minutes))
    )
    select b.t,
           count(q.status) filter (where q.created_at <= b.t and (q.completed_at is null or q.completed_at > b.t)),
           count(q.status) filter (where q.status = 'done' and q.completed_at > b.t - b.width and q.completed_at <= b.t),
           count(q.status) filter (where q.status in ('failed', 'dead')
                                     and q.completed_at > b.t - b.width and q.completed_at <= b.t)
      from b left join q on true
     group by b.t
     order by b.t
$$;
comment on function loyverse.price_sync_timeline(uuid, integer, integer) is
    'Queue depth and changes synced/failed over the last p_minutes in p_buckets slices (the console''s chart). '
    'Example: select * from loyverse.price_sync_timeline(''<uuid>'', 60, 12);';

-- ---- sql/0815_view_api_keys.sql ----
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

-- ---- sql/0820_view_audit_trail.sql ----
-- Who changed what: every loyverse_sync_logs row with its actor (API key, console user, OS
-- user or database role) and the database role of the session that wrote it. A role of the main
-- app sees only its restaurants' rows (loyverse.readable_restaurants).
create view loyverse.audit_trail as
select g.id as log_id,
       g.started_at as at,
       g.restaurant_id,
       r.name as restaurant_name,
       g.sync_type as action,
       g.status,
       g.actor,
       g.db_role,
       g.items_total,
       g.details
  from loyverse.loyverse_sync_logs g
  left join public.restaurants r on r.id = g.restaurant_id
 where g.sync_type <> 'PRICE_SYNC'
   -- a role of the main app reads only its restaurants' rows (loyverse.readable_restaurants: null = all)
   and ((select loyverse.readable_restaurants(current_user)) is null or g.restaurant_id = any ((select loyverse.readable_restaurants(current_user))::uuid[]));
comment on view loyverse.audit_trail is
    'Changes and who made them: settings changes (details.changes = {setting: {from, to}}), manual triggers, '
    'retries, imports and undos, API keys. actor = api-key:<name> | console:<key name> | cli:<os user> | sql:<role>.';

-- ---- sql/0900_grants.sql ----
-- Grants. loyverse_app: the main app (catalogue, never tokens). loyverse_worker: the sync
-- worker and CLI. loyverse_readonly: the views only.
grant usage on schema loyverse to loyverse_app, loyverse_worker, loyverse_readonly;

grant select, insert, update, delete on public.restaurants, public.categories, public.product_groups,
    public.products, public.modifier_groups, public.modifier_options, public.product_modifier_groups
    to loyverse_app, loyverse_worker;

-- Named one by one (not "all tables in schema"), so sql/ and migrations/ grant the same
-- whatever order objects are created in.
grant select, insert, update, delete on loyverse.loyverse_accounts, loyverse.loyverse_account_rate_state,
    loyverse.loyverse_restaurant_links, loyverse.loyverse_item_mappings,
    loyverse.loyverse_price_sync_settings, loyverse.loyverse_price_sync_queue,
    loyverse.loyverse_sync_logs, loyverse.loyverse_import_runs, loyverse.loyverse_import_journal,
    loyverse.loyverse_notification_outbox
    to loyverse_worker;
grant select on loyverse.procrastinate_migrations to loyverse_worker;
grant usage, select on sequence loyverse.loyverse_accounts_id_seq, loyverse.loyverse_item_mappings_id_seq,
    loyverse.loyverse_price_sync_queue_id_seq, loyverse.loyverse_sync_logs_id_seq,
    loyverse.loyverse_import_runs_id_seq, loyverse.loyverse_import_journal_id_seq,
    loyverse.loyverse_notification_outbox_id_seq
    to loyverse_worker;

grant execute on function loyverse.rate_governor_take(bigint, integer) to loyverse_worker;

grant execute on function loyverse.rate_governor_penalize(bigint, double precision) to loyverse_worker;

revoke all on loyverse.loyverse_accounts from loyverse_app, loyverse_readonly;

grant select on loyverse.account_overview, loyverse.restaurant_overview to loyverse_readonly, loyverse_worker;

-- The worker runs procrastinate: its tables, sequences and functions.
do $$
declare r record;
begin
  for r in select c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace
           where n.nspname = 'public' and c.relname like 'procrastinate%' and c.relkind in ('r', 'S') loop
    if r.relkind = 'r' then
      execute format('grant select, insert, update, delete on public.%I to loyverse_worker', r.relname);
    else
      execute format('grant usage, select, update on sequence public.%I to loyverse_worker', r.relname);
    end if;
  end loop;
end $$;

-- ---- sql/0920_grants_price_sync.sql ----
-- Grants of the price-sync objects. Functions are not executable by PUBLIC; the SQL API is
-- for the main app (loyverse_app) and the worker/CLI (loyverse_worker); the views are what
-- loyverse_readonly may read.
revoke execute on function
    loyverse.round_price(numeric, text, integer),
    loyverse.price_to_send(numeric, text, integer, numeric),
    loyverse.price_sync_due_at(text),
    loyverse.wake_price_sync(bigint),
    loyverse.tg_products__enqueue_price_sync(),
    loyverse.tg_accounts__delete_price_sync_rows(),
    loyverse.tg_products__delete_price_sync_rows(),
    loyverse.tg_products__note_price_change(),
    loyverse.tg_price_sync_queue__count_outcome(),
    loyverse.enqueue_current_prices(uuid[], text, integer, timestamptz),
    loyverse.release_expired_price_sync_leases(bigint),
    loyverse.claim_price_sync_batch(bigint, text, integer, double precision, integer),
    loyverse.extend_price_sync_lease(text, double precision),
    loyverse.complete_price_sync_batch(text, jsonb, integer, jsonb, timestamptz),
    loyverse._price_sync_restaurant(uuid),
    loyverse._price_sync_out_of_sync(uuid),
    loyverse._add_outcome_totals(uuid[], text[]),
    loyverse.category_is_synced(uuid, uuid[], uuid[]),
    loyverse.trigger_price_sync(uuid, boolean),
    loyverse.retry_price_sync(uuid, uuid, text),
    loyverse.price_sync_settings(uuid),
    loyverse.update_price_sync_settings(uuid, jsonb),
    loyverse.pause_price_sync(uuid),
    loyverse.resume_price_sync(uuid),
    loyverse.resolve_price_sync_conflicts(uuid, text, uuid),
    loyverse.sweep_price_sync(),
    loyverse.prune_price_sync_queue(interval, integer),
    loyverse.enqueue_price_sync_digests(interval)
  from public;

-- A role that changes prices runs the products trigger, which is SECURITY INVOKER (see
-- sql/0330) and calls loyverse.enqueue_price_changes: it needs the schema and that function,
-- which only loyverse_app and loyverse_worker may execute (the main app's roles are members
-- of loyverse_app), and which refuses any caller but the products trigger (sql/0332).
grant usage on schema loyverse to public;
revoke execute on function loyverse.enqueue_price_changes(uuid[], numeric[]) from public;
grant execute on function loyverse.enqueue_price_changes(uuid[], numeric[]) to loyverse_app, loyverse_worker;

grant execute on function
    loyverse.round_price(numeric, text, integer),
    loyverse.price_to_send(numeric, text, integer, numeric),
    loyverse.trigger_price_sync(uuid, boolean),
    loyverse.retry_price_sync(uuid, uuid, text),
    loyverse.price_sync_settings(uuid),
    loyverse.update_price_sync_settings(uuid, jsonb),
    loyverse.pause_price_sync(uuid),
    loyverse.resume_price_sync(uuid),
    loyverse.resolve_price_sync_conflicts(uuid, text, uuid),
    loyverse.approve_held_price_changes(uuid, uuid),
    loyverse.reject_held_price_changes(uuid, uuid),
    loyverse.make_price_fixed(uuid, uuid)
  to loyverse_app, loyverse_worker;

grant execute on function
    loyverse.price_sync_due_at(text),
    loyverse.wake_price_sync(bigint),
    loyverse.wake_price_sync_when_due(bigint),
    loyverse.enqueue_current_prices(uuid[], text, integer, timestamptz),
    loyverse.release_expired_price_sync_leases(bigint),
    loyverse.claim_price_sync_batch(bigint, text, integer, double precision, integer),
    loyverse.extend_price_sync_lease(text, double precision),
    loyverse.complete_price_sync_batch(text, jsonb, integer, jsonb, timestamptz),
    loyverse.sweep_price_sync(),
    loyverse.prune_price_sync_queue(interval, integer),
    loyverse.enqueue_price_sync_digests(interval)
  to loyverse_worker;

-- (revoke first: in a build from sql/, 0900's "all tables in schema" grant already reached them)
revoke all on loyverse.price_sync_status, loyverse.price_sync_history, loyverse.price_sync_problems,
    loyverse.price_sync_queue_health, loyverse.price_sync_held
  from loyverse_app, loyverse_worker, loyverse_readonly;
grant select on loyverse.price_sync_status, loyverse.price_sync_history, loyverse.price_sync_problems,
    loyverse.price_sync_queue_health, loyverse.price_sync_held
  to loyverse_readonly, loyverse_worker;

-- The outcome totals are written only by the queue's triggers and complete_price_sync_batch
-- (SECURITY DEFINER); the worker reads them for `loyverse-sync metrics`.
grant select on loyverse.loyverse_price_sync_outcome_totals to loyverse_worker;

-- ---- sql/0930_grants_import.sql ----
-- Grants for the menu import's tables, functions and view.
grant select, insert, update, delete on loyverse.loyverse_snapshots, loyverse.loyverse_snapshot_objects,
    loyverse.loyverse_object_mappings, loyverse.loyverse_import_plan, loyverse.loyverse_import_plan_objects,
    loyverse.loyverse_import_issues to loyverse_worker;
grant usage, select on sequence loyverse.loyverse_snapshots_id_seq, loyverse.loyverse_import_issues_id_seq
    to loyverse_worker;
grant execute on function loyverse.normalize_name(text), loyverse.jsonb_to_int(jsonb), loyverse.jsonb_to_bool(jsonb),
    loyverse.import_field_map_problems(jsonb), loyverse.import_plan(bigint), loyverse.import_plan_summary(bigint),
    loyverse._import_plan_progress(bigint, text, bigint, bigint),
    loyverse.import_journal_before(bigint, text, text[], text), loyverse.import_journal_refresh(bigint),
    loyverse.import_apply_objects(bigint), loyverse.import_apply_batch(bigint, integer),
    loyverse.import_finish(bigint), loyverse.import_undo(bigint, boolean) to loyverse_worker;
grant select on loyverse.import_runs to loyverse_worker, loyverse_readonly;

-- ---- sql/0940_grants_operations.sql ----
-- Grants for the operators' statistics, alerts and views.
grant select, insert, update, delete on loyverse.loyverse_api_call_stats, loyverse.loyverse_alert_state to loyverse_worker;
grant execute on function loyverse.record_api_calls(bigint, jsonb), loyverse.evaluate_alerts() to loyverse_worker;
grant select on loyverse.api_latency, loyverse.alert_measurements, loyverse.alerts to loyverse_readonly, loyverse_worker;

-- ---- sql/0950_grants_api.sql ----
-- Grants of the HTTP server's objects. The server and the CLI run as loyverse_worker; the
-- main app (loyverse_app) may request imports, read the chart, and read the status,
-- history, import and audit views; every new function is revoked from PUBLIC first.
revoke execute on function
    loyverse.tg_price_sync_settings__log_change(),
    loyverse.create_api_key(text, bytea, uuid, boolean),
    loyverse.revoke_api_key(text),
    loyverse.api_key_lookup(bytea),
    loyverse.request_menu_import(uuid, jsonb),
    loyverse.price_sync_timeline(uuid, integer, integer)
  from public;

-- current_actor() only reads a session setting: every role writing an audited row needs it
-- (it is loyverse_sync_logs.actor's default).
grant execute on function loyverse.current_actor() to public;

grant execute on function
    loyverse.create_api_key(text, bytea, uuid, boolean),
    loyverse.revoke_api_key(text),
    loyverse.api_key_lookup(bytea)
  to loyverse_worker;

grant execute on function
    loyverse.request_menu_import(uuid, jsonb),
    loyverse.price_sync_timeline(uuid, integer, integer)
  to loyverse_app, loyverse_worker;

grant select, insert, update, delete on loyverse.loyverse_api_keys to loyverse_worker;
grant usage, select on sequence loyverse.loyverse_api_keys_id_seq to loyverse_worker;

revoke all on loyverse.api_keys, loyverse.audit_trail from loyverse_app, loyverse_worker, loyverse_readonly;
grant select on loyverse.api_keys to loyverse_worker, loyverse_readonly;  -- names and scopes, never hashes
grant select on loyverse.audit_trail to loyverse_app, loyverse_worker, loyverse_readonly;
grant select on loyverse.price_sync_status, loyverse.price_sync_history, loyverse.import_runs to loyverse_app;

-- ---- sql/0950_grants_inbound.sql ----
-- Grants of the inbound side (webhooks, polling, reconciliation): nothing for PUBLIC; the
-- receiver and worker (loyverse_worker) run the internals; the app may reconcile and repair.
revoke execute on function
    loyverse.wake_inbox(bigint),
    loyverse.receive_loyverse_delivery(bigint, text, jsonb, bytea),
    loyverse.record_rejected_delivery(bigint, text, jsonb),
    loyverse._apply_loyverse_price(bigint, uuid, numeric, timestamptz, timestamptz),
    loyverse._apply_loyverse_item(bigint, bigint, jsonb, timestamptz),
    loyverse._apply_loyverse_deletion(bigint, bigint, text, text, text),
    loyverse._apply_loyverse_rename(bigint, bigint, text, text, text),
    loyverse._apply_loyverse_inventory_level(bigint, bigint, jsonb),
    loyverse.apply_loyverse_inbox(bigint, integer),
    loyverse.record_price_drift(uuid, jsonb),
    loyverse.repair_price_drift(uuid),
    loyverse.inbound_settings_row(bigint),
    loyverse.due_inbound_polls(),
    loyverse.finish_inbound_poll(bigint, timestamptz),
    loyverse.inbound_account_for_secret(text),
    loyverse.wake_pending_inboxes(),
    loyverse.prune_loyverse_inbox(interval, integer)
  from public;

grant execute on function
    loyverse.record_price_drift(uuid, jsonb),
    loyverse.repair_price_drift(uuid)
  to loyverse_app, loyverse_worker;

grant execute on function
    loyverse.wake_inbox(bigint),
    loyverse.receive_loyverse_delivery(bigint, text, jsonb, bytea),
    loyverse.record_rejected_delivery(bigint, text, jsonb),
    loyverse.apply_loyverse_inbox(bigint, integer),
    loyverse.inbound_settings_row(bigint),
    loyverse.due_inbound_polls(),
    loyverse.finish_inbound_poll(bigint, timestamptz),
    loyverse.inbound_account_for_secret(text),
    loyverse.wake_pending_inboxes(),
    loyverse.prune_loyverse_inbox(interval, integer)
  to loyverse_worker;

-- (revoke first: in a build from sql/, 0900's "all tables in schema" grant already reached them)
revoke all on loyverse.price_drift, loyverse.inbound_decisions from loyverse_app, loyverse_worker, loyverse_readonly;
grant select on loyverse.price_drift, loyverse.inbound_decisions to loyverse_readonly, loyverse_worker;

-- The CLI (`account subscribe`, `sync reconcile`) reads and writes the inbound settings and reads the rest.
grant select, insert, update on loyverse.loyverse_inbound_settings to loyverse_worker;
grant select on loyverse.loyverse_inbox, loyverse.loyverse_inbound_audit, loyverse.loyverse_inbound_objects,
    loyverse.loyverse_price_drift
  to loyverse_worker;

-- ---- sql/0955_grants_restaurant_roles.sql ----
-- Grants of the per-role restaurant filter: the views' readers call readable_restaurants
-- (a view's functions run with the reader's privileges); the CLI (loyverse_worker) manages grants.
revoke all on loyverse.loyverse_restaurant_roles, loyverse.restaurant_roles
  from loyverse_app, loyverse_worker, loyverse_readonly;
revoke execute on function loyverse.readable_restaurants(name), loyverse.grant_restaurant_to_role(text, uuid),
    loyverse.revoke_restaurant_from_role(text, uuid) from public;
grant execute on function loyverse.readable_restaurants(name) to loyverse_app, loyverse_worker, loyverse_readonly;
grant execute on function loyverse.grant_restaurant_to_role(text, uuid), loyverse.revoke_restaurant_from_role(text, uuid)
  to loyverse_worker;
grant select on loyverse.restaurant_roles to loyverse_worker, loyverse_readonly;

-- ---- sql/0990_grants_no_public.sql ----
-- Nothing of ours is executable by PUBLIC: every function of the schema is revoked from it
-- here, after all of them exist, and each role gets what docs/dba.md's privilege matrix lists
-- (tests/sql/test_privileges.py holds the database to that table). PostgreSQL grants EXECUTE
-- to PUBLIC on every new function by default, so the default is turned off for functions
-- this role creates from now on (a per-schema default can only add, not revoke), and put back
-- for the schema public, where procrastinate's functions (a future upgrade's too) keep it.
revoke execute on all functions in schema loyverse from public;
alter default privileges revoke execute on functions from public;
alter default privileges in schema public grant execute on functions to public;

-- The views call these (a view's functions run with the reader's privileges).
grant execute on function loyverse._latency_quantile(bigint[], double precision), loyverse.sum_buckets(bigint[]),
    loyverse._sum_buckets(bigint[], bigint[]), loyverse.latency_bounds()
  to loyverse_readonly, loyverse_worker;
