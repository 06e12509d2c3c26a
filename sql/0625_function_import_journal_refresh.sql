-- Brings the after-images of an import run's journal up to date (undo compares them with
-- the rows later, to see what changed after the run).
create function loyverse.import_journal_refresh(p_run_id bigint)
returns void
language plpgsql
set search_path = ''
set jit = off
as $$
declare
    v_table text;
begin
    foreach v_table in array array['categories', 'product_groups', 'products', 'modifier_groups',
                                   'modifier_options', 'product_modifier_groups', 'loyverse_item_mappings'] loop
        execute format(
            'update loyverse.loyverse_import_journal j set after_image = to_jsonb(t)
               from %s t
              where j.run_id = $1 and j.table_name = %L and j.action <> ''DELETE''
                and %s = j.row_key and j.after_image is distinct from to_jsonb(t)',
            case when v_table = 'loyverse_item_mappings' then 'loyverse.' else 'public.' end || quote_ident(v_table),
            v_table,
            case when v_table = 'product_modifier_groups' then 't.product_id::text || '':'' || t.modifier_group_id::text'
                 else 't.id::text' end)
            using p_run_id;
    end loop;
end;
$$;

comment on function loyverse.import_journal_refresh(bigint) is
    'Set each journal row''s after_image of an import run to the row as it is now.';
