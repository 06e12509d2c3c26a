-- depends: 0002_baseline
-- Hardening and guardrails (issue #18): nothing a user or the main app does can damage
-- Loyverse or the queue.
-- * VARIABLE prices (entered at the counter) are never queued nor sent: an explicit column,
--   loyverse_item_mappings.loyverse_pricing_type (filled by the import, backfilled here from
--   the import's flag), is checked at enqueue (trigger, settings catch-up, full sync, retry,
--   resolve) and at claim; a sync that did not resolve a mapping's flag never clears it;
--   loyverse.make_price_fixed turns such a price into a fixed one on purpose.
-- * The database refuses what can never be sent: NaN and prices of 10^8 or more on products,
--   rate limits and windows outside sane ranges on accounts, over-long names, URLs, emails.
-- * The claim returns only rows to send (VARIABLE / disabled rows are cancelled in SQL), and
--   holds a change past the restaurant's new guardrails (hold_change_percent, default 100 %;
--   hold_change_amount; hold_below_price) as 'held', released or refused by a person
--   (approve_held_price_changes / reject_held_price_changes); a newer price supersedes it.
-- * The queue is written only by the products trigger (checked by role: EXECUTE for
--   loyverse_app and loyverse_worker only; and by caller: the call stack) and the SQL API;
--   no function of the schema is executable by PUBLIC, now or when created later.

-- Tables: what can never be sent is refused.
alter table public.restaurants add constraint restaurant_name_is_at_most_200_characters check (length(name) <= 200);
alter table public.products add constraint product_price_is_a_number_below_100000000
    check (price <> 'NaN' and price < 100000000);
alter table loyverse.accounts
    add constraint merchant_id_is_at_most_200_characters check (length(merchant_id) <= 200),
    add constraint business_name_is_at_most_200_characters check (length(business_name) <= 200),
    add constraint base_url_is_at_most_2000_characters check (length(base_url) <= 2000),
    add constraint rate_limit_requests_is_at_most_100000 check (rate_limit_requests <= 100000),
    drop constraint rate_limit_window_is_positive,  -- replaced: "> 0" let NaN and infinity through
    add constraint rate_limit_window_is_between_1_and_86400_seconds check (rate_limit_window_seconds between 1 and 86400);
alter table loyverse.loyverse_price_sync_settings
    add constraint notification_email_is_at_most_254_characters check (length(notification_email) <= 254),
    add column hold_change_percent numeric(8, 2) default 100
        constraint hold_change_percent_is_between_1_and_100000 check (hold_change_percent between 1 and 100000),
    add column hold_change_amount numeric(12, 2)
        constraint hold_change_amount_is_between_0_01_and_99999999 check (hold_change_amount between 0.01 and 99999999),
    add column hold_below_price numeric(12, 2)
        constraint hold_below_price_is_between_0_and_99999999 check (hold_below_price between 0 and 99999999);
alter table loyverse.loyverse_item_mappings add column loyverse_pricing_type text not null default 'FIXED'
    constraint mapping_pricing_type_is_valid check (loyverse_pricing_type in ('FIXED', 'VARIABLE'));
-- the import flagged VARIABLE prices with this reason (sql/0610), and only them
update loyverse.loyverse_item_mappings set loyverse_pricing_type = 'VARIABLE'
 where needs_attention and attention_reason like 'VARIABLE price%';
-- and in the import journal's images of mappings, so `import undo` of an older run restores
-- a mapping whole (a missing key would restore null into a not-null column)
update loyverse.loyverse_import_journal
   set before_image = before_image || jsonb_build_object('loyverse_pricing_type',
           case when (before_image ->> 'needs_attention')::boolean
                     and before_image ->> 'attention_reason' like 'VARIABLE price%' then 'VARIABLE' else 'FIXED' end)
 where table_name = 'loyverse_item_mappings' and jsonb_typeof(before_image) = 'object'
   and not before_image ? 'loyverse_pricing_type';
alter table loyverse.loyverse_sync_logs drop constraint sync_type_is_valid;
alter table loyverse.loyverse_sync_logs add constraint sync_type_is_valid
    check (sync_type in ('PRICE_SYNC', 'MENU_IMPORT', 'IMPORT_UNDO', 'MANUAL_TRIGGER', 'RETRY', 'NOTIFICATION',
                         'SETTINGS_CHANGE', 'API_KEY', 'APPROVE', 'REJECT', 'MAKE_FIXED'));

-- The queue: held changes, approvals, no NaN, price_to_send wide enough for any product
-- price after a tax factor (price_sync_problems reads the column: dropped and made again).
drop view loyverse.price_sync_problems;
alter table loyverse.loyverse_price_sync_queue alter column price_to_send type numeric(15, 3);
alter table loyverse.loyverse_price_sync_queue drop constraint queue_status_is_valid;
alter table loyverse.loyverse_price_sync_queue add constraint queue_status_is_valid
    check (status in ('pending', 'processing', 'done', 'failed', 'dead', 'conflict', 'cancelled', 'held'));
alter table loyverse.loyverse_price_sync_queue drop constraint queue_source_is_valid;
alter table loyverse.loyverse_price_sync_queue add constraint queue_source_is_valid
    check (source in ('trigger', 'manual', 'retry', 'resolve', 'requeue', 'settings', 'make_fixed'));
alter table loyverse.loyverse_price_sync_queue
    add column approved_at timestamptz,
    add column approved_by text,
    add constraint queue_prices_are_numbers check (new_price <> 'NaN' and price_to_send <> 'NaN');
create index loyverse_price_sync_queue_product_id_held_idx
    on loyverse.loyverse_price_sync_queue (product_id) where status = 'held';
comment on column loyverse.loyverse_item_mappings.loyverse_pricing_type is
    'FIXED: Loyverse holds a price for this store, and price sync keeps it equal to ours. VARIABLE: the '
    'price is entered at the counter; price sync never queues or sends it (the import sets it from '
    'Loyverse; loyverse.make_price_fixed turns it into a fixed price on purpose).';
comment on column loyverse.loyverse_price_sync_settings.hold_change_percent is
    'Hold (do not send) a change that moves the price Loyverse holds up by more than this %, or down to '
    'less than 1 / (1 + this / 100) of it (100: a price may double or halve; a x100 or x10 typo is held). '
    'Null: no limit.';
comment on column loyverse.loyverse_price_sync_settings.hold_change_amount is
    'Hold a change that moves the price Loyverse holds by more than this amount (currency units). Null: no limit.';
comment on column loyverse.loyverse_price_sync_settings.hold_below_price is
    'Hold a change to a price below this floor (our price, currency units). Null: no floor.';
comment on column loyverse.loyverse_price_sync_queue.approved_at is
    'When a person released this change past the guardrails (loyverse.approve_held_price_changes, or '
    'loyverse.make_price_fixed); the claim does not hold an approved row again.';

-- Functions (as in sql/).

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
create or replace function loyverse.enqueue_price_changes(
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
          join loyverse.accounts a on a.id = m.account_id
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

-- ---- sql/0335_function_enqueue_current_prices.sql ----
-- Queue the database's current price of some products (manual full sync, retry, conflict
-- resolution, a worker that lost its lease, a settings change that widens what is synced):
-- the same upsert as the trigger, due now or at p_due_at (a settings change follows the
-- restaurant's frequency: MANUAL rows wait for an explicit trigger).
create or replace function loyverse.enqueue_current_prices(
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
          join loyverse.accounts a on a.id = m.account_id
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

-- ---- sql/0340_function_claim_price_sync_batch.sql ----
-- The worker's claim: due pending rows of ONE account, whole Loyverse items at a time
-- (every due row of each chosen item, so one write per item), highest priority first,
-- FOR UPDATE SKIP LOCKED, with a lease. An item with a row in flight is not claimed: a write
-- restates every variant of its item, so two claims holding rows of one item could each write
-- the other's variants with prices read before the other's write (an older price last).
-- It returns only rows to send: what can never be sent (VARIABLE prices, sync disabled) is
-- cancelled here and a change past the guardrails is held, so the worker needs no filter.
create or replace function loyverse.claim_price_sync_batch(
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
    enabled boolean
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
           m.loyverse_store_id, m.last_synced_price, s.sync_direction, s.enabled
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
    'the restaurant''s guardrails (hold_change_percent, hold_change_amount, hold_below_price) become held.';

-- ---- sql/0350_function_complete_price_sync_batch.sql ----
-- The worker reports a claimed batch in one call: every row's outcome, applied atomically,
-- plus one loyverse_sync_logs row. Rows no longer held by this claim (lease lost) are left
-- alone; if we wrote them to Loyverse, the product's current price is queued again so the
-- final price is always the last one written. The rows entering done, failed or dead are
-- added to loyverse.loyverse_price_sync_outcome_totals here, one statement per outcome; the
-- SET clause loyverse_sync.outcomes_counted tells the queue's row trigger not to count them
-- one by one.
create or replace function loyverse.complete_price_sync_batch(
    p_claimed_by text,
    p_results jsonb,
    p_requests_made integer default 0,
    p_details jsonb default '{}',
    p_started_at timestamptz default null,
    p_backoff_base double precision default 2,
    p_backoff_cap double precision default 900
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
    -- unless a newer change is pending already, which then carries the price.
    with moved as (
        update loyverse.loyverse_price_sync_queue q
           set status = case when r.superseded then 'cancelled'
                             when r.outcome = 'retry' and q.attempts + 1 >= q.max_attempts then 'dead'
                             else 'pending' end,
               attempts = q.attempts + case when r.outcome = 'retry' then 1 else 0 end,
               next_attempt_at = case when r.outcome = 'release' then now()
                                      else now() + make_interval(secs =>
                                          least(p_backoff_cap, p_backoff_base * power(2, q.attempts))
                                          * (0.5 + random() * 0.5)) end,
               lease_until = null,
               claimed_by = null,
               last_error = case when r.superseded then coalesce(r.error || '; ', '') || 'superseded by a newer change'
                                 else coalesce(r.error, q.last_error) end,
               last_error_code = coalesce(r.code, q.last_error_code),
               error_details = coalesce(r.details, q.error_details),
               completed_at = case when r.superseded or (r.outcome = 'retry' and q.attempts + 1 >= q.max_attempts)
                                   then now() end,
               updated_at = now()
          from pg_temp.price_sync_results r
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

    if v_lost_products is not null then
        perform loyverse.enqueue_current_prices(v_lost_products, 'requeue', 0);
    end if;

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
comment on function loyverse.complete_price_sync_batch(text, jsonb, integer, jsonb, timestamptz, double precision, double precision) is
    'Apply a worker''s outcomes for one claim (done / retry with exponential backoff and jitter, dead at '
    'max_attempts / failed / conflict / release / cancel), update the mappings, write one sync log row. '
    'Rows lost by this claim are not touched; the ones we wrote are queued again. Adds the rows that '
    'entered done, failed or dead to loyverse.loyverse_price_sync_outcome_totals.';

-- ---- sql/0353_function_price_sync_out_of_sync.sql ----
-- The mapped products of a restaurant whose price in Loyverse is not known to be the one we
-- would send now: the price sent by an in-flight (processing) row, else the mapping's last
-- synced price, differs from the current price rounded under the current settings, or was
-- never synced. Only FIXED prices (a VARIABLE one is entered at the counter) of products that
-- pass the category filters, and none with a pending row (it already carries the current
-- price) or a conflict or held change waiting for a person.
-- Used by a full manual sync and by a settings change that widens what is synced.
create or replace function loyverse._price_sync_out_of_sync(p_restaurant_id uuid)
returns uuid[]
language sql
stable
set search_path = ''
as $$
    select coalesce(array_agg(m.product_id order by m.product_id), '{}')
      from loyverse.loyverse_item_mappings m
      join public.products p on p.id = m.product_id
      join loyverse.accounts a on a.id = m.account_id
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

-- ---- sql/0360_function_retry_price_sync.sql ----
-- SQL API: retry failed and dead-lettered changes. The old rows are closed as 'cancelled'
-- (their error stays readable) and the product's CURRENT price is queued, due now, with a
-- priority above routine changes.
create or replace function loyverse.retry_price_sync(
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

-- ---- sql/0366_function_update_price_sync_settings.sql ----
-- SQL API: change some price-sync settings of a restaurant. Every key is validated; a bad
-- one raises an error naming it (diagnostics column = the key) and nothing changes. Pending
-- rows follow the new settings (frequency, rounding, disabled, category filters), and a
-- change that widens what is sent (sync enabled again, direction back towards Loyverse,
-- category filters or rounding rule changed) queues every product whose price in Loyverse
-- is not known to be the one we would send now, at the restaurant's frequency (source
-- 'settings'): prices changed while a product was not synced are not left behind.
create or replace function loyverse.update_price_sync_settings(p_restaurant_id uuid, p_changes jsonb)
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
        'priority', 'prices_include_tax', 'alert_failure_rate', 'alert_queue_depth',
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
              from loyverse.accounts a, loyverse.loyverse_item_mappings m
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

-- ---- sql/0375_function_resolve_price_sync_conflicts.sql ----
-- SQL API: decide held conflicts (BIDIRECTIONAL restaurants, price edited in Loyverse).
-- ours: push our current price (overwriting Loyverse). theirs: take Loyverse's price into
-- our product (marked as coming from Loyverse, so it is not queued back).
create or replace function loyverse.resolve_price_sync_conflicts(p_restaurant_id uuid, p_keep text, p_product_id uuid default null)
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

-- ---- sql/0390_function_enqueue_price_sync_digests.sql ----
-- Notifications: one error digest per restaurant (notify_on_error) per interval, listing the
-- changes that failed, were dead-lettered or were held by the guardrails since its previous digest. dedupe_key makes a
-- second call in the same interval a no-op.
create or replace function loyverse.enqueue_price_sync_digests(p_interval interval default '1 hour')
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

-- ---- sql/0610_function_import_plan.sql ----
-- Builds an import run's plan from its snapshot, set-based: validation, pricing for the
-- linked store, conflict detection (mapping, then SKU, then name), resolution, and the
-- fidelity report. Writes only the run's plan tables; the catalogue is untouched.
create or replace function loyverse.import_plan(p_run_id bigint)
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
      left join loyverse.accounts a on a.id = s.account_id
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

    -- One row per variant (an item without variants yields one row that fails validation).
    create temp table _lv_rows on commit drop as
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
    select row_number() over (order by r.item_seq, r.ord)::integer as row_no,
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
    analyze _lv_rows (row_no, variant_id, sku, item_id);

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

    -- A SKU that another product of the restaurant already has cannot be written.
    update _lv_plan p
       set decision = 'fail',
           decision_reason = format('SKU %s is already used by product "%s"', p.sku, pr.name),
           errors = p.errors || format('SKU %s is already used by product "%s"', p.sku, pr.name)
      from public.products pr
     where p.run_id = p_run_id and p.decision in ('create', 'update', 'duplicate') and p.sku is not null
       and pr.restaurant_id = v_run.restaurant_id and pr.sku = p.sku and pr.id <> p.product_id;

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

    -- The product group of written rows, and (atomic runs: plan and writes commit together) the
    -- outcome the write will have, so import_apply_batch needs no UPDATE of the plan for it
    -- ('unchanged' until an update is seen to change something).
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
             on o.run_id = p_run_id and o.kind = 'item' and o.loyverse_id = p.item_id;

    -- The run row's progress (items_total) is left to the caller: during an atomic run it is
    -- written from another connection, and a lock taken here would block that.
    return loyverse.import_plan_summary(p_run_id);
end;
$$;

comment on function loyverse.import_plan(bigint) is
    'Plan an import run from its snapshot and options (validation, pricing, conflicts, decisions, '
    'fidelity report); writes only the plan tables. Returns import_plan_summary().';

-- ---- sql/0635_function_import_apply_batch.sql ----
-- Writes one batch of an import run's plan: products (created, duplicated, or updated only
-- where something differs), their item mappings and modifier links, all journaled; marks
-- the batch's plan rows done. The writes are marked as coming from Loyverse (origin).
create or replace function loyverse.import_apply_batch(p_run_id bigint, p_batch_no integer)
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

-- Views.

-- ---- sql/0520_view_price_sync_status.sql ----
-- Per-restaurant price-sync status for DBAs and the CLI (`sync status`).
-- One grouped pass over the queue rows that count (pending, processing, failed, dead,
-- conflict, and done in the last day: each arm matches a partial index), joined by
-- restaurant_id: the cost does not multiply by the number of restaurants. A restaurant
-- whose last success is older than a day takes it from last_done, read only for such a
-- restaurant (and only when last_success_at is selected): one pass for all of them.
create or replace view loyverse.price_sync_status as
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
  left join loyverse.accounts a on a.id = l.account_id
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
  ) rate on true;
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
-- on held changes or a VARIABLE price (approve, reject, make fixed).
create or replace view loyverse.price_sync_history as
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
 where g.sync_type in ('PRICE_SYNC', 'MANUAL_TRIGGER', 'RETRY', 'APPROVE', 'REJECT', 'MAKE_FIXED');
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

-- Grants.
revoke execute on function loyverse.enqueue_price_changes(uuid[], numeric[]) from public;
grant execute on function loyverse.enqueue_price_changes(uuid[], numeric[]) to loyverse_app, loyverse_worker;
grant execute on function loyverse.approve_held_price_changes(uuid, uuid), loyverse.reject_held_price_changes(uuid, uuid),
    loyverse.make_price_fixed(uuid, uuid)
  to loyverse_app, loyverse_worker;
grant select on loyverse.price_sync_problems, loyverse.price_sync_held to loyverse_readonly, loyverse_worker;
grant execute on function loyverse.wake_price_sync_when_due(bigint) to loyverse_worker;  -- PUBLIC had it

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
