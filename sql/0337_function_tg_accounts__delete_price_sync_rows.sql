-- The queue's account_id has no foreign key (see the queue table): when an account is
-- deleted, its queue rows go with it here, as an ON DELETE CASCADE would do.
create function loyverse.tg_accounts__delete_price_sync_rows()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    delete from loyverse.loyverse_price_sync_queue q
     using old_rows o
     where q.account_id = o.id;
    return null;
end;
$$;
comment on function loyverse.tg_accounts__delete_price_sync_rows() is
    'Delete the price-sync queue rows of deleted accounts (the cascade of the queue''s account_id).';
