-- Statement-level trigger function on public.products: one set-based upsert of the price
-- sync queue per UPDATE statement (a 20,000-row bulk update is one statement, not 20,000 calls).
-- It fires for EVERY update of products, so the path for a statement that changed no price
-- is one cheap query over the transition tables and nothing else (no settings, no GUC read).
--
-- Plans: PL/pgSQL keeps the plan of each query from its first run in a session, made for the
-- transition tables' sizes of THAT run. A join of new_rows with old_rows planned for one row
-- is a nested loop, quadratic on a later 20,000-row update (measured: 115 s). So no query
-- here joins the two transition tables: the check is a set difference (hashed or sorted,
-- never quadratic), old and new rows are paired by position in id order, and the upsert
-- (loyverse.enqueue_price_changes) reads arrays and reaches every table through an index.
create function loyverse.tg_products__enqueue_price_sync()
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
comment on function loyverse.tg_products__enqueue_price_sync() is
    'Queue the products whose price changed in this statement (mapped, sync enabled towards Loyverse, '
    'category filters passed) and wake the worker of each REALTIME account. Skipped when '
    'loyverse_sync.origin = ''loyverse'' (the menu import).';
