-- Deleting an account deletes its queue rows: the queue has no foreign key to accounts (its
-- check cost every queued change), so this statement trigger is the cascade.
create trigger _100_delete_price_sync_rows
    after delete on loyverse.loyverse_accounts
    referencing old table as old_rows
    for each statement
    execute function loyverse.tg_accounts__delete_price_sync_rows();
comment on trigger _100_delete_price_sync_rows on loyverse.loyverse_accounts is
    'Deleting an account deletes its price-sync queue rows.';
