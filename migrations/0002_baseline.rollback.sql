-- Undo the baseline: drop every object of the integration and the catalogue tables it
-- created. Roles stay (cluster-wide; other databases on the server may use them), and so do
-- procrastinate's schema and loyverse.procrastinate_migrations (0001's).
do $$
declare r record;
begin
  for r in select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
           where n.nspname = 'loyverse' and c.relkind in ('v', 'm') loop
    execute format('drop view if exists loyverse.%I cascade', r.relname);
  end loop;
  for r in select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
           where n.nspname = 'loyverse' and c.relkind in ('r', 'p')
             and c.relname <> 'procrastinate_migrations' loop
    execute format('drop table if exists loyverse.%I cascade', r.relname);
  end loop;
  for r in select p.oid, p.prokind from pg_proc p
           join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'loyverse' loop
    -- (a function dropped by an earlier cascade, e.g. an aggregate with its state function, is gone)
    continue when not exists (select 1 from pg_proc x where x.oid = r.oid);
    if r.prokind = 'a' then
      execute format('drop aggregate if exists %s cascade', r.oid::regprocedure);
    else
      execute format('drop routine if exists %s cascade', r.oid::regprocedure);
    end if;
  end loop;
  for r in select t.typname from pg_type t join pg_namespace n on n.oid = t.typnamespace
           where n.nspname = 'loyverse' and t.typtype in ('c', 'd', 'e')
             and not exists (select 1 from pg_class c where c.reltype = t.oid) loop
    execute format('drop type if exists loyverse.%I cascade', r.typname);
  end loop;
end $$;
drop table if exists public.product_modifier_groups cascade;
drop table if exists public.modifier_options cascade;
drop table if exists public.modifier_groups cascade;
drop table if exists public.products cascade;
drop table if exists public.product_groups cascade;
drop table if exists public.categories cascade;
drop table if exists public.restaurants cascade;
