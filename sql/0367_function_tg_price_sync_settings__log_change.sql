-- Settings changes are audited: every UPDATE of a restaurant's price-sync settings, by the
-- SQL API, the CLI, the HTTP server or a DBA's own UPDATE, writes one SETTINGS_CHANGE row
-- to loyverse_sync_logs naming each changed setting (from, to) and who changed it.
create function loyverse.tg_price_sync_settings__log_change()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_changes jsonb;
begin
    select jsonb_object_agg(n.key, jsonb_build_object('from', o.value, 'to', n.value))
      into v_changes
      from jsonb_each(to_jsonb(new)) n
      join jsonb_each(to_jsonb(old)) o on o.key = n.key
     where n.value is distinct from o.value and n.key not in ('updated_at', 'paused_at', 'created_at');
    if v_changes is not null then
        insert into loyverse.loyverse_sync_logs (restaurant_id, sync_type, status, details, completed_at)
        values (new.restaurant_id, 'SETTINGS_CHANGE', 'SUCCESS', jsonb_build_object('changes', v_changes), now());
    end if;
    return null;
end;
$$;
comment on function loyverse.tg_price_sync_settings__log_change() is
    'Trigger: one SETTINGS_CHANGE row in loyverse_sync_logs per changed settings row (changes: {setting: {from, to}}).';
