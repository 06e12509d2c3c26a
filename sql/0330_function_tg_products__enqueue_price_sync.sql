-- Statement-level trigger function on public.products: one set-based upsert of the price
-- sync queue per UPDATE statement (a 20,000-row bulk update is one statement, not 20,000 calls).
-- It fires for EVERY update of products, so a statement that changed no price must cost
-- next to nothing. Two things make that so:
--   * loyverse_sync.price_changed, a transaction-local flag set by the row trigger
--     _090_note_price_change (loyverse.tg_products__note_price_change) only when a row's
--     price really changes. That trigger is AFTER ... FOR EACH ROW: its WHEN sees the row as
--     stored, after every BEFORE trigger, so a price changed by a restaurant's own BEFORE
--     trigger during `UPDATE ... SET name = ...` is seen too (an `UPDATE OF price` trigger
--     would miss it: column lists only look at the SET list). Its AFTER ROW events fire
--     before this statement's AFTER STATEMENT event. Without the flag this function returns
--     at once: no query, no SPI. The flag is never cleared before the transaction ends (a
--     nested UPDATE's trigger could otherwise consume its outer statement's flag): later
--     statements of the transaction take the full path, which is correct, only slower.
--   * SECURITY INVOKER, no SET clause: a SECURITY DEFINER function with `SET search_path`
--     costs ~5 us per call, mostly the search path recomputed for the caller's next
--     statement. The queue is written by loyverse.enqueue_price_changes (SECURITY DEFINER,
--     called only when a price changed), so every name here is schema-qualified.
--
-- Plans: PL/pgSQL keeps the plan of each query from its first run in a session, made for the
-- transition tables' sizes of THAT run. A join of new_rows with old_rows planned for one row
-- is a nested loop, quadratic on a later 20,000-row update (measured: 115 s). So no query
-- here joins the two transition tables: the changed rows are a set difference (hashed or
-- sorted, never quadratic) of (id, old price) pairs, and the upsert reads the products'
-- current price and category itself, through an index.
create function loyverse.tg_products__enqueue_price_sync()
returns trigger
language plpgsql
as $$
declare
    v_ids pg_catalog.uuid[];
    v_old_prices pg_catalog.numeric[];
begin
    if pg_catalog.current_setting('loyverse_sync.price_changed', true) is distinct from 'on' then
        return null;  -- no price changed in this transaction so far
    end if;
    -- Prices written by the menu import come from Loyverse: never send them back.
    if pg_catalog.current_setting('loyverse_sync.origin', true) = 'loyverse' then
        return null;
    end if;
    -- The (id, old price) pairs that no new row repeats: the rows whose price changed (or
    -- whose id changed: only unmapped products can, the mappings' foreign key forbids it
    -- otherwise, and the upsert skips products that are not mapped).
    select pg_catalog.array_agg(c.id), pg_catalog.array_agg(c.price)
      into v_ids, v_old_prices
      from (select o.id, o.price from old_rows o
            except all
            select n.id, n.price from new_rows n) c;
    if v_ids is not null then
        perform loyverse.enqueue_price_changes(v_ids, v_old_prices);
    end if;
    return null;
end;
$$;
comment on function loyverse.tg_products__enqueue_price_sync() is
    'Queue the products whose price changed in this statement (mapped, sync enabled towards Loyverse, '
    'category filters passed) and wake the worker of each REALTIME account. Returns at once unless '
    '_090_note_price_change flagged a price change in this transaction; skipped when '
    'loyverse_sync.origin = ''loyverse'' (the menu import).';
