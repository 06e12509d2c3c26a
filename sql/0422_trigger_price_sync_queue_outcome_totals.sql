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
