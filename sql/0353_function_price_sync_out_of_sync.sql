-- The mapped products of a restaurant whose price in Loyverse is not known to be the one we
-- would send now: the price sent by an in-flight (processing) row, else the mapping's last
-- synced price, differs from the current price rounded under the current settings, or was
-- never synced. Only FIXED prices (a VARIABLE one is entered at the counter) of products that
-- pass the category filters, and none with a pending row (it already carries the current
-- price) or a conflict or held change waiting for a person.
-- Used by a full manual sync and by a settings change that widens what is synced.
create function loyverse._price_sync_out_of_sync(p_restaurant_id uuid)
returns uuid[]
language sql
stable
set search_path = ''
as $$
    select coalesce(array_agg(m.product_id order by m.product_id), '{}')
      from loyverse.loyverse_item_mappings m
      join public.products p on p.id = m.product_id
      join loyverse.loyverse_accounts a on a.id = m.account_id
      join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id
     where m.restaurant_id = p_restaurant_id
       and m.loyverse_pricing_type = 'FIXED'
       and loyverse.category_is_synced(p.category_id, s.include_category_ids, s.exclude_category_ids)
       and coalesce((select q.price_to_send from loyverse.loyverse_price_sync_queue q
                      where q.product_id = m.product_id and q.status = 'processing'
                      order by q.id desc limit 1),
                    m.last_synced_price)
           is distinct from loyverse.price_to_send(p.price, s.price_rounding_rule, a.decimal_places, m.price_factor)
       and not exists (select 1 from loyverse.loyverse_price_sync_queue q
                        where q.product_id = m.product_id and q.status in ('pending', 'conflict', 'held'))
$$;
comment on function loyverse._price_sync_out_of_sync(uuid) is
    'Internal: the mapped products of a restaurant with a FIXED price (category filters passed) whose price in '
    'Loyverse is not known to be the one we would send now, and with no pending, conflict or held row.';
