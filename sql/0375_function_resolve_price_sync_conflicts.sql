-- SQL API: decide held conflicts (BIDIRECTIONAL restaurants, price edited in Loyverse).
-- ours: push our current price (overwriting Loyverse). theirs: take Loyverse's price into
-- our product (marked as coming from Loyverse, so it is not queued back).
create function loyverse.resolve_price_sync_conflicts(p_restaurant_id uuid, p_keep text, p_product_id uuid default null)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_products uuid[];
    v_count integer;
    v_origin text;
begin
    perform loyverse._price_sync_restaurant(p_restaurant_id);
    if p_keep is null or p_keep not in ('ours', 'theirs') then
        raise exception 'keep: must be ours or theirs, got %', coalesce(p_keep, 'null')
            using errcode = 'invalid_parameter_value', column = 'keep';
    end if;
    if p_product_id is not null and not exists (select 1 from public.products p
                                                where p.id = p_product_id and p.restaurant_id = p_restaurant_id) then
        raise exception 'product: no product % in restaurant %', p_product_id, p_restaurant_id
            using errcode = 'no_data_found', column = 'product';
    end if;

    create temporary table if not exists pg_temp.price_sync_resolved (
        id bigint, product_id uuid, loyverse_price numeric) on commit drop;
    truncate pg_temp.price_sync_resolved;
    with closed as (
        update loyverse.loyverse_price_sync_queue q
           set status = 'cancelled', updated_at = now(),
               last_error = 'conflict resolved: keep ' || p_keep || ' (' || coalesce(q.last_error, '') || ')'
         where q.status = 'conflict' and q.restaurant_id = p_restaurant_id
           and (p_product_id is null or q.product_id = p_product_id)
        returning q.id, q.product_id, (q.error_details->>'loyverse_price')::numeric as loyverse_price
    )
    insert into pg_temp.price_sync_resolved select * from closed;
    get diagnostics v_count = row_count;
    if v_count = 0 then
        return 0;
    end if;

    if p_keep = 'ours' then
        -- Loyverse's price is now the known base; the resolve row overwrites it.
        update loyverse.loyverse_item_mappings m
           set last_synced_price = r.loyverse_price, updated_at = now()
          from pg_temp.price_sync_resolved r
         where m.product_id = r.product_id and r.loyverse_price is not null;
        select array_agg(distinct r.product_id) into v_products from pg_temp.price_sync_resolved r;
        perform loyverse.enqueue_current_prices(v_products, 'resolve', 200);
        -- a person chose our price: the guardrails do not hold it again
        update loyverse.loyverse_price_sync_queue q
           set approved_at = now(), approved_by = session_user
         where q.product_id = any (v_products) and q.status = 'pending' and q.source = 'resolve';
    else
        v_origin := current_setting('loyverse_sync.origin', true);
        perform set_config('loyverse_sync.origin', 'loyverse', true);
        update public.products p
           set price = r.loyverse_price, updated_at = now()
          from pg_temp.price_sync_resolved r
         where p.id = r.product_id and r.loyverse_price is not null;
        perform set_config('loyverse_sync.origin', coalesce(v_origin, ''), true);
        update loyverse.loyverse_item_mappings m
           set last_synced_price = r.loyverse_price, last_synced_at = now(), sync_direction = 'FROM_LOYVERSE',
               needs_attention = case when m.loyverse_pricing_type = 'FIXED' then false else m.needs_attention end,
               attention_reason = case when m.loyverse_pricing_type = 'FIXED' then null else m.attention_reason end,
               updated_at = now()
          from pg_temp.price_sync_resolved r
         where m.product_id = r.product_id and r.loyverse_price is not null;
    end if;
    return v_count;
end;
$$;
comment on function loyverse.resolve_price_sync_conflicts(uuid, text, uuid) is
    'Resolve held conflicts of a restaurant (one product or all): keep ''ours'' pushes our price, keep '
    '''theirs'' copies Loyverse''s price into our product. Returns the conflicts resolved.';
