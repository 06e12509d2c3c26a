-- Brings the after-images of an import run's journal up to date (undo compares them with
-- the rows later, to see what changed after the run). Rows the run created carry their
-- after-image from the INSERT itself, so only journal rows without one, and the (few)
-- UPDATE rows, are refreshed: each through its table's primary key.
create function loyverse.import_journal_refresh(p_run_id bigint)
returns void
language plpgsql
set search_path = ''
set jit = off
set enable_nestloop = on
as $$
declare
    v_table text;
    v_keys text[];
begin
    for v_table, v_keys in
        select j.table_name, array_agg(j.row_key)
          from loyverse.loyverse_import_journal j
         where j.run_id = p_run_id and j.action <> 'DELETE'
           and (j.after_image is null or j.action = 'UPDATE')
         group by j.table_name
    loop
        execute format(
            'update loyverse.loyverse_import_journal j set after_image = to_jsonb(t)
               from unnest($2::text[]) k(key), %s t
              where j.run_id = $1 and j.table_name = %L and j.row_key = k.key and %s
                and j.after_image is distinct from to_jsonb(t)',
            case when v_table = 'loyverse_item_mappings' then 'loyverse.' else 'public.' end || quote_ident(v_table),
            v_table,
            case v_table
              when 'product_modifier_groups'
                then '(t.product_id, t.modifier_group_id) = (split_part(k.key, '':'', 1)::uuid, split_part(k.key, '':'', 2)::uuid)'
              when 'loyverse_item_mappings' then 't.id = k.key::bigint'
              else 't.id = k.key::uuid' end)
            using p_run_id, v_keys;
    end loop;
end;
$$;

comment on function loyverse.import_journal_refresh(bigint) is
    'Set the after_image of an import run''s journal rows that have none, and of its UPDATE rows, '
    'to the row as it is now.';
