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
