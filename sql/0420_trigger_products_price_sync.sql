-- Price changes on public.products feed the price-sync queue. Only UPDATE: a mapping
-- references an existing product, so an inserted product is never mapped yet (an INSERT
-- ... ON CONFLICT DO UPDATE fires this UPDATE trigger for the rows it updates).
create trigger _100_enqueue_price_sync
    after update on public.products
    referencing old table as old_rows new table as new_rows
    for each statement
    execute function loyverse.tg_products__enqueue_price_sync();
comment on trigger _100_enqueue_price_sync on public.products is
    'Queues price changes for the Loyverse price sync (statement-level, transition tables).';
