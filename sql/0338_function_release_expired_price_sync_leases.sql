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
