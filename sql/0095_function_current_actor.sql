-- Who is making a change: the session setting loyverse.actor (set by `serve` per request,
-- by the CLI and by the worker per import), else "sql:<session user>". The audit trail's
-- default, so every loyverse_sync_logs row written by any path names its author.
create function loyverse.current_actor()
returns text
language sql
stable
set search_path = ''
as $$
    select coalesce(nullif(pg_catalog.current_setting('loyverse.actor', true), ''),
                    'sql:' operator(pg_catalog.||) session_user)
$$;
comment on function loyverse.current_actor() is
    'Who is acting: current_setting(''loyverse.actor'') (api-key:<name>, console:<key name>, cli:<os user>), '
    'else sql:<session user>. Example: begin; set local loyverse.actor = ''cli:alice''; ...; commit;';
