-- Price-sync trigger cost (issue #5): the queue's restaurant_id and account_id lose their
-- foreign keys (copies of the mapping's, which keeps them; two lookups per queued row were
-- ~8 µs each of a 20,000-row bulk UPDATE's trigger), an account's queue rows are deleted
-- with it by a trigger instead of a cascade, and the products trigger sorts each transition
-- table once instead of once per aggregated column.
-- depends: 0020_price_sync 0040_operations

alter table loyverse.loyverse_price_sync_queue
    drop constraint loyverse_price_sync_queue_restaurant_id_fkey,
    drop constraint loyverse_price_sync_queue_account_id_fkey;

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

create trigger _100_delete_price_sync_rows
    after delete on loyverse.accounts
    referencing old table as old_rows
    for each statement
    execute function loyverse.tg_accounts__delete_price_sync_rows();
comment on trigger _100_delete_price_sync_rows on loyverse.accounts is
    'Deleting an account deletes its price-sync queue rows.';

revoke execute on function loyverse.tg_accounts__delete_price_sync_rows() from public;

create or replace function loyverse.tg_products__enqueue_price_sync()
returns trigger
language plpgsql
security definer  -- loyverse_app updates prices but cannot read the queue
set search_path = ''
as $$
declare
    v_ids uuid[];
    v_new_ids uuid[];
    v_old_prices numeric[];
    v_new_prices numeric[];
    v_categories uuid[];
begin
    -- Cheap exit: no (id, price) pair of the new rows is new, so no price changed.
    if not exists (select n.id, n.price from new_rows n
                   except all
                   select o.id, o.price from old_rows o) then
        return null;
    end if;
    -- Prices written by the menu import come from Loyverse: never send them back.
    if current_setting('loyverse_sync.origin', true) = 'loyverse' then
        return null;
    end if;

    -- Old and new rows, paired by position in id order (no column list is allowed with
    -- transition tables, so this trigger sees every updated row).
    -- One sort per transition table (a subquery's order feeds every array_agg of its
    -- query; aggregate-level ORDER BY would sort once per aggregate: 5 sorts, not 2).
    select o.ids, o.prices, n.ids, n.prices, n.categories
      into v_ids, v_old_prices, v_new_ids, v_new_prices, v_categories
      from (select array_agg(s.id) as ids, array_agg(s.price) as prices
              from (select r.id, r.price from old_rows r order by r.id) s) o,
           (select array_agg(s.id) as ids, array_agg(s.price) as prices,
                   array_agg(s.category_id) as categories
              from (select r.id, r.price, r.category_id from new_rows r order by r.id) s) n;
    if v_ids is distinct from v_new_ids then
        -- The statement changed product ids (only unmapped products can: the mappings'
        -- foreign key forbids it otherwise): pair by id with a join planned for this run.
        execute 'select array_agg(n.id), array_agg(o.price), array_agg(n.price), array_agg(n.category_id)
                   from new_rows n join old_rows o on o.id = n.id'
           into v_ids, v_old_prices, v_new_prices, v_categories;
    end if;

    perform loyverse.enqueue_price_changes(v_ids, v_old_prices, v_new_prices, v_categories);
    return null;
end;
$$;
