-- Who changed what: every loyverse_sync_logs row with its actor (API key, console user, OS
-- user or database role) and the database role of the session that wrote it.
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
 where g.sync_type <> 'PRICE_SYNC';
comment on view loyverse.audit_trail is
    'Changes and who made them: settings changes (details.changes = {setting: {from, to}}), manual triggers, '
    'retries, imports and undos, API keys. actor = api-key:<name> | console:<key name> | cli:<os user> | sql:<role>.';
