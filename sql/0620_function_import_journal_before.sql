-- Records before-images of rows an import is about to change or delete (the first image
-- per run wins, so a resumed batch keeps the state from before the run).
create function loyverse.import_journal_before(p_run_id bigint, p_table text, p_keys text[], p_action text default 'UPDATE')
returns integer
language plpgsql
set search_path = ''
set jit = off
as $$
declare
    v_rel text;
    v_key text;
    v_n integer;
begin
    if p_keys is null or cardinality(p_keys) = 0 then
        return 0;
    end if;
    v_rel := case when p_table in ('loyverse_item_mappings') then 'loyverse.' else 'public.' end || quote_ident(p_table);
    v_key := case p_table
               when 'product_modifier_groups' then 't.product_id::text || '':'' || t.modifier_group_id::text'
               else 't.id::text' end;
    execute format(
        'insert into loyverse.loyverse_import_journal (run_id, table_name, row_key, action, before_image)
         select $1, %L, %s, %L, to_jsonb(t)
           from %s t join unnest($2::text[]) k(key) on %s = k.key
         on conflict (run_id, table_name, row_key) do nothing', p_table, v_key, p_action, v_rel, v_key)
        using p_run_id, p_keys;
    get diagnostics v_n = row_count;
    return v_n;
end;
$$;

comment on function loyverse.import_journal_before(bigint, text, text[], text) is
    'Journal the current rows (keys p_keys of table p_table) as before-images of an import run.';
