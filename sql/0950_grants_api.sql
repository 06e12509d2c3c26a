-- Grants of the HTTP server's objects. The server and the CLI run as loyverse_worker; the
-- main app (loyverse_app) may request imports, read the chart, and read the status,
-- history, import and audit views; every new function is revoked from PUBLIC first.
revoke execute on function
    loyverse.tg_price_sync_settings__log_change(),
    loyverse.create_api_key(text, bytea, uuid, boolean),
    loyverse.revoke_api_key(text),
    loyverse.api_key_lookup(bytea),
    loyverse.request_menu_import(uuid, jsonb),
    loyverse.price_sync_timeline(uuid, integer, integer)
  from public;

-- current_actor() only reads a session setting: every role writing an audited row needs it
-- (it is loyverse_sync_logs.actor's default).
grant execute on function loyverse.current_actor() to public;

grant execute on function
    loyverse.create_api_key(text, bytea, uuid, boolean),
    loyverse.revoke_api_key(text),
    loyverse.api_key_lookup(bytea)
  to loyverse_worker;

grant execute on function
    loyverse.request_menu_import(uuid, jsonb),
    loyverse.price_sync_timeline(uuid, integer, integer)
  to loyverse_app, loyverse_worker;

grant select, insert, update, delete on loyverse.loyverse_api_keys to loyverse_worker;
grant usage, select on sequence loyverse.loyverse_api_keys_id_seq to loyverse_worker;

revoke all on loyverse.api_keys, loyverse.audit_trail from loyverse_app, loyverse_worker, loyverse_readonly;
grant select on loyverse.api_keys to loyverse_worker, loyverse_readonly;  -- names and scopes, never hashes
grant select on loyverse.audit_trail to loyverse_app, loyverse_worker, loyverse_readonly;
grant select on loyverse.price_sync_status, loyverse.price_sync_history, loyverse.import_runs to loyverse_app;
