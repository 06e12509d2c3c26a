-- SQL API: resume a paused restaurant; what is due is sent at once.
create function loyverse.resume_price_sync(p_restaurant_id uuid)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_settings loyverse.loyverse_price_sync_settings := loyverse._price_sync_restaurant(p_restaurant_id);
    v_account bigint;
begin
    if not v_settings.paused then
        return false;
    end if;
    update loyverse.loyverse_price_sync_settings s
       set paused = false, paused_at = null, updated_at = now()
     where s.restaurant_id = p_restaurant_id;
    select q.account_id into v_account from loyverse.loyverse_price_sync_queue q
     where q.restaurant_id = p_restaurant_id and q.status = 'pending' and q.next_attempt_at <= now()
     limit 1;
    if v_account is not null then
        perform loyverse.wake_price_sync(v_account);
    end if;
    return true;
end;
$$;
comment on function loyverse.resume_price_sync(uuid) is
    'Resume a paused restaurant''s price sync and wake its worker; false when it was not paused.';
