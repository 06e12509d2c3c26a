-- The worker's claim: due pending rows of ONE account, whole Loyverse items at a time
-- (every due row of each chosen item, so one write per item), highest priority first,
-- FOR UPDATE SKIP LOCKED, with a lease. An item with a row in flight is not claimed: a write
-- restates every variant of its item, so two claims holding rows of one item could each write
-- the other's variants with prices read before the other's write (an older price last).
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
begin
    if p_claimed_by is null or btrim(p_claimed_by) = '' then
        raise exception 'claim_price_sync_batch: p_claimed_by must not be empty'
            using errcode = 'invalid_parameter_value';
    end if;
    -- One claim of an account at a time: a claim must see the rows the previous one took
    -- (normally one job drains an account; this matters when a worker was presumed dead).
    perform pg_advisory_xact_lock(hashtext('loyverse.claim_price_sync_batch'), p_account_id::integer);
    perform loyverse.release_expired_price_sync_leases(p_account_id);

    -- The items to write, in the order of their most urgent due row (claim index order):
    -- read due rows one by one and stop at p_max_items distinct items (at most p_scan_rows
    -- rows). The item is denormalised on the row, so this touches no mapping.
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

    return query
    with picked as (
        -- every due row of the chosen items (whole items: one write per item)
        select q.id
          from loyverse.loyverse_price_sync_queue q
          join loyverse.loyverse_price_sync_settings s on s.restaurant_id = q.restaurant_id
         where q.account_id = p_account_id
           and q.status = 'pending'
           and q.loyverse_item_id = any (v_items)
           and q.next_attempt_at <= now()
           and not s.paused
           and exists (select 1 from loyverse.loyverse_item_mappings m where m.product_id = q.product_id)
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
           set status = 'processing',
               lease_until = clock_timestamp() + make_interval(secs => p_lease_seconds),
               claimed_by = p_claimed_by,
               updated_at = now()
          from picked
         where q.id = picked.id
        returning q.*
    )
    select c.id, c.product_id, c.restaurant_id, c.version, c.source, c.attempts, c.max_attempts,
           c.old_price, c.new_price, c.price_to_send, m.loyverse_item_id, m.loyverse_variant_id,
           m.loyverse_store_id, m.last_synced_price, s.sync_direction, s.enabled
      from claimed c
      join loyverse.loyverse_item_mappings m on m.product_id = c.product_id
      join loyverse.loyverse_price_sync_settings s on s.restaurant_id = c.restaurant_id
     order by m.loyverse_item_id, c.id;
end;
$$;
comment on function loyverse.claim_price_sync_batch(bigint, text, integer, double precision, integer) is
    'Claim up to p_max_items Loyverse items'' worth of due pending rows of one account (status processing, '
    'lease p_lease_seconds, claimed_by = p_claimed_by, a token unique to this claim); items are chosen among '
    'the first p_scan_rows due rows by priority. Releases expired leases first.';
