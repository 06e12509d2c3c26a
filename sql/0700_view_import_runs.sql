-- Import runs for DBAs and `import status`/`import list`: progress, counts, snapshot age. A role
-- of the main app sees only its restaurants' runs (loyverse.readable_restaurants).
create view loyverse.import_runs as
select r.id as run_id,
       r.restaurant_id,
       rs.name as restaurant_name,
       r.account_id,
       r.snapshot_id,
       s.fetched_at as snapshot_fetched_at,
       r.status,
       r.dry_run,
       r.items_done,
       r.items_total,
       case when r.items_total > 0 then round(100.0 * r.items_done / r.items_total, 1) end as percent_done,
       r.created_count,
       r.updated_count,
       r.skipped_count,
       r.duplicated_count,
       r.failed_count,
       r.options,
       r.error,
       r.started_at,
       r.completed_at,
       r.undone_at
  from loyverse.loyverse_import_runs r
  join public.restaurants rs on rs.id = r.restaurant_id
  left join loyverse.loyverse_snapshots s on s.id = r.snapshot_id
 -- a role of the main app reads only its restaurants' runs (loyverse.readable_restaurants: null = all)
 where (select loyverse.readable_restaurants(current_user)) is null or r.restaurant_id = any ((select loyverse.readable_restaurants(current_user))::uuid[]);

comment on view loyverse.import_runs is
    'Menu import runs with live progress (items_done of items_total, percent_done), outcome counts and snapshot age.';
