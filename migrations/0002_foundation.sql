-- The main app's catalogue (public) and the integration's own schema (loyverse): accounts,
-- restaurant links, mappings, the price-sync queue, settings, logs, import runs and journal,
-- the notification outbox, the shared rate governor, roles and grants.
-- depends: 0001_procrastinate_schema

-- ---------------------------------------------------------------------------------------
-- Roles are cluster-wide: create them only when missing, so a second database migrates.
-- ---------------------------------------------------------------------------------------
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'loyverse_app') then
    create role loyverse_app nologin;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'loyverse_worker') then
    create role loyverse_worker nologin;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'loyverse_readonly') then
    create role loyverse_readonly nologin;
  end if;
end $$;

-- ---------------------------------------------------------------------------------------
-- The main app's catalogue. The integration relies only on the columns commented here.
-- ---------------------------------------------------------------------------------------
create table public.restaurants (
    id uuid primary key default gen_random_uuid(),
    name text not null
        constraint restaurant_name_is_not_blank check (btrim(name) <> ''),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
comment on table public.restaurants is 'The main app''s restaurants. loyverse-sync reads id and name.';

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
        constraint product_price_is_nonnegative check (price >= 0),
    is_active boolean not null default true,
    option1_value text,
    option2_value text,
    option3_value text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
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

create table public.product_modifier_groups (
    product_id uuid not null references public.products (id) on delete cascade,
    modifier_group_id uuid not null references public.modifier_groups (id) on delete cascade,
    primary key (product_id, modifier_group_id)
);
create index product_modifier_groups_modifier_group_id_idx on public.product_modifier_groups (modifier_group_id);
comment on table public.product_modifier_groups is 'Which modifier groups a product offers.';

-- ---------------------------------------------------------------------------------------
-- The integration's schema. (Created by 0001 for procrastinate's bookkeeping.)
-- ---------------------------------------------------------------------------------------
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

create table loyverse.account_rate_state (
    account_id bigint primary key references loyverse.accounts (id) on delete cascade,
    tokens double precision not null,
    refreshed_at timestamptz not null,
    throttled_until timestamptz,
    slow_until timestamptz,
    requests_total bigint not null default 0,
    rate_limited_total bigint not null default 0,
    last_rate_limited_at timestamptz
);
comment on table loyverse.account_rate_state is
    'The shared token bucket of each account (see rate_governor_take). Negative tokens are '
    'reservations already handed out.';

create table loyverse.loyverse_restaurant_links (
    restaurant_id uuid primary key references public.restaurants (id) on delete cascade,
    account_id bigint not null references loyverse.accounts (id) on delete cascade,
    store_id text not null
        constraint store_id_is_not_blank check (btrim(store_id) <> ''),
    store_name text,
    linked_at timestamptz not null default now(),
    constraint loyverse_restaurant_links_account_id_store_id_key unique (account_id, store_id)
);
create index loyverse_restaurant_links_account_id_idx on loyverse.loyverse_restaurant_links (account_id);
comment on table loyverse.loyverse_restaurant_links is
    'Which Loyverse account and store each restaurant sells through (one store per restaurant).';

create table loyverse.loyverse_item_mappings (
    id bigint generated always as identity primary key,
    product_id uuid not null references public.products (id) on delete cascade,
    restaurant_id uuid not null references public.restaurants (id) on delete cascade,
    account_id bigint not null references loyverse.accounts (id) on delete cascade,
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
    constraint loyverse_item_mappings_restaurant_id_variant_id_key unique (restaurant_id, loyverse_variant_id)
);
create index loyverse_item_mappings_account_id_item_id_idx on loyverse.loyverse_item_mappings (account_id, loyverse_item_id);
comment on table loyverse.loyverse_item_mappings is
    'Our product <-> a Loyverse variant (of an item) in the restaurant''s store. A re-import '
    'updates mapped products in place through this table, so nothing is ever duplicated.';
comment on column loyverse.loyverse_item_mappings.last_synced_price is
    'The price we last saw in (or wrote to) Loyverse for this store: the base for detecting edits made at the counter.';
comment on column loyverse.loyverse_item_mappings.sync_direction is
    'How the mapping was last synced: FROM_LOYVERSE (import) or TO_LOYVERSE (price sync).';

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
        constraint notification_email_is_valid check (notification_email is null or notification_email ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$'),
    max_attempts integer not null default 8
        constraint max_attempts_is_between_1_and_50 check (max_attempts between 1 and 50),
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
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint notify_on_error_needs_an_email check (not notify_on_error or notification_email is not null),
    constraint categories_are_not_both_included_and_excluded check (not (include_category_ids && exclude_category_ids))
);
comment on table loyverse.loyverse_price_sync_settings is
    'Per-restaurant price-sync settings (the plan''s PriceSyncSettings). Change them through '
    'loyverse.update_price_sync_settings() or `loyverse-sync sync settings set`.';
comment on column loyverse.loyverse_price_sync_settings.include_category_ids is 'Empty = every category.';
comment on column loyverse.loyverse_price_sync_settings.prices_include_tax is
    'Whether our prices include tax; decides how imported prices treat Loyverse ADDED taxes.';

create table loyverse.loyverse_price_sync_queue (
    id bigint generated always as identity primary key,
    product_id uuid not null references public.products (id) on delete cascade,
    restaurant_id uuid not null references public.restaurants (id) on delete cascade,
    account_id bigint not null references loyverse.accounts (id) on delete cascade,
    status text not null default 'pending'
        constraint queue_status_is_valid check (status in ('pending', 'processing', 'done', 'failed', 'dead', 'conflict', 'cancelled')),
    source text not null default 'trigger'
        constraint queue_source_is_valid check (source in ('trigger', 'manual', 'retry', 'resolve', 'requeue')),
    priority integer not null default 0,
    version bigint not null default 1
        constraint queue_version_is_positive check (version > 0),
    old_price numeric(12, 2),
    new_price numeric(12, 2) not null
        constraint queue_new_price_is_nonnegative check (new_price >= 0),
    price_to_send numeric(12, 3) not null
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
    constraint processing_rows_have_a_lease check (status <> 'processing' or lease_until is not null)
);
-- One pending row per product: the coalescing unit. Claimed rows are never mutated; a
-- change that arrives meanwhile makes a new pending row.
create unique index loyverse_price_sync_queue_product_id_pending_idx
    on loyverse.loyverse_price_sync_queue (product_id) where status = 'pending';
-- The claim: due pending rows of one account, highest priority first.
create index loyverse_price_sync_queue_claim_idx
    on loyverse.loyverse_price_sync_queue (account_id, priority desc, next_attempt_at, id) where status = 'pending';
create index loyverse_price_sync_queue_lease_until_idx
    on loyverse.loyverse_price_sync_queue (lease_until) where status = 'processing';
create index loyverse_price_sync_queue_product_id_processing_idx
    on loyverse.loyverse_price_sync_queue (product_id) where status = 'processing';
create index loyverse_price_sync_queue_restaurant_id_status_idx
    on loyverse.loyverse_price_sync_queue (restaurant_id, status) where status in ('failed', 'dead', 'conflict');
create index loyverse_price_sync_queue_completed_at_idx
    on loyverse.loyverse_price_sync_queue (completed_at) where status in ('done', 'cancelled');
comment on table loyverse.loyverse_price_sync_queue is
    'Price changes waiting for, in, or done with their write to Loyverse. Internal: query '
    'loyverse.price_sync_status and the other views.';
comment on column loyverse.loyverse_price_sync_queue.old_price is 'Price before the first change this row coalesces.';
comment on column loyverse.loyverse_price_sync_queue.new_price is 'Price after the last change this row coalesces.';
comment on column loyverse.loyverse_price_sync_queue.price_to_send is 'new_price after the restaurant''s rounding rule and the currency''s decimals.';
comment on column loyverse.loyverse_price_sync_queue.version is 'Bumped by each coalesced change.';

create table loyverse.loyverse_sync_logs (
    id bigint generated always as identity primary key,
    restaurant_id uuid references public.restaurants (id) on delete set null,
    account_id bigint references loyverse.accounts (id) on delete set null,
    sync_type text not null
        constraint sync_type_is_valid check (sync_type in ('PRICE_SYNC', 'MENU_IMPORT', 'IMPORT_UNDO', 'MANUAL_TRIGGER', 'RETRY', 'NOTIFICATION')),
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
    constraint sync_log_counts_are_nonnegative check (items_total >= 0 and items_succeeded >= 0 and items_failed >= 0 and items_skipped >= 0 and requests_made >= 0),
    constraint sync_log_completes_after_it_starts check (completed_at is null or completed_at >= started_at)
);
create index loyverse_sync_logs_restaurant_id_started_at_idx on loyverse.loyverse_sync_logs (restaurant_id, started_at desc);
create index loyverse_sync_logs_started_at_idx on loyverse.loyverse_sync_logs (started_at desc);
comment on table loyverse.loyverse_sync_logs is 'One row per sync batch, import run or undo, with counts and error details.';

create table loyverse.loyverse_import_runs (
    id bigint generated always as identity primary key,
    restaurant_id uuid not null references public.restaurants (id) on delete cascade,
    account_id bigint references loyverse.accounts (id) on delete set null,
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

-- ---------------------------------------------------------------------------------------
-- The shared rate governor: one token bucket per account, in the database, so every
-- worker process, restaurant and CLI call spends the one documented budget.
-- ---------------------------------------------------------------------------------------
create function loyverse.rate_governor_take(p_account_id bigint, p_requests integer default 1)
returns double precision
language plpgsql
set search_path = ''
as $$
-- Reserve p_requests slots and return how many seconds the caller must wait before sending.
-- Refill rate = rate_limit_requests * safety / window; burst = what the safety margin leaves
-- spare, halved, so burst + rate * window stays under the documented limit in ANY window.
-- Reservations make tokens negative: later callers queue up behind earlier ones, in order.
declare
    v_limit integer;
    v_window double precision;
    v_safety double precision;
    v_rate double precision;
    v_burst double precision;
    v_now timestamptz := clock_timestamp();
    v_state loyverse.account_rate_state;
    v_tokens double precision;
begin
    if p_requests is null or p_requests < 1 then
        raise exception 'rate_governor_take: p_requests must be >= 1, got %', p_requests
            using errcode = 'invalid_parameter_value';
    end if;
    select a.rate_limit_requests, a.rate_limit_window_seconds, a.rate_limit_safety
      into v_limit, v_window, v_safety
      from loyverse.accounts a where a.id = p_account_id;
    if not found then
        raise exception 'rate_governor_take: no Loyverse account with id %', p_account_id
            using errcode = 'no_data_found';
    end if;
    v_rate := v_limit * v_safety / v_window;
    v_burst := greatest(1, floor(v_limit * (1 - v_safety) / 2));

    insert into loyverse.account_rate_state (account_id, tokens, refreshed_at)
    values (p_account_id, v_burst, v_now)
    on conflict (account_id) do nothing;

    -- The row lock serialises takers of one account; it is held for microseconds.
    select * into v_state from loyverse.account_rate_state s where s.account_id = p_account_id for update;
    if v_state.slow_until > v_now then
        v_rate := v_rate / 2;   -- after a 429 we spend half the budget for one window
    end if;
    v_tokens := least(v_burst, v_state.tokens + extract(epoch from v_now - v_state.refreshed_at) * v_rate);
    v_tokens := v_tokens - p_requests;

    update loyverse.account_rate_state s
       set tokens = v_tokens,
           refreshed_at = v_now,
           requests_total = s.requests_total + p_requests
     where s.account_id = p_account_id;

    return case when v_tokens >= 0 then 0 else -v_tokens / v_rate end;
end;
$$;
comment on function loyverse.rate_governor_take(bigint, integer) is
    'Reserve p_requests Loyverse requests for the account; returns the seconds to wait before sending them.';

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
      from loyverse.accounts a where a.id = p_account_id;
    if not found then
        raise exception 'rate_governor_penalize: no Loyverse account with id %', p_account_id
            using errcode = 'no_data_found';
    end if;
    v_rate := v_limit * v_safety / v_window / 2;
    v_pause := greatest(coalesce(p_retry_after, 0), v_window / v_limit * 8);

    insert into loyverse.account_rate_state (account_id, tokens, refreshed_at)
    values (p_account_id, 0, v_now)
    on conflict (account_id) do nothing;

    update loyverse.account_rate_state s
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

-- ---------------------------------------------------------------------------------------
-- Views for DBAs (the price-sync and operator views come with their own migrations).
-- ---------------------------------------------------------------------------------------
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
  left join loyverse.accounts a on a.id = l.account_id
  left join loyverse.loyverse_price_sync_settings s on s.restaurant_id = r.id;
comment on view loyverse.restaurant_overview is 'Each restaurant with its Loyverse account and store, product counts and sync settings.';

-- ---------------------------------------------------------------------------------------
-- Grants. loyverse_app: the main app (catalogue, never tokens). loyverse_worker: the sync
-- worker and CLI. loyverse_readonly: the views only.
-- ---------------------------------------------------------------------------------------
grant usage on schema loyverse to loyverse_app, loyverse_worker, loyverse_readonly;

grant select, insert, update, delete on public.restaurants, public.categories, public.product_groups,
    public.products, public.modifier_groups, public.modifier_options, public.product_modifier_groups
    to loyverse_app, loyverse_worker;

-- Named one by one (not "all tables in schema"), so sql/ and migrations/ grant the same
-- whatever order objects are created in.
grant select, insert, update, delete on loyverse.accounts, loyverse.account_rate_state,
    loyverse.loyverse_restaurant_links, loyverse.loyverse_item_mappings,
    loyverse.loyverse_price_sync_settings, loyverse.loyverse_price_sync_queue,
    loyverse.loyverse_sync_logs, loyverse.loyverse_import_runs, loyverse.loyverse_import_journal,
    loyverse.loyverse_notification_outbox
    to loyverse_worker;
grant select on loyverse.procrastinate_migrations to loyverse_worker;
grant usage, select on sequence loyverse.accounts_id_seq, loyverse.loyverse_item_mappings_id_seq,
    loyverse.loyverse_price_sync_queue_id_seq, loyverse.loyverse_sync_logs_id_seq,
    loyverse.loyverse_import_runs_id_seq, loyverse.loyverse_import_journal_id_seq,
    loyverse.loyverse_notification_outbox_id_seq
    to loyverse_worker;
grant execute on function loyverse.rate_governor_take(bigint, integer) to loyverse_worker;
grant execute on function loyverse.rate_governor_penalize(bigint, double precision) to loyverse_worker;

revoke all on loyverse.accounts from loyverse_app, loyverse_readonly;
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
