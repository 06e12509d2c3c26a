-- The lease heartbeat found a claim's rows by scanning the queue (no index on claimed_by:
-- ~6,400 blocks read per call in a 50-account drain, growing with the done history), and
-- each extension was a non-HOT update because lease_until was indexed. Index claimed_by
-- (processing rows only) and drop the lease_until index: expired leases are found among an
-- account's few processing rows through the other processing indexes.
-- depends: 0020_price_sync 0052_governor_cost

drop index loyverse.loyverse_price_sync_queue_lease_until_idx;

create index loyverse_price_sync_queue_claimed_by_idx
    on loyverse.loyverse_price_sync_queue (claimed_by) where status = 'processing';
