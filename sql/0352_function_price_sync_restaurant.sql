-- Internal helper of the SQL API: the settings row of a restaurant, or an error naming the field.
create function loyverse._price_sync_restaurant(p_restaurant_id uuid)
returns loyverse.loyverse_price_sync_settings
language plpgsql
stable
set search_path = ''
as $$
declare
    v_settings loyverse.loyverse_price_sync_settings;
begin
    if p_restaurant_id is null then
        raise exception 'restaurant: required' using errcode = 'invalid_parameter_value', column = 'restaurant';
    end if;
    select * into v_settings from loyverse.loyverse_price_sync_settings s where s.restaurant_id = p_restaurant_id;
    if not found then
        if not exists (select 1 from public.restaurants r where r.id = p_restaurant_id) then
            raise exception 'restaurant: no restaurant with id %', p_restaurant_id
                using errcode = 'no_data_found', column = 'restaurant';
        end if;
        raise exception 'restaurant: % is not linked to a Loyverse store (no price-sync settings)', p_restaurant_id
            using errcode = 'no_data_found', column = 'restaurant';
    end if;
    return v_settings;
end;
$$;
comment on function loyverse._price_sync_restaurant(uuid) is
    'Internal: the price-sync settings row of a restaurant; raises an error naming "restaurant" when there is none.';
