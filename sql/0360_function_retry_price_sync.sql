-- SQL API: retry failed and dead-lettered changes. The old rows are closed as 'cancelled'
-- (their error stays readable) and the product's CURRENT price is queued, due now, with a
-- priority above routine changes.
create function loyverse.retry_price_sync(
    p_restaurant_id uuid default null,
    p_product_id uuid default null,
    p_status text default null
)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_products uuid[];
    v_count integer;
begin
    if p_status is not null and p_status not in ('failed', 'dead') then
        raise exception 'status: must be failed, dead or null (both), got %', p_status
            using errcode = 'invalid_parameter_value', column = 'status';
    end if;
    if p_restaurant_id is not null then
        perform loyverse._price_sync_restaurant(p_restaurant_id);
    end if;
    if p_product_id is not null and not exists (
            select 1 from public.products p
             where p.id = p_product_id and (p_restaurant_id is null or p.restaurant_id = p_restaurant_id)) then
        raise exception 'product: no product % in restaurant %', p_product_id, coalesce(p_restaurant_id::text, '(any)')
            using errcode = 'no_data_found', column = 'product';
    end if;

    with closed as (
        update loyverse.loyverse_price_sync_queue q
           set status = 'cancelled',
               last_error = 'retried: ' || coalesce(q.last_error, q.status),
               updated_at = now(),
               completed_at = coalesce(q.completed_at, now())
         where q.status in ('failed', 'dead')
           and (p_status is null or q.status = p_status)
           and (p_restaurant_id is null or q.restaurant_id = p_restaurant_id)
           and (p_product_id is null or q.product_id = p_product_id)
        returning q.product_id
    )
    select array_agg(distinct c.product_id) into v_products from closed c;
    if v_products is null then
        return 0;
    end if;
    -- the flag of a failed sync is lifted for the retry (a new failure sets it again); a
    -- VARIABLE price's flag stays: a retry does not send it (loyverse.make_price_fixed does)
    update loyverse.loyverse_item_mappings m
       set needs_attention = false, attention_reason = null, updated_at = now()
     where m.product_id = any (v_products) and m.loyverse_pricing_type = 'FIXED';
    v_count := loyverse.enqueue_current_prices(v_products, 'retry', 200);
    insert into loyverse.loyverse_sync_logs (restaurant_id, sync_type, status, items_total, details, completed_at)
    values (p_restaurant_id, 'RETRY', 'SUCCESS', v_count,
            jsonb_build_object('product_id', p_product_id, 'status', p_status), now());
    return v_count;
end;
$$;
comment on function loyverse.retry_price_sync(uuid, uuid, text) is
    'Retry failed and/or dead price changes (all, one restaurant, or one product; p_status failed|dead|null): '
    'queues the products'' current prices with priority + 200. Returns the rows queued.';
