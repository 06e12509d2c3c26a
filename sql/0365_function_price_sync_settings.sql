-- SQL API: a restaurant's price-sync settings as one jsonb document.
create function loyverse.price_sync_settings(p_restaurant_id uuid)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return to_jsonb(loyverse._price_sync_restaurant(p_restaurant_id)) - 'created_at';
end;
$$;
comment on function loyverse.price_sync_settings(uuid) is
    'A restaurant''s price-sync settings as jsonb. Example: select loyverse.price_sync_settings(''<uuid>'');';
