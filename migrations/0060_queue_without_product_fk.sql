-- depends: 0059_queued_job_check
-- A bulk price UPDATE from a drained queue paid the queue's product foreign key once per
-- queued row (one SPI statement and a tuple lock each): 20,000-row bulk 3.57-3.71x the bare
-- UPDATE, 2.93x without the key, measured side by side. The key goes; its cascade becomes a
-- statement trigger on products (as 0050 did for accounts), and the one writer that read
-- products without holding their row lock, enqueue_current_prices, now locks them FOR KEY
-- SHARE. And fillfactor 50 (was 70): a bulk UPDATE that coalesces into every pending row of
-- a page needs room for a new version of each, or its updates are not HOT and write four
-- index entries per row (3.41-3.58x -> 2.45-2.65x). New pages only; rows written from now on.

alter table loyverse.loyverse_price_sync_queue
    drop constraint loyverse_price_sync_queue_product_id_fkey;
alter table loyverse.loyverse_price_sync_queue set (fillfactor = 50);

-- The cascade of the queue's product_id, set-based: deleting products deletes their queue
-- rows, in one statement per DELETE. The queue has no foreign key to products (since 0060):
-- its check ran one SPI statement and took a tuple lock for every queued row, about a
-- quarter of what a 20,000-row bulk price UPDATE added from a drained queue (measured:
-- 29.5-31.6 -> 23.1-24.5 us per row). No row can name a product that is gone: the queue
-- is written only by loyverse.enqueue_price_changes, from the products trigger, whose UPDATE
-- holds each product's row lock until commit, and by loyverse.enqueue_current_prices, which
-- locks the products it reads FOR KEY SHARE; either way a concurrent DELETE waits for the
-- commit, and this trigger then sees the rows and deletes them.
create function loyverse.tg_products__delete_price_sync_rows()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    delete from loyverse.loyverse_price_sync_queue q
     using old_rows o
     where q.product_id = o.id;
    return null;
end;
$$;
comment on function loyverse.tg_products__delete_price_sync_rows() is
    'Delete the price-sync queue rows of deleted products (the cascade of the queue''s product_id).';

revoke execute on function loyverse.tg_products__delete_price_sync_rows() from public;

-- Deleting products deletes their queue rows: the queue's product_id has no foreign key
-- (its check cost every queued row; sql/0333).
create trigger _110_delete_price_sync_rows
    after delete on public.products
    referencing old table as old_rows
    for each statement
    execute function loyverse.tg_products__delete_price_sync_rows();
comment on trigger _110_delete_price_sync_rows on public.products is
    'Deleting products deletes their price-sync queue rows.';

create or replace function loyverse.enqueue_current_prices(
    p_product_ids uuid[],
    p_source text,
    p_priority_boost integer default 0,
    p_due_at timestamptz default null  -- null: now
)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_count integer;
    v_accounts bigint[];
    v_account bigint;
begin
    with wanted as (
        select p.id as product_id, m.restaurant_id, m.account_id, m.last_synced_price as old_price,
               p.price as new_price,
               loyverse.price_to_send(p.price, s.price_rounding_rule, a.decimal_places, m.price_factor) as price_to_send,
               s.priority + p_priority_boost as priority,
               s.max_attempts,
               not s.paused and coalesce(p_due_at, now()) <= now() as wake,
               m.loyverse_item_id
          from public.products p
          join loyverse.loyverse_item_mappings m on m.product_id = p.id
          join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id
          join loyverse.accounts a on a.id = m.account_id
         where p.id = any (p_product_ids)
           and s.enabled
           and s.sync_direction in ('TO_LOYVERSE', 'BIDIRECTIONAL')
           -- a product deleted meanwhile is skipped, one being deleted waits for this commit
           -- (the queue has no foreign key to products: sql/0333)
           for key share of p
    ), upserted as (
        insert into loyverse.loyverse_price_sync_queue as q
               (product_id, restaurant_id, account_id, source, priority, old_price, new_price,
                price_to_send, max_attempts, next_attempt_at, loyverse_item_id)
        select w.product_id, w.restaurant_id, w.account_id, p_source, w.priority, w.old_price,
               w.new_price, w.price_to_send, w.max_attempts, coalesce(p_due_at, now()), w.loyverse_item_id
          from wanted w
        on conflict (product_id) where status = 'pending' do update
           set new_price = excluded.new_price,
               price_to_send = excluded.price_to_send,
               version = q.version + case when q.price_to_send = excluded.price_to_send then 0 else 1 end,
               source = excluded.source,
               loyverse_item_id = excluded.loyverse_item_id,
               priority = greatest(q.priority, excluded.priority),
               next_attempt_at = least(q.next_attempt_at, coalesce(p_due_at, now())),
               updated_at = now()
        returning q.product_id, q.account_id
    )
    select count(*), array_agg(distinct u.account_id) filter (where w.wake)
      into v_count, v_accounts
      from upserted u join wanted w on w.product_id = u.product_id;

    if v_accounts is not null then
        foreach v_account in array v_accounts loop
            perform loyverse.wake_price_sync(v_account);
        end loop;
    end if;
    return v_count;
end;
$$;
comment on function loyverse.enqueue_current_prices(uuid[], text, integer, timestamptz) is
    'Queue the current price of the given products (due at p_due_at, default now; priority raised by '
    'p_priority_boost) and wake their accounts when due now; returns the rows queued. Skips products '
    'whose restaurant does not sync to Loyverse.';
