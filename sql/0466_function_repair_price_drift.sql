-- Reconciliation's --repair: fix the drift in the restaurant's direction. TO_LOYVERSE and
-- BIDIRECTIONAL push our prices (the normal queue; Loyverse's price becomes the known base,
-- so the push overwrites it instead of holding a conflict); FROM_LOYVERSE takes Loyverse's
-- prices and availability into products (marked as coming from Loyverse: nothing is queued).
create function loyverse.repair_price_drift(p_restaurant_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_settings loyverse.loyverse_price_sync_settings := loyverse._price_sync_restaurant(p_restaurant_id);
    v_products uuid[];
    v_queued integer := 0;
    v_pulled integer := 0;
    v_origin text;
begin
    if v_settings.sync_direction in ('TO_LOYVERSE', 'BIDIRECTIONAL') then
        select array_agg(distinct d.product_id) into v_products
          from loyverse.loyverse_price_drift d
         where d.restaurant_id = p_restaurant_id and d.kind = 'price' and d.repaired_at is null;
        update loyverse.loyverse_item_mappings m
           set last_synced_price = d.loyverse_price, updated_at = now()
          from loyverse.loyverse_price_drift d
         where d.restaurant_id = p_restaurant_id and d.kind = 'price' and d.repaired_at is null
           and m.product_id = d.product_id and d.loyverse_price is not null;
        if v_products is not null then
            v_queued := loyverse.enqueue_current_prices(v_products, 'manual', 200);
        end if;
        update loyverse.loyverse_price_drift d
           set repaired_at = now(), repair = 'pushed'
         where d.restaurant_id = p_restaurant_id and d.kind = 'price' and d.repaired_at is null;
    else
        v_origin := pg_catalog.current_setting('loyverse_sync.origin', true);
        perform pg_catalog.set_config('loyverse_sync.origin', 'loyverse', true);
        update public.products p
           set price = round(d.loyverse_price * m.price_factor, 2), updated_at = now()
          from loyverse.loyverse_price_drift d
          join loyverse.loyverse_item_mappings m on m.product_id = d.product_id
         where d.restaurant_id = p_restaurant_id and d.kind = 'price' and d.repaired_at is null
           and d.loyverse_price is not null and p.id = d.product_id;
        get diagnostics v_pulled = row_count;
        update public.products p
           set is_active = d.loyverse_available, updated_at = now()
          from loyverse.loyverse_price_drift d
         where d.restaurant_id = p_restaurant_id and d.kind = 'availability' and d.repaired_at is null
           and d.loyverse_available is not null and p.id = d.product_id;
        perform pg_catalog.set_config('loyverse_sync.origin', coalesce(v_origin, ''), true);
        update loyverse.loyverse_item_mappings m
           set last_synced_price = d.loyverse_price, last_synced_at = now(), sync_direction = 'FROM_LOYVERSE',
               updated_at = now()
          from loyverse.loyverse_price_drift d
         where d.restaurant_id = p_restaurant_id and d.kind = 'price' and d.repaired_at is null
           and m.product_id = d.product_id and d.loyverse_price is not null;
        update loyverse.loyverse_price_drift d
           set repaired_at = now(), repair = 'pulled'
         where d.restaurant_id = p_restaurant_id and d.kind in ('price', 'availability') and d.repaired_at is null;
    end if;
    insert into loyverse.loyverse_inbound_audit (account_id, restaurant_id, product_id, loyverse_id, decision,
                                                 applied, our_price, loyverse_price, details)
    select d.account_id, d.restaurant_id, d.product_id, d.loyverse_variant_id, 'DRIFT_REPAIRED', true,
           d.our_price, d.loyverse_price, jsonb_build_object('kind', d.kind, 'repair', d.repair)
      from loyverse.loyverse_price_drift d
     where d.restaurant_id = p_restaurant_id and d.repaired_at = now();
    return jsonb_build_object('direction', v_settings.sync_direction, 'queued', v_queued, 'pulled', v_pulled,
                              'unrepaired', (select count(*) from loyverse.loyverse_price_drift d
                                              where d.restaurant_id = p_restaurant_id and d.repaired_at is null));
end;
$$;
comment on function loyverse.repair_price_drift(uuid) is
    'Repair the drift of the last reconciliation in the restaurant''s direction: push our prices '
    '(TO_LOYVERSE, BIDIRECTIONAL; availability and missing items are reported only) or take Loyverse''s '
    'prices and availability (FROM_LOYVERSE). Returns {direction, queued, pulled, unrepaired}.';
