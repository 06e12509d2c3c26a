-- One inventory level of an inventory_levels.update delivery -> products.stock_quantity of
-- the products mapped to that variant in that store, where the restaurant has sync_stock.
create function loyverse._apply_loyverse_inventory_level(p_inbox_id bigint, p_account_id bigint, p_level jsonb)
returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_key text := (p_level->>'variant_id') || '/' || (p_level->>'store_id');
    v_updated timestamptz := (p_level->>'updated_at')::timestamptz;
    v_stock numeric;
    v_known timestamptz;
begin
    if v_key is null or jsonb_typeof(p_level->'in_stock') <> 'number' then
        return 'malformed';
    end if;
    v_stock := (p_level->>'in_stock')::numeric;
    select o.updated_at into v_known from loyverse.loyverse_inbound_objects o
     where o.account_id = p_account_id and o.kind = 'inventory_level' and o.loyverse_id = v_key
       for update;
    if v_known is not null and v_updated is not null and v_updated <= v_known then
        return 'stale';  -- a level we have or an older one (sales are frequent: not audited)
    end if;
    insert into loyverse.loyverse_inbound_objects as o (account_id, kind, loyverse_id, updated_at)
    values (p_account_id, 'inventory_level', v_key, v_updated)
    on conflict (account_id, kind, loyverse_id) do update set updated_at = excluded.updated_at, seen_at = now();
    with changed as (
        update public.products p
           set stock_quantity = v_stock, updated_at = now()
          from loyverse.loyverse_item_mappings m
          join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id
         where m.account_id = p_account_id and m.loyverse_variant_id = p_level->>'variant_id'
           and m.loyverse_store_id = p_level->>'store_id' and p.id = m.product_id
           and s.enabled and s.sync_stock and p.stock_quantity is distinct from v_stock
        returning p.id, p.restaurant_id
    )
    insert into loyverse.loyverse_inbound_audit (account_id, restaurant_id, inbox_id, product_id, loyverse_id,
                                                 decision, applied, details)
    select p_account_id, c.restaurant_id, p_inbox_id, c.id, v_key, 'STOCK_APPLIED', true,
           jsonb_build_object('in_stock', v_stock, 'loyverse_updated_at', v_updated)
      from changed c;
    return 'stock';
end;
$$;
comment on function loyverse._apply_loyverse_inventory_level(bigint, bigint, jsonb) is
    'Internal to apply_loyverse_inbox: one Loyverse inventory level -> products.stock_quantity where sync_stock.';
