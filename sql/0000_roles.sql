-- Roles are cluster-wide: created only when missing, so a second database migrates.
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'loyverse_app') then
    create role loyverse_app nologin;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'loyverse_worker') then
    create role loyverse_worker nologin;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'loyverse_readonly') then
    create role loyverse_readonly nologin;
  end if;
end $$;
