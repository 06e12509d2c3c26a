-- Undo 0050: the queue's foreign keys come back, the accounts trigger goes, the products
-- trigger function is the 0020 one again.
drop trigger if exists _100_delete_price_sync_rows on loyverse.accounts;
drop function if exists loyverse.tg_accounts__delete_price_sync_rows();
delete from loyverse.loyverse_price_sync_queue q
 where not exists (select from loyverse.accounts a where a.id = q.account_id)
    or not exists (select from public.restaurants r where r.id = q.restaurant_id);
alter table loyverse.loyverse_price_sync_queue
    add constraint loyverse_price_sync_queue_restaurant_id_fkey
        foreign key (restaurant_id) references public.restaurants (id) on delete cascade,
    add constraint loyverse_price_sync_queue_account_id_fkey
        foreign key (account_id) references loyverse.accounts (id) on delete cascade;

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
    select o.ids, o.prices, n.ids, n.prices, n.categories
      into v_ids, v_old_prices, v_new_ids, v_new_prices, v_categories
      from (select array_agg(id order by id) as ids, array_agg(price order by id) as prices
              from old_rows) o,
           (select array_agg(id order by id) as ids, array_agg(price order by id) as prices,
                   array_agg(category_id order by id) as categories
              from new_rows) n;
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
