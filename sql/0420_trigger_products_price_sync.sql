-- Price changes on public.products feed the price-sync queue. Only UPDATE: a mapping
-- references an existing product, so an inserted product is never mapped yet (an INSERT
-- ... ON CONFLICT DO UPDATE fires these UPDATE triggers for the rows it updates).
-- The two work together: disabling one of them alone loses price changes.
create trigger _090_note_price_change
    after update on public.products
    for each row
    when (old.price is distinct from new.price)
    execute function loyverse.tg_products__note_price_change();
comment on trigger _090_note_price_change on public.products is
    'Flags the transaction when a price really changed (sees the stored row, BEFORE triggers included), '
    'so that _100_enqueue_price_sync looks for it; UPDATEs that change no price skip the price sync.';

create trigger _100_enqueue_price_sync
    after update on public.products
    referencing old table as old_rows new table as new_rows
    for each statement
    execute function loyverse.tg_products__enqueue_price_sync();
comment on trigger _100_enqueue_price_sync on public.products is
    'Queues price changes for the Loyverse price sync (statement-level, transition tables).';

-- Deleting products deletes their queue rows: the queue's product_id has no foreign key
-- (its check cost every queued row; sql/0333).
create trigger _110_delete_price_sync_rows
    after delete on public.products
    referencing old table as old_rows
    for each statement
    execute function loyverse.tg_products__delete_price_sync_rows();
comment on trigger _110_delete_price_sync_rows on public.products is
    'Deleting products deletes their price-sync queue rows.';
