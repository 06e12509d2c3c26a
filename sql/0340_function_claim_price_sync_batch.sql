-- The worker's claim: due pending rows of ONE account, whole Loyverse items at a time
-- (every due row of each chosen item, so one write per item), highest priority first,
-- FOR UPDATE SKIP LOCKED, with a lease. A product with a row in flight is not claimed.
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
begin
    if p_claimed_by is null or btrim(p_claimed_by) = '' then
        raise exception 'claim_price_sync_batch: p_claimed_by must not be empty'
            using errcode = 'invalid_parameter_value';
    end if;
    perform loyverse.release_expired_price_sync_leases(p_account_id);

    return query
    with top as (
        select q.id, m.loyverse_item_id as item, q.priority, q.next_attempt_at
          from loyverse.loyverse_price_sync_queue q
          join loyverse.loyverse_item_mappings m on m.product_id = q.product_id
          join loyverse.loyverse_price_sync_settings s on s.restaurant_id = q.restaurant_id
         where q.status = 'pending'
           and q.account_id = p_account_id
           and q.next_attempt_at <= now()
           and not s.paused
         order by q.priority desc, q.next_attempt_at, q.id
         limit p_scan_rows
    ), items as (
        select t.item
          from top t
         group by t.item
         order by max(t.priority) desc, min(t.next_attempt_at), min(t.id)
         limit p_max_items
    ), picked as (
        select q.id
          from loyverse.loyverse_price_sync_queue q
          join loyverse.loyverse_item_mappings m on m.product_id = q.product_id
          join loyverse.loyverse_price_sync_settings s on s.restaurant_id = q.restaurant_id
         where m.account_id = p_account_id
           and m.loyverse_item_id in (select i.item from items i)
           and q.status = 'pending'
           and q.account_id = p_account_id
           and q.next_attempt_at <= now()
           and not s.paused
           -- writes for one product never overlap: its older row is still in flight
           and not exists (select 1 from loyverse.loyverse_price_sync_queue f
                            where f.product_id = q.product_id and f.status = 'processing')
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
    'lease p_lease_seconds, claimed_by = p_claimed_by, a token unique to this claim). Releases expired leases first.';
