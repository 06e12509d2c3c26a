-- Alert breaches, open and recovered, per restaurant.
create view loyverse.alerts as
select a.restaurant_id, r.name as restaurant_name, a.alert, a.breached_at, a.recovered_at, a.value, a.threshold,
       a.recovered_at is null as open
  from loyverse.loyverse_alert_state a
  join public.restaurants r on r.id = a.restaurant_id;

comment on view loyverse.alerts is 'Alert breaches, open and recovered, per restaurant.';
