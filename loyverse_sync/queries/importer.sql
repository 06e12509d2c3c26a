-- Menu import (loyverse_sync/importer/): snapshots, runs, and calls of the import functions.

-- name: restaurant_link
select l.restaurant_id, l.account_id, l.store_id, l.store_name, r.name as restaurant_name
  from loyverse.loyverse_restaurant_links l
  join public.restaurants r on r.id = l.restaurant_id
 where l.restaurant_id = %(restaurant_id)s

-- name: insert_snapshot
insert into loyverse.loyverse_snapshots
    (account_id, restaurant_id, store_id, merchant, with_inventory, requests_made, pages, counts, fetch_seconds)
values (%(account_id)s, %(restaurant_id)s, %(store_id)s, %(merchant)s, %(with_inventory)s, %(requests_made)s,
        %(pages)s, %(counts)s, %(fetch_seconds)s)
returning id, fetched_at

-- name: fresh_snapshot
select s.id, s.fetched_at, s.counts, s.requests_made,
       extract(epoch from now() - s.fetched_at)::double precision as age_seconds
  from loyverse.loyverse_snapshots s
 where s.account_id = %(account_id)s
   and s.fetched_at > now() - make_interval(secs => %(max_age)s)
   and (s.with_inventory or not %(with_inventory)s)
 order by s.fetched_at desc
 limit 1

-- name: get_snapshot
select s.id, s.account_id, s.fetched_at, s.counts, s.requests_made, s.pages, s.fetch_seconds, s.with_inventory
  from loyverse.loyverse_snapshots s where s.id = %(id)s

-- name: unknown_selection
-- The --category, --item and --exclude values that name nothing in the snapshot (matched as
-- import_plan matches them: normalize_name of ids and names), with the snapshot's categories.
with sel as (
    select s.option, s.ref, loyverse.normalize_name(s.ref) as norm
      from jsonb_to_recordset(%(selection)s::jsonb) as s(option text, ref text)
), cats as (
    select o.loyverse_id as id, o.payload ->> 'name' as name
      from loyverse.loyverse_snapshot_objects o
     where o.snapshot_id = %(snapshot_id)s and o.kind = 'category'
       and coalesce(jsonb_typeof(o.payload -> 'deleted_at'), 'null') = 'null'
)
select sel.option, sel.ref,
       (select array_agg(distinct c.name order by c.name) from cats c where c.name is not null) as categories
  from sel
 where not (sel.option in ('--category', '--exclude') and exists (
               select 1 from cats c
                where loyverse.normalize_name(c.id) = sel.norm or loyverse.normalize_name(c.name) = sel.norm))
   and not exists (
           select 1 from loyverse.loyverse_snapshot_objects o
            where o.snapshot_id = %(snapshot_id)s and o.kind = 'item'
              and ((sel.option in ('--category', '--exclude')  -- a category only items name
                    and loyverse.normalize_name(o.payload ->> 'category_id') = sel.norm)
                   or (sel.option in ('--item', '--exclude')
                       and (loyverse.normalize_name(o.loyverse_id) = sel.norm
                            or loyverse.normalize_name(o.payload ->> 'item_name') = sel.norm))))

-- name: insert_run
insert into loyverse.loyverse_import_runs (restaurant_id, account_id, snapshot_id, status, dry_run, options)
values (%(restaurant_id)s, %(account_id)s, %(snapshot_id)s, 'RUNNING', %(dry_run)s, %(options)s)
returning id

-- name: get_run
-- pg_locks is the whole server's: an advisory lock is this database's only when its
-- database column says so (another database's run 1 is not ours).
select r.*, exists (select 1 from pg_catalog.pg_locks k
                     where k.locktype = 'advisory' and k.classid = 7301 and k.objid = r.id::oid
                       and k.objsubid = 2 and k.granted
                       and k.database = (select d.oid from pg_catalog.pg_database d
                                          where d.datname = pg_catalog.current_database())) as locked
  from loyverse.loyverse_import_runs r where r.id = %(id)s

-- name: run_view
select v.*, exists (select 1 from pg_catalog.pg_locks k
                     where k.locktype = 'advisory' and k.classid = 7301 and k.objid = v.run_id::oid
                       and k.objsubid = 2 and k.granted
                       and k.database = (select d.oid from pg_catalog.pg_database d
                                          where d.datname = pg_catalog.current_database())) as locked
  from loyverse.import_runs v where v.run_id = %(id)s

-- name: list_runs
select v.run_id, v.restaurant_name, v.status, v.dry_run, v.items_done, v.items_total, v.created_count,
       v.updated_count, v.skipped_count, v.duplicated_count, v.failed_count, v.started_at, v.completed_at
  from loyverse.import_runs v
 where %(restaurant_id)s::uuid is null or v.restaurant_id = %(restaurant_id)s::uuid
 order by v.run_id desc
 limit %(limit)s

-- name: try_lock_run
select pg_try_advisory_lock(7301, %(id)s::integer) as locked

-- name: unlock_run
select pg_advisory_unlock(7301, %(id)s::integer) as unlocked

-- name: set_progress
update loyverse.loyverse_import_runs
   set items_done = least(items_total, %(done)s), status = 'RUNNING', updated_at = now()
 where id = %(id)s

-- name: set_total
update loyverse.loyverse_import_runs
   set items_total = %(total)s, items_done = least(%(total)s, %(done)s), status = 'RUNNING', updated_at = now()
 where id = %(id)s

-- name: set_plan_progress
-- (import_plan's progress notices, written from another connection: the plan's transaction is
-- still open; plan_at is the planning backend's clock when it sent the notice)
update loyverse.loyverse_import_runs
   set report = report || jsonb_build_object('phase', 'planning', 'plan_stage', %(stage)s::text,
                                             'plan_done', %(done)s::bigint, 'plan_total', %(total)s::bigint,
                                             'plan_at', %(at)s::timestamptz),
       updated_at = now()
 where id = %(id)s and status = 'RUNNING'

-- name: set_failed
update loyverse.loyverse_import_runs
   set status = 'FAILED', error = %(error)s, updated_at = now(), completed_at = now()
 where id = %(id)s and status in ('PENDING', 'RUNNING')

-- name: set_running
update loyverse.loyverse_import_runs
   set status = 'RUNNING', error = null, updated_at = now(), completed_at = null
 where id = %(id)s

-- name: field_map_problems
select loyverse_field, our_column, problem from loyverse.import_field_map_problems(%(map)s::jsonb)

-- name: plan
select loyverse.import_plan(%(id)s) as summary

-- name: plan_summary
select loyverse.import_plan_summary(%(id)s) as summary

-- name: plan_exists
select count(*) as n, count(*) filter (where not done) as pending from loyverse.loyverse_import_plan where run_id = %(id)s

-- name: batches
select batch_no, count(*) as n from loyverse.loyverse_import_plan
 where run_id = %(id)s and not done group by batch_no order by batch_no

-- name: apply_objects
select loyverse.import_apply_objects(%(id)s) as result

-- name: apply_batch
select loyverse.import_apply_batch(%(id)s, %(batch_no)s) as result

-- name: finish
select loyverse.import_finish(%(id)s) as result

-- name: undo
select loyverse.import_undo(%(id)s, %(force)s) as result

-- name: undecided
select p.variant_id, p.item_id, p.name, p.sku, p.match_rule, p.matched_name
  from loyverse.loyverse_import_plan p
 where p.run_id = %(id)s and p.decision is null
 order by p.row_no

-- name: plan_rows
select p.row_no, p.item_id, p.variant_id, p.item_name, p.name, p.sku, p.price, p.loyverse_price, p.is_active,
       p.decision, p.decision_reason, p.match_rule, p.matched_name, p.outcome, p.errors,
       coalesce(c.name, case when p.category_ref is null then null else 'Uncategorised' end) as category
  from loyverse.loyverse_import_plan p
  left join loyverse.loyverse_import_plan_objects c
    on c.run_id = p.run_id and c.kind = 'category' and c.loyverse_id = p.category_ref
 where p.run_id = %(id)s
 order by category nulls last, p.item_seq, p.row_no

-- name: conflicts
select p.variant_id, p.item_id, p.name, p.sku, p.match_rule, p.matched_name, p.decision, p.decision_reason,
       p.price, mp.sku as matched_sku, mp.price as matched_price
  from loyverse.loyverse_import_plan p
  left join public.products mp on mp.id = p.matched_product_id
 where p.run_id = %(id)s and p.match_rule in ('sku', 'name')
 order by p.row_no

-- name: issues
select i.severity, i.code, i.item_id, i.variant_id, i.name, i.message
  from loyverse.loyverse_import_issues i
 where i.run_id = %(id)s
 order by case i.severity when 'error' then 0 when 'warning' then 1 else 2 end, i.id

-- name: snapshot_categories
select o.loyverse_id as id, o.payload ->> 'name' as name
  from loyverse.loyverse_snapshot_objects o
 where o.snapshot_id = %(id)s and o.kind = 'category'
 order by o.payload ->> 'name'

-- name: set_snapshot
-- still PENDING: RUNNING is set once the run's advisory lock is held (a RUNNING run without
-- it reads as interrupted)
update loyverse.loyverse_import_runs
   set snapshot_id = %(snapshot_id)s, report = report || '{"phase": "planning"}', updated_at = now()
 where id = %(id)s

-- name: requested_by
select options ->> 'requested_by' as actor from loyverse.loyverse_import_runs where id = %(id)s

-- name: set_fetch_progress
update loyverse.loyverse_import_runs
   set report = jsonb_build_object('phase', 'fetching', 'fetched_items', %(n)s::int), updated_at = now()
 where id = %(id)s and status = 'PENDING'
