-- depends: 0060_queue_without_product_fk
-- The HTTP server (`loyverse-sync serve`, issue #17): API keys stored as SHA-256, an audit
-- trail that names who made each change (loyverse_sync_logs.actor from the session setting
-- loyverse.actor, and db_role), settings changes audited by a trigger, imports requested
-- from SQL as a procrastinate job (loyverse.request_menu_import), and the dashboard's
-- chart (loyverse.price_sync_timeline). Old log rows keep a null actor: unknown.
-- And an index of done queue rows by restaurant: sync/status for one restaurant with 50
-- restaurants and 1M queue rows read every restaurant's last day (p99 58 ms over HTTP;
-- 36 ms with it, bench/api_latency.py). Only rows turning 'done' pay for it; the products
-- trigger's pending rows do not.

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

create index loyverse_price_sync_queue_restaurant_id_completed_at_idx
    on loyverse.loyverse_price_sync_queue (restaurant_id, completed_at) where status = 'done';

alter table loyverse.loyverse_sync_logs add column actor text;
alter table loyverse.loyverse_sync_logs alter column actor set default loyverse.current_actor();
alter table loyverse.loyverse_sync_logs add column db_role text;
alter table loyverse.loyverse_sync_logs alter column db_role set default session_user;
alter table loyverse.loyverse_sync_logs drop constraint sync_type_is_valid;
alter table loyverse.loyverse_sync_logs add constraint sync_type_is_valid check (sync_type in
    ('PRICE_SYNC', 'MENU_IMPORT', 'IMPORT_UNDO', 'MANUAL_TRIGGER', 'RETRY', 'NOTIFICATION', 'SETTINGS_CHANGE', 'API_KEY'));
comment on column loyverse.loyverse_sync_logs.actor is
    'Who made the change: api-key:<name>, console:<key name>, cli:<os user>, worker, or sql:<role> (loyverse.current_actor()).';
comment on column loyverse.loyverse_sync_logs.db_role is 'The database role (session user) that wrote the row.';

-- API keys of `loyverse-sync serve` (JSON API and console sign-in). Only the SHA-256 of a
-- key is stored; a restaurant key reaches its restaurant, an admin key every restaurant.
create table loyverse.loyverse_api_keys (
    id bigint generated always as identity primary key,
    name text not null
        constraint api_key_name_is_not_blank check (btrim(name) <> ''),
    key_hash bytea not null
        constraint api_key_hash_is_sha256 check (length(key_hash) = 32),
    restaurant_id uuid references public.restaurants (id) on delete cascade,
    is_admin boolean not null default false,
    created_at timestamptz not null default now(),
    created_by text not null default loyverse.current_actor(),
    last_used_at timestamptz,
    revoked_at timestamptz,
    revoked_by text,
    constraint api_key_is_admin_or_one_restaurant check (is_admin = (restaurant_id is null))
);

create unique index loyverse_api_keys_key_hash_idx on loyverse.loyverse_api_keys (key_hash);

create unique index loyverse_api_keys_name_idx on loyverse.loyverse_api_keys (name);

comment on table loyverse.loyverse_api_keys is
    'API keys of the HTTP server (sha256 only). Manage with `loyverse-sync apikey create|list|revoke` '
    'or loyverse.create_api_key / revoke_api_key; read loyverse.api_keys.';

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

-- Audit every settings change (see loyverse.tg_price_sync_settings__log_change).
create trigger _100_log_change
    after update on loyverse.loyverse_price_sync_settings
    for each row when (old is distinct from new)
    execute function loyverse.tg_price_sync_settings__log_change();

-- SQL API of the HTTP server's keys: create (the caller hashes a random key: the key itself
-- never reaches the database), revoke, and look up a key by its hash. Each change writes an
-- API_KEY row to loyverse_sync_logs (who, which key, what scope).
create function loyverse.create_api_key(p_name text, p_key_hash bytea, p_restaurant_id uuid, p_admin boolean)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_id bigint;
begin
    if p_name is null or btrim(p_name) = '' then
        raise exception 'name: must not be blank' using errcode = 'invalid_parameter_value', column = 'name';
    end if;
    if coalesce(p_admin, false) = (p_restaurant_id is not null) then
        raise exception 'restaurant: give a restaurant or admin, not both or neither'
            using errcode = 'invalid_parameter_value', column = 'restaurant';
    end if;
    if p_restaurant_id is not null and not exists (select 1 from public.restaurants r where r.id = p_restaurant_id) then
        raise exception 'restaurant: no restaurant %', p_restaurant_id using errcode = 'no_data_found', column = 'restaurant';
    end if;
    if exists (select 1 from loyverse.loyverse_api_keys k where k.name = p_name) then
        raise exception 'name: an API key named % exists (names stay taken after revoking)', p_name
            using errcode = 'unique_violation', column = 'name';
    end if;
    insert into loyverse.loyverse_api_keys (name, key_hash, restaurant_id, is_admin)
    values (p_name, p_key_hash, p_restaurant_id, coalesce(p_admin, false))
    returning id into v_id;
    insert into loyverse.loyverse_sync_logs (restaurant_id, sync_type, status, details, completed_at)
    values (p_restaurant_id, 'API_KEY', 'SUCCESS',
            jsonb_build_object('action', 'create', 'key', p_name, 'admin', coalesce(p_admin, false)), now());
    return v_id;
end;
$$;
comment on function loyverse.create_api_key(text, bytea, uuid, boolean) is
    'Register an API key by its SHA-256 (32 bytes): a restaurant key (p_restaurant_id) or an admin key '
    '(p_admin). Returns its id. `loyverse-sync apikey create` makes the key and calls this.';

create function loyverse.revoke_api_key(p_name text)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_restaurant uuid;
begin
    if not exists (select 1 from loyverse.loyverse_api_keys k where k.name = p_name) then
        raise exception 'name: no API key named %', p_name using errcode = 'no_data_found', column = 'name';
    end if;
    update loyverse.loyverse_api_keys k
       set revoked_at = now(), revoked_by = loyverse.current_actor()
     where k.name = p_name and k.revoked_at is null
    returning k.restaurant_id into v_restaurant;
    if not found then
        return false;
    end if;
    insert into loyverse.loyverse_sync_logs (restaurant_id, sync_type, status, details, completed_at)
    values (v_restaurant, 'API_KEY', 'SUCCESS', jsonb_build_object('action', 'revoke', 'key', p_name), now());
    return true;
end;
$$;
comment on function loyverse.revoke_api_key(text) is
    'Revoke an API key by name (it stops working at once). False when it was revoked already.';

-- last_used_at is written at most once a minute per key: a lookup per request stays a read.
create function loyverse.api_key_lookup(p_key_hash bytea)
returns table (key_id bigint, name text, restaurant_id uuid, is_admin boolean)
language plpgsql
security definer
set search_path = ''
as $$
begin
    update loyverse.loyverse_api_keys k set last_used_at = now()
     where k.key_hash = p_key_hash and k.revoked_at is null
       and (k.last_used_at is null or k.last_used_at < now() - interval '1 minute');
    return query
        select k.id, k.name, k.restaurant_id, k.is_admin
          from loyverse.loyverse_api_keys k
         where k.key_hash = p_key_hash and k.revoked_at is null;
end;
$$;
comment on function loyverse.api_key_lookup(bytea) is
    'The live (not revoked) API key with this SHA-256, if any: id, name, restaurant_id (null for admin), is_admin.';

-- SQL API: ask for a menu import. Validates the request (each key against its allowed
-- values; an error names the key and nothing is written), records a PENDING run with the
-- requester, and defers procrastinate's import_loyverse_menu job, which fetches the menu
-- and runs the import (loyverse_sync/importer/runs.py). Returns the run id at once; read
-- progress from loyverse.import_runs.
create function loyverse.request_menu_import(p_restaurant_id uuid, p_request jsonb default '{}')
returns bigint
language plpgsql
security definer
-- procrastinate's defer function names its tables unqualified (as in wake_price_sync): public
-- on the path; everything of ours is schema-qualified.
set search_path = public, pg_temp
as $$
declare
    v_account bigint;
    v_key text;
    v_value jsonb;
    v_busy bigint;
    v_run bigint;
    v_problem record;
    v_options jsonb := '{}';
    v_known constant text[] := array['conflict', 'decisions', 'map', 'categories', 'items', 'exclude',
        'unknown_category', 'missing', 'batch_size', 'with_inventory', 'refresh', 'max_age'];
begin
    if p_request is null or jsonb_typeof(p_request) <> 'object' then
        raise exception 'request: expected a json object' using errcode = 'invalid_parameter_value', column = 'request';
    end if;
    if not exists (select 1 from public.restaurants r where r.id = p_restaurant_id) then
        raise exception 'restaurant_id: no restaurant %', p_restaurant_id
            using errcode = 'no_data_found', column = 'restaurant_id';
    end if;
    select l.account_id into v_account from loyverse.loyverse_restaurant_links l where l.restaurant_id = p_restaurant_id;
    if v_account is null then
        raise exception 'restaurant_id: the restaurant is not linked to a Loyverse store'
            using errcode = 'object_not_in_prerequisite_state', column = 'restaurant_id';
    end if;
    for v_key, v_value in select * from jsonb_each(p_request) loop
        if not v_key = any (v_known) then
            raise exception '%: unknown option (known: %)', v_key, array_to_string(v_known, ', ')
                using errcode = 'invalid_parameter_value', column = v_key;
        end if;
        if v_key = 'conflict' and not (jsonb_typeof(v_value) = 'string'
                and v_value #>> '{}' in ('skip', 'update', 'duplicate', 'manual')) then
            raise exception 'conflict: must be one of skip, update, duplicate, manual'
                using errcode = 'invalid_parameter_value', column = 'conflict';
        elsif v_key = 'unknown_category' and not (jsonb_typeof(v_value) = 'string'
                and v_value #>> '{}' in ('fallback', 'reject')) then
            raise exception 'unknown_category: must be one of fallback, reject'
                using errcode = 'invalid_parameter_value', column = 'unknown_category';
        elsif v_key = 'missing' and not (jsonb_typeof(v_value) = 'string'
                and v_value #>> '{}' in ('deactivate', 'delete', 'keep')) then
            raise exception 'missing: must be one of deactivate, delete, keep'
                using errcode = 'invalid_parameter_value', column = 'missing';
        elsif v_key in ('categories', 'items', 'exclude') and not (jsonb_typeof(v_value) = 'array'
                and not exists (select 1 from jsonb_array_elements(v_value) e where jsonb_typeof(e) <> 'string')) then
            raise exception '%: must be a list of ids or names (strings)', v_key
                using errcode = 'invalid_parameter_value', column = v_key;
        elsif v_key = 'decisions' and not (jsonb_typeof(v_value) = 'object'
                and not exists (select 1 from jsonb_each(v_value) e
                                 where jsonb_typeof(e.value) <> 'string'
                                    or e.value #>> '{}' not in ('skip', 'update', 'duplicate'))) then
            raise exception 'decisions: must map variant ids to one of skip, update, duplicate'
                using errcode = 'invalid_parameter_value', column = 'decisions';
        elsif v_key = 'map' then
            if jsonb_typeof(v_value) <> 'object'
               or exists (select 1 from jsonb_each(v_value) e where jsonb_typeof(e.value) <> 'string') then
                raise exception 'map: must map Loyverse fields to product columns (strings)'
                    using errcode = 'invalid_parameter_value', column = 'map';
            end if;
            select * into v_problem from loyverse.import_field_map_problems(v_value) limit 1;
            if found then
                raise exception 'map: %=%: %', v_problem.loyverse_field, v_problem.our_column, v_problem.problem
                    using errcode = 'invalid_parameter_value', column = 'map';
            end if;
        elsif v_key = 'batch_size' and not (v_value = 'null'::jsonb or (jsonb_typeof(v_value) = 'number'
                and v_value::numeric = trunc(v_value::numeric) and v_value::numeric between 1 and 1000000)) then
            raise exception 'batch_size: must be a whole number from 1 to 1000000, or null'
                using errcode = 'invalid_parameter_value', column = 'batch_size';
        elsif v_key in ('with_inventory', 'refresh') and jsonb_typeof(v_value) <> 'boolean' then
            raise exception '%: must be true or false', v_key using errcode = 'invalid_parameter_value', column = v_key;
        elsif v_key = 'max_age' and not (jsonb_typeof(v_value) = 'number' and v_value::numeric between 0 and 86400) then
            raise exception 'max_age: must be a number of seconds from 0 to 86400'
                using errcode = 'invalid_parameter_value', column = 'max_age';
        end if;
    end loop;
    if p_request ->> 'conflict' = 'manual' and not p_request ? 'decisions' then
        raise exception 'decisions: conflict manual needs decisions (variant id -> skip|update|duplicate)'
            using errcode = 'invalid_parameter_value', column = 'decisions';
    end if;
    -- one import at a time per restaurant (the job also takes a lock per restaurant)
    select r.id into v_busy from loyverse.loyverse_import_runs r
     where r.restaurant_id = p_restaurant_id and r.status in ('PENDING', 'RUNNING') and not r.dry_run
       and r.updated_at > now() - interval '1 hour'
     limit 1;
    if v_busy is not null then
        raise exception 'restaurant_id: import run % of this restaurant is still running', v_busy
            using errcode = 'object_not_in_prerequisite_state', column = 'restaurant_id';
    end if;
    v_options := p_request || jsonb_build_object('requested_by', loyverse.current_actor());
    insert into loyverse.loyverse_import_runs (restaurant_id, account_id, status, dry_run, options)
    values (p_restaurant_id, v_account, 'PENDING', false, v_options)
    returning id into v_run;
    perform public.procrastinate_defer_jobs_v1(array[
        row('price_sync', 'import_loyverse_menu', 0, 'loyverse_menu_import:' || p_restaurant_id, null,
            jsonb_build_object('run_id', v_run), null)::public.procrastinate_job_to_defer_v1]);
    return v_run;
end;
$$;
comment on function loyverse.request_menu_import(uuid, jsonb) is
    'Ask for a menu import (runs in the worker): p_request = {conflict: skip|update|duplicate|manual, decisions: '
    '{variant_id: skip|update|duplicate}, map: {loyverse_field: column}, categories: [], items: [], exclude: [], '
    'unknown_category, missing, batch_size, with_inventory, refresh, max_age}. Returns the run id; progress in '
    'loyverse.import_runs. Example: select loyverse.request_menu_import(''<uuid>'', ''{"conflict": "update"}'');';

-- The dashboard's chart: queue depth at the end of each of p_buckets equal slices of the
-- last p_minutes, and the changes synced and failed within each. One pass over the
-- restaurant's rows that were open at some point in the window.
create function loyverse.price_sync_timeline(p_restaurant_id uuid, p_minutes integer default 60, p_buckets integer default 12)
returns table (bucket_end timestamptz, queue_depth bigint, synced bigint, failed bigint)
language sql
stable
security definer
set search_path = ''
as $$
    with b as (
        select now() - make_interval(mins => p_minutes) * (p_buckets - i) / p_buckets as t,
               make_interval(mins => p_minutes) / p_buckets as width
          from generate_series(0, least(greatest(p_buckets, 1), 240)) i
    ), q as (
        select y.created_at, y.completed_at, y.status
          from loyverse.loyverse_price_sync_queue y
         where y.restaurant_id = p_restaurant_id
           and (y.completed_at is null or y.completed_at > now() - make_interval(mins => p_minutes))
    )
    select b.t,
           count(q.status) filter (where q.created_at <= b.t and (q.completed_at is null or q.completed_at > b.t)),
           count(q.status) filter (where q.status = 'done' and q.completed_at > b.t - b.width and q.completed_at <= b.t),
           count(q.status) filter (where q.status in ('failed', 'dead')
                                     and q.completed_at > b.t - b.width and q.completed_at <= b.t)
      from b left join q on true
     group by b.t
     order by b.t
$$;
comment on function loyverse.price_sync_timeline(uuid, integer, integer) is
    'Queue depth and changes synced/failed over the last p_minutes in p_buckets slices (the console''s chart). '
    'Example: select * from loyverse.price_sync_timeline(''<uuid>'', 60, 12);';

-- API keys without their hashes: for `apikey list` and DBAs.
create view loyverse.api_keys as
select k.id,
       k.name,
       case when k.is_admin then 'admin' else 'restaurant' end as scope,
       k.restaurant_id,
       r.name as restaurant_name,
       case when k.revoked_at is null then 'active' else 'revoked' end as status,
       k.created_at,
       k.created_by,
       k.last_used_at,
       k.revoked_at,
       k.revoked_by
  from loyverse.loyverse_api_keys k
  left join public.restaurants r on r.id = k.restaurant_id;
comment on view loyverse.api_keys is
    'API keys of the HTTP server (never the key or its hash): scope admin|restaurant, active|revoked, who made it.';

-- Who changed what: every loyverse_sync_logs row with its actor (API key, console user, OS
-- user or database role) and the database role of the session that wrote it.
create view loyverse.audit_trail as
select g.id as log_id,
       g.started_at as at,
       g.restaurant_id,
       r.name as restaurant_name,
       g.sync_type as action,
       g.status,
       g.actor,
       g.db_role,
       g.items_total,
       g.details
  from loyverse.loyverse_sync_logs g
  left join public.restaurants r on r.id = g.restaurant_id
 where g.sync_type <> 'PRICE_SYNC';
comment on view loyverse.audit_trail is
    'Changes and who made them: settings changes (details.changes = {setting: {from, to}}), manual triggers, '
    'retries, imports and undos, API keys. actor = api-key:<name> | console:<key name> | cli:<os user> | sql:<role>.';

-- Grants of the HTTP server's objects. The server and the CLI run as loyverse_worker; the
-- main app (loyverse_app) may request imports, read the chart, and read the status,
-- history, import and audit views; every new function is revoked from PUBLIC first.
revoke execute on function
    loyverse.tg_price_sync_settings__log_change(),
    loyverse.create_api_key(text, bytea, uuid, boolean),
    loyverse.revoke_api_key(text),
    loyverse.api_key_lookup(bytea),
    loyverse.request_menu_import(uuid, jsonb),
    loyverse.price_sync_timeline(uuid, integer, integer)
  from public;

-- current_actor() only reads a session setting: every role writing an audited row needs it
-- (it is loyverse_sync_logs.actor's default).
grant execute on function loyverse.current_actor() to public;

grant execute on function
    loyverse.create_api_key(text, bytea, uuid, boolean),
    loyverse.revoke_api_key(text),
    loyverse.api_key_lookup(bytea)
  to loyverse_worker;

grant execute on function
    loyverse.request_menu_import(uuid, jsonb),
    loyverse.price_sync_timeline(uuid, integer, integer)
  to loyverse_app, loyverse_worker;

grant select, insert, update, delete on loyverse.loyverse_api_keys to loyverse_worker;
grant usage, select on sequence loyverse.loyverse_api_keys_id_seq to loyverse_worker;

revoke all on loyverse.api_keys, loyverse.audit_trail from loyverse_app, loyverse_worker, loyverse_readonly;
grant select on loyverse.api_keys to loyverse_worker, loyverse_readonly;  -- names and scopes, never hashes
grant select on loyverse.audit_trail to loyverse_app, loyverse_worker, loyverse_readonly;
grant select on loyverse.price_sync_status, loyverse.price_sync_history, loyverse.import_runs to loyverse_app;

