-- SQL API: "sync this restaurant now". Its pending rows become due at once with a priority
-- above routine changes; p_full also queues every mapped product whose price in Loyverse
-- (as last synced) differs from ours, or was never synced, and that passes the category
-- filters (loyverse._price_sync_out_of_sync).
create function loyverse.trigger_price_sync(p_restaurant_id uuid, p_full boolean default false)
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
    if not v_settings.enabled or v_settings.sync_direction = 'FROM_LOYVERSE' then
        raise exception 'restaurant: price sync to Loyverse is disabled for % (enabled=%, sync_direction=%)',
            p_restaurant_id, v_settings.enabled, v_settings.sync_direction
            using errcode = 'object_not_in_prerequisite_state', column = 'restaurant';
    end if;
    if v_settings.paused then
        raise exception 'restaurant: price sync is paused for %; resume it first', p_restaurant_id
            using errcode = 'object_not_in_prerequisite_state', column = 'restaurant';
    end if;
    select l.account_id into v_account from loyverse.loyverse_restaurant_links l where l.restaurant_id = p_restaurant_id;

    if p_full then
        perform loyverse.enqueue_current_prices(loyverse._price_sync_out_of_sync(p_restaurant_id), 'manual', 200);
    end if;

    update loyverse.loyverse_price_sync_queue q
       set next_attempt_at = now(),
           priority = greatest(q.priority, v_settings.priority + 200),
           updated_at = now()
     where q.restaurant_id = p_restaurant_id and q.status = 'pending';
    get diagnostics v_count = row_count;

    insert into loyverse.loyverse_sync_logs (restaurant_id, account_id, sync_type, status, items_total, details, completed_at)
    values (p_restaurant_id, v_account, 'MANUAL_TRIGGER', 'SUCCESS', v_count,
            jsonb_build_object('full', p_full), now());
    if v_count > 0 and v_account is not null then
        perform loyverse.wake_price_sync(v_account);
    end if;
    return v_count;
end;
$$;
comment on function loyverse.trigger_price_sync(uuid, boolean) is
    'Sync a restaurant now: its pending changes become due with priority + 200 (p_full: also queue every '
    'mapped product not known to be in sync). Returns the rows due. Example: select loyverse.trigger_price_sync(''<uuid>'');';
