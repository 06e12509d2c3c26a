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
    %(started_at)s::timestamptz) as counts

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

-- name: setting_allowed
-- A setting's type and its one-column CHECKs, for the CLI's "allowed: ..." (the catalog is
-- readable by every role).
select format_type(a.atttypid, a.atttypmod) as type,
       (select jsonb_agg(jsonb_build_object('name', c.conname, 'definition', pg_get_constraintdef(c.oid))
                         order by c.conname)
          from pg_catalog.pg_constraint c
         where c.conrelid = a.attrelid and c.contype = 'c' and c.conkey = array[a.attnum]) as checks
  from pg_catalog.pg_attribute a
 where a.attrelid = 'loyverse.loyverse_price_sync_settings'::regclass
   and a.attname = %(column)s and not a.attisdropped

-- name: pause
select loyverse.pause_price_sync(%(restaurant_id)s::uuid) as changed

-- name: resume
select loyverse.resume_price_sync(%(restaurant_id)s::uuid) as changed

-- name: resolve
select loyverse.resolve_price_sync_conflicts(%(restaurant_id)s::uuid, %(keep)s, %(product_id)s::uuid) as resolved

-- name: approve
select loyverse.approve_held_price_changes(%(restaurant_id)s::uuid, %(product_id)s::uuid) as approved

-- name: reject
select loyverse.reject_held_price_changes(%(restaurant_id)s::uuid, %(product_id)s::uuid) as rejected

-- name: make_fixed
select loyverse.make_price_fixed(%(restaurant_id)s::uuid, %(product_id)s::uuid) as queued

-- name: held
select * from loyverse.price_sync_held
 where %(restaurant_id)s::uuid is null or restaurant_id = %(restaurant_id)s::uuid
 order by held_at, queue_id

-- name: status
select * from loyverse.price_sync_status
 where %(restaurant_id)s::uuid is null or restaurant_id = %(restaurant_id)s::uuid
 order by restaurant_name

-- name: history
-- With a restaurant, a batch shared with other restaurants (one account, several stores) counts
-- that restaurant's rows only. They are found in the queue: the rows the batch's claim completed
-- (done, failed, conflict and cancelled rows keep claimed_by) and the rows its error_details
-- names (retried, failed, conflicts; a retried row that went dead in this batch has the
-- batch's completed_at: both are the same transaction's now()). The batch's own figures are
-- shown instead (whole_batch) when rows are missing: done rows pruned after the retention
-- (7 days), rows the claim lost. Released rows (a graceful stop) are recorded nowhere: the
-- batch's count of them is allowed for.
with page as (
    select h.* from loyverse.price_sync_history h
     where %(restaurant_id)s::uuid is null or %(restaurant_id)s::uuid = any (h.restaurant_ids)
     order by h.started_at desc, h.log_id desc
     limit %(limit)s offset %(offset)s
), shared as (
    select p.log_id, p.items_total, g.details ->> 'claim' as claim, g.completed_at, g.error_details,
           coalesce((g.details -> 'counts' ->> 'released')::int, 0) as released
      from page p
      join loyverse.loyverse_sync_logs g on g.id = p.log_id
     where %(restaurant_id)s::uuid is not null and cardinality(p.restaurant_ids) > 1
       and g.sync_type = 'PRICE_SYNC' and g.details ? 'claim'
), found as (
    select s.log_id, q.id, q.restaurant_id, null::text as outcome, q.status
      from shared s
      join loyverse.loyverse_price_sync_queue q on q.claimed_by = s.claim
    union all
    select s.log_id, q.id, q.restaurant_id, e ->> 'outcome', q.status
      from shared s
     cross join lateral jsonb_array_elements(s.error_details) e
      join loyverse.loyverse_price_sync_queue q on q.id = (e ->> 'queue_id')::bigint
), per_row as (
    -- a row both completed by the claim and named in error_details (failed, conflict) once
    select f.log_id, f.id, f.restaurant_id, max(f.outcome) as outcome, max(f.status) as status,
           bool_or(f.outcome is null) as by_claim,
           bool_or(f.status = 'dead' and q.completed_at = s.completed_at) as dead_here
      from found f
      join shared s on s.log_id = f.log_id
      join loyverse.loyverse_price_sync_queue q on q.id = f.id
     group by f.log_id, f.id, f.restaurant_id
), counted as (
    select r.log_id, count(*) as found,
           count(*) filter (where r.restaurant_id = %(restaurant_id)s::uuid) as total,
           count(*) filter (where r.restaurant_id = %(restaurant_id)s::uuid
                              and r.by_claim and r.status = 'done' and r.outcome is null) as succeeded,
           count(*) filter (where r.restaurant_id = %(restaurant_id)s::uuid
                              and (r.outcome = 'failed' or (r.outcome = 'retry' and r.dead_here))) as failed
      from per_row r
     group by r.log_id
)
select p.log_id, p.started_at, p.completed_at, p.duration, p.sync_type, p.status, p.account_id,
       p.restaurant_id, p.restaurant_ids,
       case when exact then c.total else p.items_total end as items_total,
       case when exact then c.succeeded else p.items_succeeded end as items_succeeded,
       case when exact then c.failed else p.items_failed end as items_failed,
       case when exact then c.total - c.succeeded - c.failed else p.items_skipped end as items_skipped,
       p.requests_made, p.error_details,
       s.log_id is not null and not exact as whole_batch
  from page p
  left join shared s on s.log_id = p.log_id
  left join counted c on c.log_id = p.log_id
 cross join lateral (select coalesce(c.found + s.released >= s.items_total, false) as exact) x
 order by p.started_at desc, p.log_id desc

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

-- name: wake_when_due
select loyverse.wake_price_sync_when_due(%(account_id)s::bigint) as due_at

-- name: evaluate_alerts
-- open and close alert breaches (each change queues one ALERT or RECOVERY email)
select count(*) as opened_or_closed from loyverse.evaluate_alerts()
