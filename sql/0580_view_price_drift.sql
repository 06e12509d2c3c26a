-- The DBA's view of reconciliation: every mapped product whose price (as we would send it)
-- or availability differs from Loyverse at the last `sync reconcile`, and what was repaired.
create view loyverse.price_drift as
select d.restaurant_id,
       r.name as restaurant_name,
       d.product_id,
       p.name as product_name,
       d.kind,
       d.our_price,
       d.loyverse_price,
       d.our_available,
       d.loyverse_available,
       d.loyverse_item_id,
       d.loyverse_variant_id,
       d.found_at,
       d.repaired_at,
       d.repair
  from loyverse.loyverse_price_drift d
  join public.restaurants r on r.id = d.restaurant_id
  join public.products p on p.id = d.product_id;

comment on view loyverse.price_drift is
    'Drift found by the last reconciliation per restaurant: kind price (our_price = the price we would send, '
    'after rounding and price factor), availability, or missing (the item or variant is gone in Loyverse); '
    'repaired_at/repair once `sync reconcile --repair` fixed it.';
