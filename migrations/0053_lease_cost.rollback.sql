-- Undo 0053: the lease_until index comes back, the claimed_by index goes.
drop index if exists loyverse.loyverse_price_sync_queue_claimed_by_idx;

create index loyverse_price_sync_queue_lease_until_idx
    on loyverse.loyverse_price_sync_queue (lease_until) where status = 'processing';
