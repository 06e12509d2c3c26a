-- Price sync (loyverse_sync/pricesync, loyverse_sync/worker, cli/sync.py).

-- name: claim_batch
select * from loyverse.claim_price_sync_batch(
    %(account_id)s::bigint, %(claimed_by)s, %(max_items)s::int, %(lease_seconds)s::double precision,
    %(scan_rows)s::int)

-- name: extend_lease
select loyverse.extend_price_sync_lease(%(claimed_by)s, %(lease_seconds)s::double precision) as held

-- name: complete_batch
select loyverse.complete_price_sync_batch(
    %(claimed_by)s, %(results)s::jsonb, %(requests_made)s::int, %(details)s::jsonb,
    %(started_at)s::timestamptz, %(backoff_base)s::double precision,
    %(backoff_cap)s::double precision) as counts

-- name: accounts_with_due_rows
select distinct q.account_id
  from loyverse.loyverse_price_sync_queue q
  join loyverse.loyverse_price_sync_settings s on s.restaurant_id = q.restaurant_id
 where q.status = 'pending' and q.next_attempt_at <= now() and not s.paused

-- name: sweep
select loyverse.sweep_price_sync() as result

-- name: prune
select loyverse.prune_price_sync_queue(make_interval(secs => %(older_than_seconds)s::double precision),
                                       %(limit)s::int) as deleted

-- name: enqueue_digests
select loyverse.enqueue_price_sync_digests(make_interval(secs => %(interval_seconds)s::double precision)) as queued

-- name: claim_notifications
with picked as (
    select o.id from loyverse.loyverse_notification_outbox o
     where o.status = 'pending' and o.next_attempt_at <= now()
     order by o.next_attempt_at, o.id
     limit %(limit)s
       for update skip locked
)
update loyverse.loyverse_notification_outbox o
   set status = 'sending', attempts = o.attempts + 1
  from picked
 where o.id = picked.id
returning o.id, o.recipient, o.subject, o.body, o.attempts, o.kind, o.restaurant_id

-- name: notification_sent
update loyverse.loyverse_notification_outbox
   set status = 'sent', sent_at = now(), last_error = null
 where id = %(id)s

-- name: notification_failed
update loyverse.loyverse_notification_outbox
   set status = case when attempts >= %(max_attempts)s then 'failed' else 'pending' end,
       next_attempt_at = now() + make_interval(secs => %(delay_seconds)s::double precision),
       last_error = %(error)s
 where id = %(id)s

-- name: release_stuck_notifications
update loyverse.loyverse_notification_outbox
   set status = 'pending'
 where status = 'sending' and next_attempt_at < now() - interval '10 minutes'

-- name: trigger
select loyverse.trigger_price_sync(%(restaurant_id)s::uuid, %(full)s::boolean) as due

-- name: retry
select loyverse.retry_price_sync(%(restaurant_id)s::uuid, %(product_id)s::uuid, %(status)s) as queued

-- name: settings
select loyverse.price_sync_settings(%(restaurant_id)s::uuid) as settings

-- name: update_settings
select loyverse.update_price_sync_settings(%(restaurant_id)s::uuid, %(changes)s::jsonb) as settings

-- name: pause
select loyverse.pause_price_sync(%(restaurant_id)s::uuid) as changed

-- name: resume
select loyverse.resume_price_sync(%(restaurant_id)s::uuid) as changed

-- name: resolve
select loyverse.resolve_price_sync_conflicts(%(restaurant_id)s::uuid, %(keep)s, %(product_id)s::uuid) as resolved

-- name: status
select * from loyverse.price_sync_status
 where %(restaurant_id)s::uuid is null or restaurant_id = %(restaurant_id)s::uuid
 order by restaurant_name

-- name: history
select * from loyverse.price_sync_history
 where %(restaurant_id)s::uuid is null or %(restaurant_id)s::uuid = any (restaurant_ids)
 order by started_at desc, log_id desc
 limit %(limit)s offset %(offset)s

-- name: problems
select * from loyverse.price_sync_problems
 where %(restaurant_id)s::uuid is null or restaurant_id = %(restaurant_id)s::uuid
 order by queue_id

-- name: resolve_product
select id from public.products
 where restaurant_id = %(restaurant_id)s::uuid
   and (id::text = %(ref)s or sku = %(ref)s or name = %(ref)s)
 order by (id::text = %(ref)s) desc, (sku = %(ref)s) desc
 limit 2
