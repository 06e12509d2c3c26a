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
