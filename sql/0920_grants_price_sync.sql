-- Grants of the price-sync objects. Functions are not executable by PUBLIC; the SQL API is
-- for the main app (loyverse_app) and the worker/CLI (loyverse_worker); the views are what
-- loyverse_readonly may read.
revoke execute on function
    loyverse.round_price(numeric, text, integer),
    loyverse.price_to_send(numeric, text, integer, numeric),
    loyverse.price_sync_due_at(text),
    loyverse.wake_price_sync(bigint),
    loyverse.tg_products__enqueue_price_sync(),
    loyverse.tg_accounts__delete_price_sync_rows(),
    loyverse.tg_products__delete_price_sync_rows(),
    loyverse.tg_products__note_price_change(),
    loyverse.tg_price_sync_queue__count_outcome(),
    loyverse.enqueue_current_prices(uuid[], text, integer, timestamptz),
    loyverse.release_expired_price_sync_leases(bigint),
    loyverse.claim_price_sync_batch(bigint, text, integer, double precision, integer),
    loyverse.extend_price_sync_lease(text, double precision),
    loyverse.complete_price_sync_batch(text, jsonb, integer, jsonb, timestamptz),
    loyverse._price_sync_restaurant(uuid),
    loyverse._price_sync_out_of_sync(uuid),
    loyverse._add_outcome_totals(uuid[], text[]),
    loyverse.category_is_synced(uuid, uuid[], uuid[]),
    loyverse.trigger_price_sync(uuid, boolean),
    loyverse.retry_price_sync(uuid, uuid, text),
    loyverse.price_sync_settings(uuid),
    loyverse.update_price_sync_settings(uuid, jsonb),
    loyverse.pause_price_sync(uuid),
    loyverse.resume_price_sync(uuid),
    loyverse.resolve_price_sync_conflicts(uuid, text, uuid),
    loyverse.sweep_price_sync(),
    loyverse.prune_price_sync_queue(interval, integer),
    loyverse.enqueue_price_sync_digests(interval)
  from public;

-- A role that changes prices runs the products trigger, which is SECURITY INVOKER (see
-- sql/0330) and calls loyverse.enqueue_price_changes: it needs the schema and that function,
-- which only loyverse_app and loyverse_worker may execute (the main app's roles are members
-- of loyverse_app), and which refuses any caller but the products trigger (sql/0332).
grant usage on schema loyverse to public;
revoke execute on function loyverse.enqueue_price_changes(uuid[], numeric[]) from public;
grant execute on function loyverse.enqueue_price_changes(uuid[], numeric[]) to loyverse_app, loyverse_worker;

grant execute on function
    loyverse.round_price(numeric, text, integer),
    loyverse.price_to_send(numeric, text, integer, numeric),
    loyverse.trigger_price_sync(uuid, boolean),
    loyverse.retry_price_sync(uuid, uuid, text),
    loyverse.price_sync_settings(uuid),
    loyverse.update_price_sync_settings(uuid, jsonb),
    loyverse.pause_price_sync(uuid),
    loyverse.resume_price_sync(uuid),
    loyverse.resolve_price_sync_conflicts(uuid, text, uuid),
    loyverse.approve_held_price_changes(uuid, uuid),
    loyverse.reject_held_price_changes(uuid, uuid),
    loyverse.make_price_fixed(uuid, uuid)
  to loyverse_app, loyverse_worker;

grant execute on function
    loyverse.price_sync_due_at(text),
    loyverse.wake_price_sync(bigint),
    loyverse.wake_price_sync_when_due(bigint),
    loyverse.enqueue_current_prices(uuid[], text, integer, timestamptz),
    loyverse.release_expired_price_sync_leases(bigint),
    loyverse.claim_price_sync_batch(bigint, text, integer, double precision, integer),
    loyverse.extend_price_sync_lease(text, double precision),
    loyverse.complete_price_sync_batch(text, jsonb, integer, jsonb, timestamptz),
    loyverse.sweep_price_sync(),
    loyverse.prune_price_sync_queue(interval, integer),
    loyverse.enqueue_price_sync_digests(interval)
  to loyverse_worker;

-- (revoke first: in a build from sql/, 0900's "all tables in schema" grant already reached them)
revoke all on loyverse.price_sync_status, loyverse.price_sync_history, loyverse.price_sync_problems,
    loyverse.price_sync_queue_health, loyverse.price_sync_held
  from loyverse_app, loyverse_worker, loyverse_readonly;
grant select on loyverse.price_sync_status, loyverse.price_sync_history, loyverse.price_sync_problems,
    loyverse.price_sync_queue_health, loyverse.price_sync_held
  to loyverse_readonly, loyverse_worker;

-- The outcome totals are written only by the queue's triggers and complete_price_sync_batch
-- (SECURITY DEFINER); the worker reads them for `loyverse-sync metrics`.
grant select on loyverse.loyverse_price_sync_outcome_totals to loyverse_worker;
