-- Grants of the per-role restaurant filter: the views' readers call readable_restaurants
-- (a view's functions run with the reader's privileges); the CLI (loyverse_worker) manages grants.
revoke all on loyverse.loyverse_restaurant_roles, loyverse.restaurant_roles
  from loyverse_app, loyverse_worker, loyverse_readonly;
revoke execute on function loyverse.readable_restaurants(name), loyverse.grant_restaurant_to_role(text, uuid),
    loyverse.revoke_restaurant_from_role(text, uuid) from public;
grant execute on function loyverse.readable_restaurants(name) to loyverse_app, loyverse_worker, loyverse_readonly;
grant execute on function loyverse.grant_restaurant_to_role(text, uuid), loyverse.revoke_restaurant_from_role(text, uuid)
  to loyverse_worker;
grant select on loyverse.restaurant_roles to loyverse_worker, loyverse_readonly;
