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
