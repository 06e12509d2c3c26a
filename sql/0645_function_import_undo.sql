-- Undoes an import run from its journal: removes the rows it created (mappings included),
-- restores the before-image of every row it updated or deleted. Refuses, listing them, when
-- a row the run touched changed afterwards, unless p_force. Created rows journaled set-based
-- (row_key '#...': after_image is a JSON array of the rows' images) are expanded to one entry
-- per row first, so every row is checked and removed exactly as a per-row entry would be.
create function loyverse.import_undo(p_run_id bigint, p_force boolean default false)
returns jsonb
language plpgsql
set search_path = ''
set jit = off
as $$
declare
    v_run loyverse.loyverse_import_runs;
    v_table text;
    v_rel text;
    v_key text;
    v_changed jsonb;
    v_deleted integer := 0;
    v_restored integer := 0;
    v_reinserted integer := 0;
    v_n integer;
    v_tables constant text[] := array['categories', 'product_groups', 'products', 'modifier_groups',
                                      'modifier_options', 'product_modifier_groups', 'loyverse_item_mappings'];
begin
    select * into v_run from loyverse.loyverse_import_runs r where r.id = p_run_id for update;
    if not found then
        raise exception 'no import run %', p_run_id using errcode = 'no_data_found';
    end if;
    if v_run.status = 'UNDONE' then
        raise exception 'import run % was already undone at %', p_run_id, v_run.undone_at
            using errcode = 'invalid_parameter_value';
    end if;
    if v_run.dry_run then
        raise exception 'import run % was a dry run: there is nothing to undo', p_run_id
            using errcode = 'invalid_parameter_value';
    end if;
    perform set_config('loyverse_sync.origin', 'loyverse', true);

    -- The run's journal, one entry per row.
    drop table if exists pg_temp._lv_journal;
    create temp table _lv_journal on commit drop as
    select j.table_name, j.row_key, j.action, j.before_image, j.after_image
      from loyverse.loyverse_import_journal j
     where j.run_id = p_run_id and j.row_key not like '#%'
    union all
    select j.table_name,
           case when j.table_name = 'product_modifier_groups' then (e.image ->> 'product_id') || ':' || (e.image ->> 'modifier_group_id')
                else e.image ->> 'id' end,
           j.action, null, e.image
      from loyverse.loyverse_import_journal j
      cross join lateral jsonb_array_elements(j.after_image) e(image)
     where j.run_id = p_run_id and j.row_key like '#%';
    create index on _lv_journal (table_name, row_key);
    analyze _lv_journal;

    -- Rows changed (or deleted, or re-created) since the run.
    drop table if exists pg_temp._lv_changed;
    create temp table _lv_changed (table_name text, row_key text, reason text, current jsonb) on commit drop;
    foreach v_table in array v_tables loop
        v_rel := case when v_table = 'loyverse_item_mappings' then 'loyverse.' else 'public.' end || quote_ident(v_table);
        v_key := case when v_table = 'product_modifier_groups' then 't.product_id::text || '':'' || t.modifier_group_id::text'
                      else 't.id::text' end;
        execute format(
            'insert into pg_temp._lv_changed
             select j.table_name, j.row_key,
                    case when j.action = ''DELETE'' then ''re-created since the run''
                         when t is null then ''deleted since the run'' else ''changed since the run'' end,
                    to_jsonb(t)
               from pg_temp._lv_journal j
               left join %s t on %s = j.row_key
              where j.table_name = %L
                and case when j.action = ''DELETE'' then t is not null
                         else t is null or to_jsonb(t) is distinct from j.after_image end',
            v_rel, v_key, v_table)
            using p_run_id;
    end loop;
    -- A mapping or link removed together with its product is not a separate change.
    delete from _lv_changed c
     where c.reason = 'deleted since the run' and c.table_name in ('loyverse_item_mappings', 'product_modifier_groups')
       and exists (select 1 from _lv_changed p where p.table_name = 'products' and p.reason = 'deleted since the run');

    select coalesce(jsonb_agg(jsonb_build_object('table', c.table_name, 'key', c.row_key, 'reason', c.reason,
                                                 'name', c.current ->> 'name') order by c.table_name, c.row_key), '[]')
      into v_changed from _lv_changed c;
    if jsonb_array_length(v_changed) > 0 and not p_force then
        return jsonb_build_object('refused', true, 'changed', v_changed);
    end if;

    -- Remove what the run created, dependants first.
    foreach v_table in array array['product_modifier_groups', 'loyverse_item_mappings', 'products', 'modifier_options',
                                   'modifier_groups', 'product_groups', 'categories'] loop
        v_rel := case when v_table = 'loyverse_item_mappings' then 'loyverse.' else 'public.' end || quote_ident(v_table);
        v_key := case when v_table = 'product_modifier_groups' then 't.product_id::text || '':'' || t.modifier_group_id::text'
                      else 't.id::text' end;
        execute format(
            'delete from %s t using pg_temp._lv_journal j
              where j.table_name = %L and j.action = ''INSERT'' and %s = j.row_key',
            v_rel, v_table, v_key)
            using p_run_id;
        get diagnostics v_n = row_count; v_deleted := v_deleted + v_n;
    end loop;

    -- Put back what it deleted, then restore what it updated, parents first.
    foreach v_table in array v_tables loop
        v_rel := case when v_table = 'loyverse_item_mappings' then 'loyverse.' else 'public.' end || quote_ident(v_table);
        execute format(
            'insert into %s overriding system value
             select r.* from pg_temp._lv_journal j,
                    lateral jsonb_populate_record(null::%s, j.before_image) r
              where j.table_name = %L and j.action = ''DELETE''
             on conflict do nothing',
            v_rel, v_rel, v_table)
            using p_run_id;
        get diagnostics v_n = row_count; v_reinserted := v_reinserted + v_n;
    end loop;
    foreach v_table in array v_tables loop
        continue when v_table = 'product_modifier_groups';  -- a link has nothing to update
        v_rel := case when v_table = 'loyverse_item_mappings' then 'loyverse.' else 'public.' end || quote_ident(v_table);
        execute (
            select format(
                'update %s t set (%s) = (%s)
                   from pg_temp._lv_journal j,
                        lateral jsonb_populate_record(null::%s, j.before_image) r
                  where j.table_name = %L and j.action = ''UPDATE'' and t.id::text = j.row_key',
                v_rel,
                string_agg(quote_ident(a.attname), ', ' order by a.attnum),
                case when count(*) = 1 then 'row(' else '' end
                  || string_agg('r.' || quote_ident(a.attname), ', ' order by a.attnum)
                  || case when count(*) = 1 then ')' else '' end,
                v_rel, v_table)
              from pg_catalog.pg_attribute a
             where a.attrelid = v_rel::regclass and a.attnum > 0 and not a.attisdropped
               and a.attname <> 'id' and a.attidentity = '' and a.attgenerated = '')
            using p_run_id;
        get diagnostics v_n = row_count; v_restored := v_restored + v_n;
    end loop;

    delete from loyverse.loyverse_object_mappings om where om.import_run_id = p_run_id;

    update loyverse.loyverse_import_runs r
       set status = 'UNDONE', undone_at = now(), updated_at = now(),
           report = r.report || jsonb_build_object('undo', jsonb_build_object(
               'deleted', v_deleted, 'restored', v_restored, 'reinserted', v_reinserted,
               'forced_over', v_changed))
     where r.id = p_run_id;

    insert into loyverse.loyverse_sync_logs
        (restaurant_id, account_id, sync_type, status, items_total, items_succeeded, details, completed_at)
    values (v_run.restaurant_id, v_run.account_id, 'IMPORT_UNDO', 'SUCCESS', v_deleted + v_restored + v_reinserted,
            v_deleted + v_restored + v_reinserted,
            jsonb_build_object('run_id', p_run_id, 'deleted', v_deleted, 'restored', v_restored,
                               'reinserted', v_reinserted, 'forced_over', v_changed),
            now());

    return jsonb_build_object('refused', false, 'deleted', v_deleted, 'restored', v_restored,
                              'reinserted', v_reinserted, 'forced_over', v_changed);
end;
$$;

comment on function loyverse.import_undo(bigint, boolean) is
    'Undo an import run from its journal. Returns {"refused": true, "changed": [...]} without changing '
    'anything when rows it touched changed since (unless p_force), else the counts.';
