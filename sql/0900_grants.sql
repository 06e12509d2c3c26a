-- Grants. loyverse_app: the main app (catalogue, never tokens). loyverse_worker: the sync
-- worker and CLI. loyverse_readonly: the views only.
grant usage on schema loyverse to loyverse_app, loyverse_worker, loyverse_readonly;

grant select, insert, update, delete on public.restaurants, public.categories, public.product_groups,
    public.products, public.modifier_groups, public.modifier_options, public.product_modifier_groups
    to loyverse_app, loyverse_worker;

-- Named one by one (not "all tables in schema"), so sql/ and migrations/ grant the same
-- whatever order objects are created in.
grant select, insert, update, delete on loyverse.loyverse_accounts, loyverse.loyverse_account_rate_state,
    loyverse.loyverse_restaurant_links, loyverse.loyverse_item_mappings,
    loyverse.loyverse_price_sync_settings, loyverse.loyverse_price_sync_queue,
    loyverse.loyverse_sync_logs, loyverse.loyverse_import_runs, loyverse.loyverse_import_journal,
    loyverse.loyverse_notification_outbox
    to loyverse_worker;
grant select on loyverse.procrastinate_migrations to loyverse_worker;
grant usage, select on sequence loyverse.loyverse_accounts_id_seq, loyverse.loyverse_item_mappings_id_seq,
    loyverse.loyverse_price_sync_queue_id_seq, loyverse.loyverse_sync_logs_id_seq,
    loyverse.loyverse_import_runs_id_seq, loyverse.loyverse_import_journal_id_seq,
    loyverse.loyverse_notification_outbox_id_seq
    to loyverse_worker;

grant execute on function loyverse.rate_governor_take(bigint, integer) to loyverse_worker;

grant execute on function loyverse.rate_governor_penalize(bigint, double precision) to loyverse_worker;

revoke all on loyverse.loyverse_accounts from loyverse_app, loyverse_readonly;

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
