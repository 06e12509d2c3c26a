-- SQL API: a person releases held changes (past the guardrails) to be sent. Each becomes
-- pending again, due now with a priority above routine changes, marked approved so the claim
-- does not hold it again; a held change whose product has a newer change queued is
-- superseded (cancelled) instead: the newer price is the one to send, and the claim checks it.
create function loyverse.approve_held_price_changes(p_restaurant_id uuid, p_product_id uuid default null)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_settings loyverse.loyverse_price_sync_settings := loyverse._price_sync_restaurant(p_restaurant_id);
    v_account bigint;
    v_count integer;
begin
    if p_product_id is not null and not exists (select 1 from public.products p
                                                where p.id = p_product_id and p.restaurant_id = p_restaurant_id) then
        raise exception 'product: no product % in restaurant %', p_product_id, p_restaurant_id
            using errcode = 'no_data_found', column = 'product';
    end if;
    update loyverse.loyverse_price_sync_queue h
       set status = 'cancelled', completed_at = now(), updated_at = now(),
           last_error = 'held change superseded by a newer change'
     where h.status = 'held' and h.restaurant_id = p_restaurant_id
       and (p_product_id is null or h.product_id = p_product_id)
       and exists (select 1 from loyverse.loyverse_price_sync_queue n
                    where n.product_id = h.product_id and n.id > h.id and n.status in ('pending', 'processing', 'held'));
    update loyverse.loyverse_price_sync_queue h
       set status = 'pending', approved_at = now(), approved_by = session_user,
           next_attempt_at = now(), priority = greatest(h.priority, v_settings.priority + 200),
           last_error = 'approved: ' || coalesce(h.last_error, 'held'), updated_at = now()
     where h.status = 'held' and h.restaurant_id = p_restaurant_id
       and (p_product_id is null or h.product_id = p_product_id);
    get diagnostics v_count = row_count;
    select l.account_id into v_account from loyverse.loyverse_restaurant_links l where l.restaurant_id = p_restaurant_id;
    insert into loyverse.loyverse_sync_logs (restaurant_id, account_id, sync_type, status, items_total, details, completed_at)
    values (p_restaurant_id, v_account, 'APPROVE', 'SUCCESS', v_count,
            jsonb_build_object('product_id', p_product_id, 'by', session_user), now());
    if v_count > 0 and v_account is not null and not v_settings.paused then
        perform loyverse.wake_price_sync(v_account);
    end if;
    return v_count;
end;
$$;
comment on function loyverse.approve_held_price_changes(uuid, uuid) is
    'Release the held price changes of a restaurant (all, or one product): they are sent as they are, past the '
    'guardrails. A held change with a newer change of its product queued is cancelled instead. Returns the '
    'changes released. Example: select loyverse.approve_held_price_changes(''<restaurant uuid>'');';
