-- SQL API: pause a restaurant's price sync. Changes keep being queued; nothing is sent.
create function loyverse.pause_price_sync(p_restaurant_id uuid)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_settings loyverse.loyverse_price_sync_settings := loyverse._price_sync_restaurant(p_restaurant_id);
begin
    if v_settings.paused then
        return false;
    end if;
    update loyverse.loyverse_price_sync_settings s
       set paused = true, paused_at = now(), updated_at = now()
     where s.restaurant_id = p_restaurant_id;
    return true;
end;
$$;
comment on function loyverse.pause_price_sync(uuid) is
    'Pause a restaurant''s price sync (changes are still queued, none is sent); false when already paused.';
