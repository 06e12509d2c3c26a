-- Who changed what: every loyverse_sync_logs row with its actor (API key, console user, OS
-- user or database role) and the database role of the session that wrote it. A role of the main
-- app sees only its restaurants' rows (loyverse.readable_restaurants).
create view loyverse.audit_trail as
select g.id as log_id,
       g.started_at as at,
       g.restaurant_id,
       r.name as restaurant_name,
       g.sync_type as action,
       g.status,
       g.actor,
       g.db_role,
       g.items_total,
       g.details
  from loyverse.loyverse_sync_logs g
  left join public.restaurants r on r.id = g.restaurant_id
 where g.sync_type <> 'PRICE_SYNC'
   -- a role of the main app reads only its restaurants' rows (loyverse.readable_restaurants: null = all)
   and ((select loyverse.readable_restaurants(current_user)) is null or g.restaurant_id = any ((select loyverse.readable_restaurants(current_user))::uuid[]));
comment on view loyverse.audit_trail is
    'Changes and who made them: settings changes (details.changes = {setting: {from, to}}), manual triggers, '
    'retries, imports and undos, API keys. actor = api-key:<name> | console:<key name> | cli:<os user> | sql:<role>.';
