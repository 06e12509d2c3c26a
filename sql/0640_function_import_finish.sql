-- Completes an import run: handles mapped products whose Loyverse variant is gone
-- (deactivate, delete or keep), brings the journal's after-images up to date, writes the
-- run's counts, status and report, and its one loyverse_sync_logs row.
create function loyverse.import_finish(p_run_id bigint)
returns jsonb
language plpgsql
set search_path = ''
set jit = off
set enable_nestloop = off
as $$
declare
    v_run loyverse.loyverse_import_runs;
    v_missing text;
    v_selecting boolean;
    v_ids text[];
    v_missing_n integer := 0;
    v_counts jsonb;
    v_status text;
    v_requests integer;
    v_errors jsonb;
    v_log_id bigint;
begin
    perform set_config('loyverse_sync.origin', 'loyverse', true);
    select * into v_run from loyverse.loyverse_import_runs r where r.id = p_run_id for update;
    v_missing := coalesce(v_run.options ->> 'missing', 'deactivate');
    v_selecting := jsonb_array_length(coalesce(v_run.options -> 'items', '[]')) > 0
                or jsonb_array_length(coalesce(v_run.options -> 'categories', '[]')) > 0
                or jsonb_array_length(coalesce(v_run.options -> 'exclude', '[]')) > 0;

    -- Mapped products whose variant is no longer live in Loyverse (only on a full import:
    -- a selection says nothing about the items it leaves out).
    if not v_selecting and v_missing in ('deactivate', 'delete') then
        drop table if exists pg_temp._lv_live;
        create temp table _lv_live on commit drop as
        select distinct v.v ->> 'variant_id' as variant_id, null::text as item_id
          from loyverse.loyverse_snapshot_objects o
          cross join lateral jsonb_array_elements(o.payload -> 'variants') v(v)
         where o.snapshot_id = v_run.snapshot_id and o.kind = 'item'
           and jsonb_typeof(o.payload -> 'variants') = 'array'
           and coalesce(jsonb_typeof(o.payload -> 'deleted_at'), 'null') = 'null'
           and coalesce(jsonb_typeof(v.v -> 'deleted_at'), 'null') = 'null'
        union all
        -- an item whose variants we cannot read keeps all its products (not a deletion)
        select null, o.loyverse_id
          from loyverse.loyverse_snapshot_objects o
         where o.snapshot_id = v_run.snapshot_id and o.kind = 'item'
           and jsonb_typeof(o.payload -> 'variants') is distinct from 'array'
           and coalesce(jsonb_typeof(o.payload -> 'deleted_at'), 'null') = 'null';

        select array_agg(m.product_id::text) into v_ids
          from loyverse.loyverse_item_mappings m
          join public.products pr on pr.id = m.product_id
         where m.restaurant_id = v_run.restaurant_id and m.account_id = v_run.account_id
           and not exists (select 1 from _lv_live l where l.variant_id = m.loyverse_variant_id)
           and not exists (select 1 from _lv_live l where l.item_id = m.loyverse_item_id)
           and (v_missing = 'delete' or pr.is_active);
        v_missing_n := coalesce(cardinality(v_ids), 0);

        if v_missing = 'deactivate' then
            perform loyverse.import_journal_before(p_run_id, 'products', v_ids);
            update public.products pr set is_active = false, updated_at = now()
              from unnest(v_ids) k(id) where pr.id::text = k.id;
        elsif v_missing_n > 0 then
            -- Keep what the cascade removes too, so undo can put it back.
            perform loyverse.import_journal_before(p_run_id, 'products', v_ids, 'DELETE');
            perform loyverse.import_journal_before(
                p_run_id, 'loyverse_item_mappings',
                (select array_agg(m.id::text) from loyverse.loyverse_item_mappings m
                   join unnest(v_ids) k(id) on m.product_id::text = k.id), 'DELETE');
            perform loyverse.import_journal_before(
                p_run_id, 'product_modifier_groups',
                (select array_agg(l.product_id::text || ':' || l.modifier_group_id::text)
                   from public.product_modifier_groups l join unnest(v_ids) k(id) on l.product_id::text = k.id),
                'DELETE');
            delete from public.products pr using unnest(v_ids) k(id) where pr.id::text = k.id;
        end if;
    end if;

    perform loyverse.import_journal_refresh(p_run_id);

    select jsonb_build_object(
               'created', count(*) filter (where p.outcome = 'created'),
               'updated', count(*) filter (where p.outcome = 'updated'),
               'unchanged', count(*) filter (where p.outcome = 'unchanged'),
               'skipped', count(*) filter (where p.outcome = 'skipped'),
               'duplicated', count(*) filter (where p.outcome = 'duplicated'),
               'failed', count(*) filter (where p.outcome = 'failed'),
               'total', count(*))
      into v_counts
      from loyverse.loyverse_import_plan p where p.run_id = p_run_id;
    v_counts := v_counts || jsonb_build_object('missing', v_missing_n, 'missing_action', v_missing);
    v_status := case when (v_counts ->> 'failed')::integer > 0 then 'PARTIAL' else 'SUCCESS' end;

    select coalesce(jsonb_agg(jsonb_build_object('item_id', i.item_id, 'variant_id', i.variant_id,
                                                 'name', i.name, 'error', i.message) order by i.id), '[]')
      into v_errors
      from (select * from loyverse.loyverse_import_issues i
             where i.run_id = p_run_id and i.severity = 'error' order by i.id limit 200) i;
    select s.requests_made into v_requests from loyverse.loyverse_snapshots s where s.id = v_run.snapshot_id;

    insert into loyverse.loyverse_sync_logs
        (restaurant_id, account_id, sync_type, status, items_total, items_succeeded, items_failed,
         items_skipped, requests_made, error_details, details, started_at, completed_at)
    values (v_run.restaurant_id, v_run.account_id, 'MENU_IMPORT', v_status, (v_counts ->> 'total')::integer,
            (v_counts ->> 'created')::integer + (v_counts ->> 'updated')::integer
              + (v_counts ->> 'unchanged')::integer + (v_counts ->> 'duplicated')::integer,
            (v_counts ->> 'failed')::integer, (v_counts ->> 'skipped')::integer, coalesce(v_requests, 0),
            v_errors, v_counts || jsonb_build_object('run_id', p_run_id, 'snapshot_id', v_run.snapshot_id),
            least(v_run.started_at, now()), now())
    returning id into v_log_id;

    update loyverse.loyverse_import_runs r
       set status = v_status,
           items_done = r.items_total,
           created_count = (v_counts ->> 'created')::integer,
           updated_count = (v_counts ->> 'updated')::integer,
           skipped_count = (v_counts ->> 'skipped')::integer,
           duplicated_count = (v_counts ->> 'duplicated')::integer,
           failed_count = (v_counts ->> 'failed')::integer,
           report = jsonb_build_object('counts', v_counts, 'summary', loyverse.import_plan_summary(p_run_id),
                                       'sync_log_id', v_log_id),
           error = null,
           updated_at = now(),
           completed_at = now()
     where r.id = p_run_id;

    return v_counts || jsonb_build_object('status', v_status, 'sync_log_id', v_log_id);
end;
$$;

comment on function loyverse.import_finish(bigint) is
    'Finish an import run: missing variants (options.missing: deactivate|delete|keep), journal '
    'after-images, counts, status (SUCCESS, or PARTIAL when variants failed) and the sync log row.';
