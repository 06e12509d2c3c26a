-- Grants of the inbound side (webhooks, polling, reconciliation): nothing for PUBLIC; the
-- receiver and worker (loyverse_worker) run the internals; the app may reconcile and repair.
revoke execute on function
    loyverse.wake_inbox(bigint),
    loyverse.receive_loyverse_delivery(bigint, text, jsonb, bytea),
    loyverse.record_rejected_delivery(bigint, text, jsonb),
    loyverse._apply_loyverse_price(bigint, uuid, numeric, timestamptz, timestamptz),
    loyverse._apply_loyverse_item(bigint, bigint, jsonb, timestamptz),
    loyverse._apply_loyverse_deletion(bigint, bigint, text, text, text),
    loyverse._apply_loyverse_rename(bigint, bigint, text, text, text),
    loyverse._apply_loyverse_inventory_level(bigint, bigint, jsonb),
    loyverse.apply_loyverse_inbox(bigint, integer),
    loyverse.record_price_drift(uuid, jsonb),
    loyverse.repair_price_drift(uuid),
    loyverse.inbound_settings_row(bigint),
    loyverse.due_inbound_polls(),
    loyverse.finish_inbound_poll(bigint, timestamptz),
    loyverse.inbound_account_for_secret(text),
    loyverse.wake_pending_inboxes(),
    loyverse.prune_loyverse_inbox(interval, integer)
  from public;

grant execute on function
    loyverse.record_price_drift(uuid, jsonb),
    loyverse.repair_price_drift(uuid)
  to loyverse_app, loyverse_worker;

grant execute on function
    loyverse.wake_inbox(bigint),
    loyverse.receive_loyverse_delivery(bigint, text, jsonb, bytea),
    loyverse.record_rejected_delivery(bigint, text, jsonb),
    loyverse.apply_loyverse_inbox(bigint, integer),
    loyverse.inbound_settings_row(bigint),
    loyverse.due_inbound_polls(),
    loyverse.finish_inbound_poll(bigint, timestamptz),
    loyverse.inbound_account_for_secret(text),
    loyverse.wake_pending_inboxes(),
    loyverse.prune_loyverse_inbox(interval, integer)
  to loyverse_worker;

-- (revoke first: in a build from sql/, 0900's "all tables in schema" grant already reached them)
revoke all on loyverse.price_drift, loyverse.inbound_decisions from loyverse_app, loyverse_worker, loyverse_readonly;
grant select on loyverse.price_drift, loyverse.inbound_decisions to loyverse_readonly, loyverse_worker;

-- The CLI (`account subscribe`, `sync reconcile`) reads and writes the inbound settings and reads the rest.
grant select, insert, update on loyverse.loyverse_inbound_settings to loyverse_worker;
grant select on loyverse.loyverse_inbox, loyverse.loyverse_inbound_audit, loyverse.loyverse_inbound_objects,
    loyverse.loyverse_price_drift
  to loyverse_worker;
