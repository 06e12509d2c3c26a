-- The HTTP server (loyverse_sync/web/) and `loyverse-sync apikey`.

-- name: create_key
select loyverse.create_api_key(%(name)s, %(hash)s, %(restaurant_id)s::uuid, %(admin)s) as id

-- name: revoke_key
select loyverse.revoke_api_key(%(name)s) as revoked

-- name: lookup_key
select key_id, name, restaurant_id, is_admin from loyverse.api_key_lookup(%(hash)s)

-- name: list_keys
select id, name, scope, restaurant_id, restaurant_name, status, created_at, created_by, last_used_at,
       revoked_at, revoked_by
  from loyverse.api_keys order by id

-- name: set_actor
select set_config('loyverse.actor', %(actor)s, true) as actor

-- name: restaurants
select r.id as restaurant_id, r.name as restaurant_name, l.store_id, l.store_name
  from public.restaurants r
  left join loyverse.loyverse_restaurant_links l on l.restaurant_id = r.id
 where %(restaurant_id)s::uuid is null or r.id = %(restaurant_id)s::uuid
 order by r.name, r.id

-- name: restaurant_exists
select exists (select 1 from public.restaurants r where r.id = %(restaurant_id)s::uuid) as found

-- name: request_import
select loyverse.request_menu_import(%(restaurant_id)s::uuid, %(request)s::jsonb) as run_id

-- name: import_run
select v.run_id, v.restaurant_id, v.restaurant_name, v.snapshot_id, v.snapshot_fetched_at, v.status, v.dry_run,
       v.items_done, v.items_total, v.percent_done, v.created_count, v.updated_count, v.skipped_count,
       v.duplicated_count, v.failed_count, v.error, v.started_at, v.completed_at, v.undone_at,
       v.options ->> 'requested_by' as requested_by,
       case when v.status = 'PENDING' then coalesce(r.report ->> 'phase', 'queued')
            when v.status = 'RUNNING' and v.items_total = 0 and r.report ->> 'phase' = 'planning' then 'planning'
            when v.status = 'RUNNING' then 'importing' else 'finished' end as phase,
       case when v.status = 'PENDING' then (r.report ->> 'fetched_items')::int end as fetched_items,
       -- while planning: items planned of the menu's items, then the plan's steps after them
       case when v.status = 'RUNNING' and v.items_total = 0 and r.report ? 'plan_stage'
            then jsonb_build_object('stage', r.report ->> 'plan_stage', 'done', (r.report ->> 'plan_done')::bigint,
                                    'total', (r.report ->> 'plan_total')::bigint, 'at', r.report -> 'plan_at') end as planning,
       exists (select 1 from pg_catalog.pg_locks k
                where k.locktype = 'advisory' and k.classid = 7301 and k.objid = v.run_id::oid
                  and k.objsubid = 2 and k.granted) as locked
  from loyverse.import_runs v
  join loyverse.loyverse_import_runs r on r.id = v.run_id
 where v.run_id = %(run_id)s and not v.dry_run

-- name: import_items
select p.variant_id, p.item_id, p.item_name, p.name, p.sku, p.price, p.decision, p.match_rule, p.matched_name,
       p.outcome, p.errors
  from loyverse.loyverse_import_plan p
 where p.run_id = %(run_id)s
   and (not %(errors_only)s or p.outcome = 'failed' or cardinality(p.errors) > 0)
 order by p.row_no
 limit %(limit)s offset %(offset)s

-- name: import_runs
select v.run_id, v.status, v.items_done, v.items_total, v.created_count, v.updated_count, v.skipped_count,
       v.duplicated_count, v.failed_count, v.started_at, v.completed_at, v.undone_at,
       v.options ->> 'requested_by' as requested_by
  from loyverse.import_runs v
 where v.restaurant_id = %(restaurant_id)s::uuid and not v.dry_run
 order by v.run_id desc
 limit %(limit)s

-- name: import_issues
select i.severity, i.code, i.item_id, i.variant_id, i.name, i.message
  from loyverse.loyverse_import_issues i
 where i.run_id = %(run_id)s
 order by case i.severity when 'error' then 0 when 'warning' then 1 else 2 end, i.id
 limit 500

-- name: sync_status
select * from loyverse.price_sync_status where restaurant_id = %(restaurant_id)s::uuid

-- name: sync_status_all
select * from loyverse.price_sync_status order by restaurant_name

-- name: sync_history
select log_id, started_at, completed_at, duration, sync_type, status, items_total, items_succeeded,
       items_failed, items_skipped, requests_made, error_details
  from loyverse.price_sync_history
 where %(restaurant_id)s::uuid = any (restaurant_ids)
 order by started_at desc, log_id desc
 limit %(limit)s offset %(offset)s

-- name: sync_problems
select queue_id, product_id, product_name, status, old_price, new_price, current_price, attempts,
       max_attempts, last_error_code, last_error, error_details, created_at, completed_at
  from loyverse.price_sync_problems
 where restaurant_id = %(restaurant_id)s::uuid
 order by queue_id
 limit %(limit)s

-- name: trigger
select loyverse.trigger_price_sync(%(restaurant_id)s::uuid, %(full)s::boolean) as due

-- name: retry
select loyverse.retry_price_sync(%(restaurant_id)s::uuid, %(product_id)s::uuid, %(status)s) as queued

-- name: resolve
select loyverse.resolve_price_sync_conflicts(%(restaurant_id)s::uuid, %(keep)s, %(product_id)s::uuid) as resolved

-- name: held
select queue_id, product_id, product_name, loyverse_price, new_price, price_to_send, current_price, reason_code,
       reason, held_at, source
  from loyverse.price_sync_held
 where restaurant_id = %(restaurant_id)s::uuid
 order by held_at, queue_id
 limit %(limit)s

-- name: approve_held
select loyverse.approve_held_price_changes(%(restaurant_id)s::uuid, %(product_id)s::uuid) as approved

-- name: reject_held
select loyverse.reject_held_price_changes(%(restaurant_id)s::uuid, %(product_id)s::uuid) as rejected

-- name: settings
select loyverse.price_sync_settings(%(restaurant_id)s::uuid) as settings

-- name: update_settings
select loyverse.update_price_sync_settings(%(restaurant_id)s::uuid, %(changes)s::jsonb) as settings

-- name: categories
select c.id, c.name from public.categories c where c.restaurant_id = %(restaurant_id)s::uuid order by c.name, c.id

-- name: timeline
select bucket_end, queue_depth, synced, failed
  from loyverse.price_sync_timeline(%(restaurant_id)s::uuid, %(minutes)s, %(buckets)s)

-- name: audit
select log_id, at, action, status, actor, db_role, details
  from loyverse.audit_trail
 where restaurant_id = %(restaurant_id)s::uuid
 order by log_id desc
 limit %(limit)s

-- name: product_of_restaurant
select exists (select 1 from public.products p
                where p.id = %(product_id)s::uuid and p.restaurant_id = %(restaurant_id)s::uuid) as found
