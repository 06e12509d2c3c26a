-- SQL API: a person refuses held changes: they are cancelled and never sent. Our product keeps
-- the refused price until someone corrects it (UPDATE products SET price = ...), which queues
-- the corrected price as usual.
create function loyverse.reject_held_price_changes(p_restaurant_id uuid, p_product_id uuid default null)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_count integer;
begin
    perform loyverse._price_sync_restaurant(p_restaurant_id);
    if p_product_id is not null and not exists (select 1 from public.products p
                                                where p.id = p_product_id and p.restaurant_id = p_restaurant_id) then
        raise exception 'product: no product % in restaurant %', p_product_id, p_restaurant_id
            using errcode = 'no_data_found', column = 'product';
    end if;
    update loyverse.loyverse_price_sync_queue h
       set status = 'cancelled', completed_at = now(), updated_at = now(),
           last_error = 'rejected by ' || session_user || ': ' || coalesce(h.last_error, 'held')
     where h.status = 'held' and h.restaurant_id = p_restaurant_id
       and (p_product_id is null or h.product_id = p_product_id);
    get diagnostics v_count = row_count;
    insert into loyverse.loyverse_sync_logs (restaurant_id, sync_type, status, items_total, details, completed_at)
    values (p_restaurant_id, 'REJECT', 'SUCCESS', v_count,
            jsonb_build_object('product_id', p_product_id, 'by', session_user), now());
    return v_count;
end;
$$;
comment on function loyverse.reject_held_price_changes(uuid, uuid) is
    'Refuse the held price changes of a restaurant (all, or one product): cancelled, never sent; correct the '
    'product''s price to send another. Returns the changes refused.';
