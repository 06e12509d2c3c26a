-- The periodic safety net (every minute, from the worker's periodic task): release expired
-- leases, close pending rows whose product lost its mapping, and wake every account with
-- due rows (BATCH_* restaurants at their boundary, backoffs that ended, lost wake-ups).
create function loyverse.sweep_price_sync()
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_released integer;
    v_orphans integer;
    v_woken integer := 0;
    v_account bigint;
begin
    v_released := loyverse.release_expired_price_sync_leases(null);
    update loyverse.loyverse_price_sync_queue q
       set status = 'cancelled', completed_at = now(), updated_at = now(),
           last_error = 'product no longer mapped to Loyverse'
     where q.status = 'pending'
       and not exists (select 1 from loyverse.loyverse_item_mappings m where m.product_id = q.product_id);
    get diagnostics v_orphans = row_count;
    for v_account in
        select distinct q.account_id
          from loyverse.loyverse_price_sync_queue q
          join loyverse.loyverse_price_sync_settings s on s.restaurant_id = q.restaurant_id
         where q.status = 'pending' and q.next_attempt_at <= now() and not s.paused
    loop
        if loyverse.wake_price_sync(v_account) then
            v_woken := v_woken + 1;
        end if;
    end loop;
    return jsonb_build_object('released', v_released, 'orphans', v_orphans, 'woken', v_woken);
end;
$$;
comment on function loyverse.sweep_price_sync() is
    'Periodic safety net: release expired leases, cancel unmapped pending rows, wake accounts with due rows.';
