-- Each restaurant with its Loyverse account and store, product counts and sync settings.
create view loyverse.restaurant_overview as
select r.id as restaurant_id,
       r.name,
       l.account_id,
       a.name as account_name,
       l.store_id,
       l.store_name,
       (select count(*) from public.products p where p.restaurant_id = r.id) as products,
       (select count(*) from loyverse.loyverse_item_mappings m where m.restaurant_id = r.id) as mapped_products,
       s.enabled as sync_enabled,
       s.sync_direction,
       s.sync_frequency,
       s.paused
  from public.restaurants r
  left join loyverse.loyverse_restaurant_links l on l.restaurant_id = r.id
  left join loyverse.loyverse_accounts a on a.id = l.account_id
  left join loyverse.loyverse_price_sync_settings s on s.restaurant_id = r.id;

comment on view loyverse.restaurant_overview is 'Each restaurant with its Loyverse account and store, product counts and sync settings.';
