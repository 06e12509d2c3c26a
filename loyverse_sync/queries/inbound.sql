-- The inbound side: webhooks, polling, reconciliation (loyverse_sync/inbound, worker/inbound_tasks.py,
-- cli/inbound.py).

-- name: apply_inbox
select loyverse.apply_loyverse_inbox(%(account_id)s::bigint, %(limit)s::int) as result

-- name: receive
select loyverse.receive_loyverse_delivery(%(account_id)s::bigint, %(source)s, %(headers)s::jsonb,
                                          %(body)s::bytea) as id

-- name: due_polls
select account_id, updated_at_min from loyverse.due_inbound_polls()

-- name: wake_pending
select loyverse.wake_pending_inboxes() as woken

-- name: finish_poll
select loyverse.finish_inbound_poll(%(account_id)s::bigint, %(polled_until)s::timestamptz)

-- name: now
select now() as now

-- name: loyverse_now
-- Now on Loyverse's clock as far as we know it (the polling cursor's start is compared with
-- Loyverse's updated_at): our clock plus the account's measured offset.
select now() + make_interval(secs => coalesce(s.loyverse_clock_offset_ms, 0) / 1000.0) as now
  from (select 1) one
  left join loyverse.loyverse_inbound_settings s on s.account_id = %(account_id)s

-- name: mapped_items
select m.account_id, m.loyverse_item_id
  from loyverse.loyverse_item_mappings m
 where m.restaurant_id = %(restaurant_id)s::uuid

-- name: record_drift
select loyverse.record_price_drift(%(restaurant_id)s::uuid, %(items)s::jsonb) as found

-- name: repair_drift
select loyverse.repair_price_drift(%(restaurant_id)s::uuid) as result

-- name: drift
select kind, product_name, our_price, loyverse_price, our_available, loyverse_available, repaired_at, repair
  from loyverse.price_drift
 where restaurant_id = %(restaurant_id)s::uuid
 order by kind, product_name

-- name: reconcilable_restaurants
select l.restaurant_id::text as id
  from loyverse.loyverse_restaurant_links l
  join loyverse.loyverse_price_sync_settings s on s.restaurant_id = l.restaurant_id
 where s.enabled
 order by l.restaurant_id

-- name: inbound_settings
select account_id, url_secret, webhook_url, client_secret_key_id is not null as signed, poll_enabled,
       poll_interval_seconds, poll_overlap_seconds, polled_until, last_polled_at, loyverse_clock_offset_ms
  from loyverse.inbound_settings_row(%(account_id)s::bigint)

-- name: set_subscription
update loyverse.loyverse_inbound_settings
   set webhook_url = %(webhook_url)s,
       client_secret_ciphertext = coalesce(%(ciphertext)s::bytea, client_secret_ciphertext),
       client_secret_key_id = coalesce(%(key_id)s, client_secret_key_id),
       updated_at = now()
 where account_id = %(account_id)s::bigint

-- name: account_for_secret
select account_id, client_secret_ciphertext, client_secret_key_id
  from loyverse.inbound_account_for_secret(%(secret)s)

-- name: record_rejected
select loyverse.record_rejected_delivery(%(account_id)s::bigint, %(reason)s, %(details)s::jsonb)

-- name: prune_inbox
select loyverse.prune_loyverse_inbox(make_interval(secs => %(older_than_seconds)s), %(limit)s::int) as pruned

-- name: set_polling
update loyverse.loyverse_inbound_settings
   set poll_enabled = coalesce(%(enabled)s, poll_enabled),
       poll_interval_seconds = coalesce(%(interval)s, poll_interval_seconds),
       poll_overlap_seconds = coalesce(%(overlap)s, poll_overlap_seconds),
       updated_at = now()
 where account_id = %(account_id)s::bigint
