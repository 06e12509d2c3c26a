-- The integration's own schema, and the record of which procrastinate migration files this
-- database contains. Migration 0001 runs this file before procrastinate's schema.sql (it
-- records into the table), so both statements are idempotent.
create schema if not exists loyverse;

comment on schema loyverse is
    'loyverse-sync: the integration with the Loyverse POS (queue, mappings, logs, settings). '
    'Tables are internal; query the views.';

create table if not exists loyverse.procrastinate_migrations (
    name text primary key,
    procrastinate_version text not null,
    applied_at timestamptz not null default now(),
    applied_how text not null
        constraint applied_how_is_valid check (applied_how in ('schema', 'migration'))
);

comment on table loyverse.procrastinate_migrations is
    'Which of procrastinate''s own migration files this database contains: "schema" = part of the '
    'schema.sql installed by migration 0001, "migration" = applied later by db migrate after a '
    'procrastinate upgrade.';
