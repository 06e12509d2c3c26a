-- Roles are cluster-wide: created only when missing, so a second database migrates. Two
-- databases migrating at once (parallel test workers, two deploys) may both find a role
-- missing: the loser's duplicate is ignored.
do $$
declare
  v_role text;
begin
  foreach v_role in array array['loyverse_app', 'loyverse_worker', 'loyverse_readonly'] loop
    if not exists (select 1 from pg_roles where rolname = v_role) then
      begin
        execute format('create role %I nologin', v_role);
      exception when duplicate_object or unique_violation then
        null;  -- created meanwhile by a concurrent migration
      end;
    end if;
  end loop;
end $$;
