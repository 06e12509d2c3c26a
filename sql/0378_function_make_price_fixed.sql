-- SQL API: a manager turns a VARIABLE price (entered at the counter; imported as a 0
-- placeholder and flagged) into a fixed one on purpose. Set the price in the main app first
-- (UPDATE products SET price = ...: nothing is queued while the mapping is VARIABLE), then
-- call this: the mapping becomes FIXED, its flag is lifted, and the current price is queued,
-- approved (a person chose it, so the guardrails do not hold it), with source 'make_fixed':
-- the worker then writes it as the store's FIXED price, the one write that may replace a
-- VARIABLE price in Loyverse. A price of 0 is refused: it is the import's placeholder.
create function loyverse.make_price_fixed(p_restaurant_id uuid, p_product_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_price numeric;
    v_count integer;
begin
    perform loyverse._price_sync_restaurant(p_restaurant_id);
    select p.price into v_price from public.products p
     where p.id = p_product_id and p.restaurant_id = p_restaurant_id
       for update;
    if not found then
        raise exception 'product: no product % in restaurant %', p_product_id, p_restaurant_id
            using errcode = 'no_data_found', column = 'product';
    end if;
    if not exists (select 1 from loyverse.loyverse_item_mappings m where m.product_id = p_product_id) then
        raise exception 'product: % is not mapped to a Loyverse variant (run an import first)', p_product_id
            using errcode = 'no_data_found', column = 'product';
    end if;
    if v_price = 0 then
        raise exception 'product: the price of % is 0.00 (the import''s placeholder for a VARIABLE price); set the price to charge first', p_product_id
            using errcode = 'object_not_in_prerequisite_state', column = 'product',
                  hint = 'UPDATE public.products SET price = ... WHERE id = ..., then call this again.';
    end if;
    update loyverse.loyverse_item_mappings m
       set loyverse_pricing_type = 'FIXED',
           needs_attention = false, attention_reason = null, updated_at = now()
     where m.product_id = p_product_id;
    v_count := loyverse.enqueue_current_prices(array[p_product_id], 'make_fixed', 200);
    update loyverse.loyverse_price_sync_queue q
       set approved_at = now(), approved_by = session_user
     where q.product_id = p_product_id and q.status = 'pending';
    insert into loyverse.loyverse_sync_logs (restaurant_id, sync_type, status, items_total, details, completed_at)
    values (p_restaurant_id, 'MAKE_FIXED', 'SUCCESS', v_count,
            jsonb_build_object('product_id', p_product_id, 'price', v_price, 'by', session_user), now());
    return v_count;
end;
$$;
comment on function loyverse.make_price_fixed(uuid, uuid) is
    'Turn a product''s VARIABLE Loyverse price into a FIXED one on purpose: the mapping becomes FIXED and the '
    'product''s current price (not 0) is queued, approved. Returns the rows queued (0 when the restaurant does '
    'not sync to Loyverse now; it is sent when it does). Example: select loyverse.make_price_fixed(''<restaurant>'', ''<product>'');';
