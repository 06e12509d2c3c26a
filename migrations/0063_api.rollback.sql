-- Undo 0063: no API keys, audit columns, settings audit trigger, import requests or chart.
-- Log rows of the new kinds (SETTINGS_CHANGE, API_KEY) are deleted: the old CHECK refuses them.
drop view loyverse.audit_trail;
drop view loyverse.api_keys;
drop function loyverse.price_sync_timeline(uuid, integer, integer);
drop function loyverse.request_menu_import(uuid, jsonb);
drop function loyverse.api_key_lookup(bytea);
drop function loyverse.revoke_api_key(text);
drop function loyverse.create_api_key(text, bytea, uuid, boolean);
drop trigger _100_log_change on loyverse.loyverse_price_sync_settings;
drop function loyverse.tg_price_sync_settings__log_change();
drop table loyverse.loyverse_api_keys;
revoke select on loyverse.price_sync_status, loyverse.price_sync_history, loyverse.import_runs from loyverse_app;
delete from loyverse.loyverse_sync_logs where sync_type in ('SETTINGS_CHANGE', 'API_KEY');
alter table loyverse.loyverse_sync_logs drop constraint sync_type_is_valid;
alter table loyverse.loyverse_sync_logs add constraint sync_type_is_valid check (sync_type in
    ('PRICE_SYNC', 'MENU_IMPORT', 'IMPORT_UNDO', 'MANUAL_TRIGGER', 'RETRY', 'NOTIFICATION'));
alter table loyverse.loyverse_sync_logs drop column db_role;
alter table loyverse.loyverse_sync_logs drop column actor;
drop function loyverse.current_actor();
drop index loyverse.loyverse_price_sync_queue_restaurant_id_completed_at_idx;
