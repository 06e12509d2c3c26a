-- Grants. loyverse_app: the main app (catalogue, never tokens). loyverse_worker: the sync
-- worker and CLI. loyverse_readonly: the views only.
grant usage on schema loyverse to loyverse_app, loyverse_worker, loyverse_readonly;

grant select, insert, update, delete on public.restaurants, public.categories, public.product_groups,
    public.products, public.modifier_groups, public.modifier_options, public.product_modifier_groups
    to loyverse_app, loyverse_worker;

grant select, insert, update, delete on all tables in schema loyverse to loyverse_worker;

revoke insert, update, delete on loyverse.procrastinate_migrations from loyverse_worker;

grant usage, select on all sequences in schema loyverse to loyverse_worker;

grant execute on function loyverse.rate_governor_take(bigint, integer) to loyverse_worker;

grant execute on function loyverse.rate_governor_penalize(bigint, double precision) to loyverse_worker;

revoke all on loyverse.accounts from loyverse_app, loyverse_readonly;

grant select on loyverse.account_overview, loyverse.restaurant_overview to loyverse_readonly, loyverse_worker;

-- The worker runs procrastinate: its tables, sequences and functions.
do $$
declare r record;
begin
  for r in select c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace
           where n.nspname = 'public' and c.relname like 'procrastinate%' and c.relkind in ('r', 'S') loop
    if r.relkind = 'r' then
      execute format('grant select, insert, update, delete on public.%I to loyverse_worker', r.relname);
    else
      execute format('grant usage, select, update on sequence public.%I to loyverse_worker', r.relname);
    end if;
  end loop;
end $$;
