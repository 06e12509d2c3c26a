-- Row trigger function on public.products, fired only for rows whose stored price differs
-- from the old one (the trigger's WHEN): flags the transaction so that the statement
-- trigger (loyverse.tg_products__enqueue_price_sync) looks for price changes. For an UPDATE
-- that changes no price the WHEN is false for every row and this never runs.
-- An assignment, not PERFORM: PL/pgSQL evaluates it as a simple expression, without SPI.
create function loyverse.tg_products__note_price_change()
returns trigger
language plpgsql
as $$
declare
    v_ignored text;
begin
    v_ignored := pg_catalog.set_config('loyverse_sync.price_changed', 'on', true);
    return null;
end;
$$;
comment on function loyverse.tg_products__note_price_change() is
    'Set the transaction-local flag loyverse_sync.price_changed: a product''s price changed, so the '
    'price-sync statement trigger must look at this transaction''s updates.';
