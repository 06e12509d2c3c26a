-- Undo 0058: the functions spell the category filter and the outcome-totals upsert out again.

create or replace function loyverse.enqueue_price_changes(
    p_product_ids uuid[],
    p_old_prices numeric[]
)
returns void
language plpgsql
security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
declare
    v_accounts bigint[];
    v_account bigint;
begin
    if pg_catalog.pg_trigger_depth() = 0 then
        raise exception 'loyverse.enqueue_price_changes is for the products trigger only'
            using hint = 'To send current prices again, use loyverse.trigger_price_sync(restaurant_id).';
    end if;
    with upserted as (
        -- One pending row per product (partial unique index): the first change keeps its
        -- old_price, the last one sets new_price, each bumps the version. Claimed rows are
        -- not 'pending', so a change during a send makes a new pending row.
        insert into loyverse.loyverse_price_sync_queue as q
               (product_id, restaurant_id, account_id, priority, old_price, new_price,
                price_to_send, max_attempts, next_attempt_at, loyverse_item_id)
        select c.product_id, m.restaurant_id, m.account_id, s.priority, c.old_price, p.price,
               loyverse.price_to_send(p.price, s.price_rounding_rule, a.decimal_places, m.price_factor),
               s.max_attempts, loyverse.price_sync_due_at(s.sync_frequency), m.loyverse_item_id
          from unnest(p_product_ids, p_old_prices) as c (product_id, old_price)
          join public.products p on p.id = c.product_id
          join loyverse.loyverse_item_mappings m on m.product_id = c.product_id
          join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id
          join loyverse.accounts a on a.id = m.account_id
         where p.price is distinct from c.old_price
           and s.enabled
           and s.sync_direction in ('TO_LOYVERSE', 'BIDIRECTIONAL')
           and (cardinality(s.include_category_ids) = 0 or p.category_id = any (s.include_category_ids))
           and (p.category_id is null or not p.category_id = any (s.exclude_category_ids))
        on conflict (product_id) where status = 'pending' do update
           set new_price = excluded.new_price,
               price_to_send = excluded.price_to_send,
               version = q.version + 1,
               restaurant_id = excluded.restaurant_id,
               account_id = excluded.account_id,
               loyverse_item_id = excluded.loyverse_item_id,
               priority = greatest(q.priority, excluded.priority),
               max_attempts = excluded.max_attempts,
               -- a row backing off after a failure keeps its backoff
               next_attempt_at = case when q.attempts > 0 then q.next_attempt_at
                                      else least(q.next_attempt_at, excluded.next_attempt_at) end,
               updated_at = now()
        returning q.restaurant_id, q.account_id, q.next_attempt_at
    ), due as (
        select distinct u.restaurant_id, u.account_id from upserted u where u.next_attempt_at <= now()
    )
    -- Wake the worker of each account with a due row of a REALTIME, unpaused restaurant.
    select array_agg(distinct d.account_id) into v_accounts
      from due d
      join loyverse.loyverse_price_sync_settings s on s.restaurant_id = d.restaurant_id
     where s.sync_frequency = 'REALTIME' and not s.paused;

    if v_accounts is not null then
        foreach v_account in array v_accounts loop
            perform loyverse.wake_price_sync(v_account);
        end loop;
    end if;
end;
$$;
comment on function loyverse.enqueue_price_changes(uuid[], numeric[]) is
    'Internal to the products trigger: upsert one pending queue row, at its current price, per product '
    'whose price differs from the given old price and that is mapped, '
    'syncs towards Loyverse and passes the category filters; wake each REALTIME account with a due row.';

create or replace function loyverse.tg_price_sync_queue__count_outcome()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    insert into loyverse.loyverse_price_sync_outcome_totals as t (restaurant_id, outcome, total)
    select new.restaurant_id, new.status, 1
     where exists (select 1 from public.restaurants r where r.id = new.restaurant_id)
    on conflict (restaurant_id, outcome) do update
       set total = t.total + excluded.total;
    return null;
end;
$$;
comment on function loyverse.tg_price_sync_queue__count_outcome() is
    'Add 1 to the restaurant''s total of the outcome (done, failed, dead) a queue row entered, '
    'unless loyverse.complete_price_sync_batch counts it itself. Rows of an unknown restaurant are not counted.';

create or replace function loyverse.complete_price_sync_batch(
    p_claimed_by text,
    p_results jsonb,
    p_requests_made integer default 0,
    p_details jsonb default '{}',
    p_started_at timestamptz default null,
    p_backoff_base double precision default 2,
    p_backoff_cap double precision default 900
)
returns jsonb
language plpgsql
security definer
set search_path = ''
set loyverse_sync.outcomes_counted = 'on'
as $$
-- p_results: [{"id", "outcome": done|retry|failed|conflict|release|cancel, "sent": bool,
--              "error", "code", "details": {...}, "loyverse_price": number}]
declare
    v_lost_products uuid[];
    v_lost integer;
    v_counts jsonb;
    v_restaurants uuid[];
    v_account bigint;
    v_log_id bigint;
    v_errors jsonb;
begin
    create temporary table if not exists pg_temp.price_sync_results (
        id bigint primary key, outcome text not null, sent boolean, error text, code text,
        details jsonb, loyverse_price numeric, product_id uuid, mine boolean, superseded boolean,
        restaurant_id uuid, account_id bigint
    ) on commit drop;
    truncate pg_temp.price_sync_results;

    insert into pg_temp.price_sync_results (id, outcome, sent, error, code, details, loyverse_price)
    select r.id, r.outcome, coalesce(r.sent, false), r.error, r.code, r.details, r.loyverse_price
      from jsonb_to_recordset(p_results) as r(id bigint, outcome text, sent boolean, error text,
                                              code text, details jsonb, loyverse_price numeric);
    if exists (select 1 from pg_temp.price_sync_results
                where outcome not in ('done', 'retry', 'failed', 'conflict', 'release', 'cancel')) then
        raise exception 'complete_price_sync_batch: unknown outcome in p_results'
            using errcode = 'invalid_parameter_value';
    end if;

    -- Lock our rows; anything not processing under this claim was lost (lease expired).
    update pg_temp.price_sync_results r
       set mine = true, product_id = q.product_id, restaurant_id = q.restaurant_id, account_id = q.account_id,
           superseded = exists (select 1 from loyverse.loyverse_price_sync_queue p
                                 where p.product_id = q.product_id and p.status = 'pending')
      from loyverse.loyverse_price_sync_queue q
     where q.id = r.id and q.status = 'processing' and q.claimed_by = p_claimed_by;
    perform 1 from loyverse.loyverse_price_sync_queue q
      join pg_temp.price_sync_results r on r.id = q.id and r.mine for update of q;

    select array_agg(q.product_id) filter (where r.sent), count(*)
      into v_lost_products, v_lost
      from pg_temp.price_sync_results r
      join loyverse.loyverse_price_sync_queue q on q.id = r.id
     where r.mine is not true;

    -- done: verified in Loyverse. Here and below, the rows that enter done, failed or dead
    -- are added to their restaurant's outcome total (none for a restaurant that is gone).
    with done as (
        update loyverse.loyverse_price_sync_queue q
           set status = 'done', lease_until = null, completed_at = now(), updated_at = now(),
               last_error = r.error, last_error_code = r.code, error_details = r.details
          from pg_temp.price_sync_results r
         where r.id = q.id and r.mine and r.outcome = 'done'
        returning q.restaurant_id, q.status
    )
    insert into loyverse.loyverse_price_sync_outcome_totals as t (restaurant_id, outcome, total)
    select g.restaurant_id, g.status, g.n
      from (select d.restaurant_id, d.status, count(*) as n
              from done d
             group by d.restaurant_id, d.status) g
     where exists (select 1 from public.restaurants x where x.id = g.restaurant_id)
     order by g.restaurant_id  -- one lock order for concurrent completions
    on conflict (restaurant_id, outcome) do update set total = t.total + excluded.total;
    update loyverse.loyverse_item_mappings m
       set last_synced_price = round(q.price_to_send, 2),
           last_synced_at = now(),
           last_synced_version = q.version,
           sync_direction = 'TO_LOYVERSE',
           needs_attention = false,
           attention_reason = null,
           updated_at = now()
      from pg_temp.price_sync_results r
      join loyverse.loyverse_price_sync_queue q on q.id = r.id
     where r.mine and r.outcome = 'done' and m.product_id = q.product_id;

    -- retry (429, 5xx, timeouts) and release (graceful stop, not an attempt): back to pending,
    -- unless a newer change is pending already, which then carries the price.
    with moved as (
        update loyverse.loyverse_price_sync_queue q
           set status = case when r.superseded then 'cancelled'
                             when r.outcome = 'retry' and q.attempts + 1 >= q.max_attempts then 'dead'
                             else 'pending' end,
               attempts = q.attempts + case when r.outcome = 'retry' then 1 else 0 end,
               next_attempt_at = case when r.outcome = 'release' then now()
                                      else now() + make_interval(secs =>
                                          least(p_backoff_cap, p_backoff_base * power(2, q.attempts))
                                          * (0.5 + random() * 0.5)) end,
               lease_until = null,
               claimed_by = null,
               last_error = case when r.superseded then coalesce(r.error || '; ', '') || 'superseded by a newer change'
                                 else coalesce(r.error, q.last_error) end,
               last_error_code = coalesce(r.code, q.last_error_code),
               error_details = coalesce(r.details, q.error_details),
               completed_at = case when r.superseded or (r.outcome = 'retry' and q.attempts + 1 >= q.max_attempts)
                                   then now() end,
               updated_at = now()
          from pg_temp.price_sync_results r
         where r.id = q.id and r.mine and r.outcome in ('retry', 'release')
        returning q.restaurant_id, q.status
    )
    insert into loyverse.loyverse_price_sync_outcome_totals as t (restaurant_id, outcome, total)
    select g.restaurant_id, g.status, g.n
      from (select m.restaurant_id, m.status, count(*) as n
              from moved m
             where m.status = 'dead'
             group by m.restaurant_id, m.status) g
     where exists (select 1 from public.restaurants x where x.id = g.restaurant_id)
     order by g.restaurant_id
    on conflict (restaurant_id, outcome) do update set total = t.total + excluded.total;

    -- failed: not retryable (variant gone, validation, verification); the mapping is flagged
    with failed as (
        update loyverse.loyverse_price_sync_queue q
           set status = 'failed', attempts = q.attempts + 1, lease_until = null, completed_at = now(),
               updated_at = now(), last_error = r.error, last_error_code = r.code, error_details = r.details
          from pg_temp.price_sync_results r
         where r.id = q.id and r.mine and r.outcome = 'failed'
        returning q.restaurant_id, q.status
    )
    insert into loyverse.loyverse_price_sync_outcome_totals as t (restaurant_id, outcome, total)
    select g.restaurant_id, g.status, g.n
      from (select f.restaurant_id, f.status, count(*) as n
              from failed f
             group by f.restaurant_id, f.status) g
     where exists (select 1 from public.restaurants x where x.id = g.restaurant_id)
     order by g.restaurant_id
    on conflict (restaurant_id, outcome) do update set total = t.total + excluded.total;
    update loyverse.loyverse_item_mappings m
       set needs_attention = true,
           attention_reason = left(coalesce(r.code || ': ', '') || coalesce(r.error, 'price sync failed'), 500),
           updated_at = now()
      from pg_temp.price_sync_results r
     where r.mine and r.outcome = 'failed' and m.product_id = r.product_id;

    -- conflict (BIDIRECTIONAL, price edited in Loyverse): held for `sync resolve`; an older
    -- held row of the same product is superseded by this one.
    update loyverse.loyverse_price_sync_queue q
       set status = 'cancelled', completed_at = now(), updated_at = now(),
           last_error = 'conflict superseded by a newer held change'
      from pg_temp.price_sync_results r
     where r.mine and r.outcome = 'conflict' and q.product_id = r.product_id
       and q.status = 'conflict' and q.id <> r.id;
    update loyverse.loyverse_price_sync_queue q
       set status = 'conflict', lease_until = null, completed_at = now(), updated_at = now(),
           last_error = coalesce(r.error, 'price changed in Loyverse since our last sync'),
           last_error_code = coalesce(r.code, 'CONFLICT'),
           error_details = jsonb_build_object('loyverse_price', r.loyverse_price) || coalesce(r.details, '{}')
      from pg_temp.price_sync_results r
     where r.id = q.id and r.mine and r.outcome = 'conflict';

    update loyverse.loyverse_price_sync_queue q
       set status = 'cancelled', lease_until = null, completed_at = now(), updated_at = now(),
           last_error = coalesce(r.error, 'cancelled'), last_error_code = r.code
      from pg_temp.price_sync_results r
     where r.id = q.id and r.mine and r.outcome = 'cancel';

    if v_lost_products is not null then
        perform loyverse.enqueue_current_prices(v_lost_products, 'requeue', 0);
    end if;

    select jsonb_build_object(
               'done', count(*) filter (where r.mine and r.outcome = 'done'),
               'retried', count(*) filter (where r.mine and r.outcome = 'retry' and q.status = 'pending'),
               'dead', count(*) filter (where r.mine and q.status = 'dead'),
               'failed', count(*) filter (where r.mine and r.outcome = 'failed'),
               'conflicts', count(*) filter (where r.mine and r.outcome = 'conflict'),
               'released', count(*) filter (where r.mine and r.outcome = 'release'),
               'cancelled', count(*) filter (where r.mine and q.status = 'cancelled'),
               'lost', v_lost),
           array_agg(distinct r.restaurant_id) filter (where r.mine),
           min(r.account_id),
           coalesce(jsonb_agg(jsonb_build_object('queue_id', r.id, 'product_id', r.product_id,
                                                 'outcome', r.outcome, 'code', r.code, 'error', r.error,
                                                 'details', r.details))
                    filter (where r.mine and r.outcome in ('retry', 'failed', 'conflict')), '[]')
      into v_counts, v_restaurants, v_account, v_errors
      from pg_temp.price_sync_results r
      left join loyverse.loyverse_price_sync_queue q on q.id = r.id;

    if jsonb_array_length(p_results) > 0 then
        insert into loyverse.loyverse_sync_logs
               (restaurant_id, account_id, sync_type, status, items_total, items_succeeded,
                items_failed, items_skipped, requests_made, error_details, details, started_at, completed_at)
        values (case when cardinality(v_restaurants) = 1 then v_restaurants[1] end,
                v_account,
                'PRICE_SYNC',
                case when (v_counts->>'done')::int = jsonb_array_length(p_results) then 'SUCCESS'
                     when (v_counts->>'done')::int = 0 then 'FAILED'
                     else 'PARTIAL' end,
                jsonb_array_length(p_results),
                (v_counts->>'done')::int,
                (v_counts->>'failed')::int + (v_counts->>'dead')::int,
                jsonb_array_length(p_results) - (v_counts->>'done')::int
                    - (v_counts->>'failed')::int - (v_counts->>'dead')::int,
                greatest(p_requests_made, 0),
                v_errors,
                coalesce(p_details, '{}') || jsonb_build_object('claim', p_claimed_by, 'counts', v_counts,
                                                               'restaurant_ids', to_jsonb(v_restaurants)),
                least(coalesce(p_started_at, now()), now()),
                now())
        returning id into v_log_id;
    end if;
    return v_counts || jsonb_build_object('log_id', v_log_id);
end;
$$;
comment on function loyverse.complete_price_sync_batch(text, jsonb, integer, jsonb, timestamptz, double precision, double precision) is
    'Apply a worker''s outcomes for one claim (done / retry with exponential backoff and jitter, dead at '
    'max_attempts / failed / conflict / release / cancel), update the mappings, write one sync log row. '
    'Rows lost by this claim are not touched; the ones we wrote are queued again. Adds the rows that '
    'entered done, failed or dead to loyverse.loyverse_price_sync_outcome_totals.';

create or replace function loyverse._price_sync_out_of_sync(p_restaurant_id uuid)
returns uuid[]
language sql
stable
set search_path = ''
as $$
    select coalesce(array_agg(m.product_id order by m.product_id), '{}')
      from loyverse.loyverse_item_mappings m
      join public.products p on p.id = m.product_id
      join loyverse.accounts a on a.id = m.account_id
      join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id
     where m.restaurant_id = p_restaurant_id
       and (cardinality(s.include_category_ids) = 0 or p.category_id = any (s.include_category_ids))
       and (p.category_id is null or not p.category_id = any (s.exclude_category_ids))
       and coalesce((select q.price_to_send from loyverse.loyverse_price_sync_queue q
                      where q.product_id = m.product_id and q.status = 'processing'
                      order by q.id desc limit 1),
                    m.last_synced_price)
           is distinct from loyverse.price_to_send(p.price, s.price_rounding_rule, a.decimal_places, m.price_factor)
       and not exists (select 1 from loyverse.loyverse_price_sync_queue q
                        where q.product_id = m.product_id and q.status in ('pending', 'conflict'))
$$;
comment on function loyverse._price_sync_out_of_sync(uuid) is
    'Internal: the mapped products of a restaurant (category filters passed) whose price in Loyverse is not '
    'known to be the one we would send now, and with no pending or conflict row.';

create or replace function loyverse.update_price_sync_settings(p_restaurant_id uuid, p_changes jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_old loyverse.loyverse_price_sync_settings := loyverse._price_sync_restaurant(p_restaurant_id);
    v_new loyverse.loyverse_price_sync_settings;
    v_key text;
    v_value jsonb;
    v_constraint text;
    v_field text;
    v_account bigint;
    v_filters_changed boolean;
    v_editable constant text[] := array['enabled', 'sync_direction', 'sync_frequency', 'include_category_ids',
        'exclude_category_ids', 'price_rounding_rule', 'notify_on_error', 'notification_email', 'max_attempts',
        'priority', 'prices_include_tax', 'alert_failure_rate', 'alert_queue_depth',
        'alert_oldest_pending_seconds', 'alert_dead_letters'];
begin
    if p_changes is null or jsonb_typeof(p_changes) <> 'object' then
        raise exception 'settings: expected a json object of setting = value'
            using errcode = 'invalid_parameter_value', column = 'settings';
    end if;
    v_new := v_old;
    for v_key, v_value in select * from jsonb_each(p_changes) loop
        if not v_key = any (v_editable) then
            raise exception '%: unknown setting (known: %)', v_key, array_to_string(v_editable, ', ')
                using errcode = 'invalid_parameter_value', column = v_key;
        end if;
        if v_value = 'null'::jsonb and v_key <> 'notification_email' then
            raise exception '%: must not be null', v_key using errcode = 'not_null_violation', column = v_key;
        end if;
        begin
            -- one key at a time, so a type error names its field
            v_new := jsonb_populate_record(v_new, jsonb_build_object(v_key, v_value));
        exception when others then
            raise exception '%: invalid value %', v_key, v_value
                using errcode = 'invalid_parameter_value', column = v_key;
        end;
    end loop;
    if exists (select 1 from unnest(v_new.include_category_ids || v_new.exclude_category_ids) c(id)
                where not exists (select 1 from public.categories k
                                   where k.id = c.id and k.restaurant_id = p_restaurant_id)) then
        raise exception '%: unknown category of this restaurant',
            case when exists (select 1 from unnest(v_new.include_category_ids) c(id)
                               where not exists (select 1 from public.categories k
                                                  where k.id = c.id and k.restaurant_id = p_restaurant_id))
                 then 'include_category_ids' else 'exclude_category_ids' end
            using errcode = 'foreign_key_violation';
    end if;

    begin
        update loyverse.loyverse_price_sync_settings s
           set enabled = v_new.enabled,
               sync_direction = v_new.sync_direction,
               sync_frequency = v_new.sync_frequency,
               include_category_ids = v_new.include_category_ids,
               exclude_category_ids = v_new.exclude_category_ids,
               price_rounding_rule = v_new.price_rounding_rule,
               notify_on_error = v_new.notify_on_error,
               notification_email = v_new.notification_email,
               max_attempts = v_new.max_attempts,
               priority = v_new.priority,
               prices_include_tax = v_new.prices_include_tax,
               alert_failure_rate = v_new.alert_failure_rate,
               alert_queue_depth = v_new.alert_queue_depth,
               alert_oldest_pending_seconds = v_new.alert_oldest_pending_seconds,
               alert_dead_letters = v_new.alert_dead_letters,
               updated_at = now()
         where s.restaurant_id = p_restaurant_id;
    exception when check_violation then
        get stacked diagnostics v_constraint = constraint_name;
        v_field := case v_constraint
            when 'sync_direction_is_valid' then 'sync_direction'
            when 'sync_frequency_is_valid' then 'sync_frequency'
            when 'price_rounding_rule_is_valid' then 'price_rounding_rule'
            when 'notification_email_is_valid' then 'notification_email'
            when 'max_attempts_is_between_1_and_50' then 'max_attempts'
            when 'priority_is_between_minus_100_and_100' then 'priority'
            when 'alert_failure_rate_is_a_fraction' then 'alert_failure_rate'
            when 'alert_queue_depth_is_positive' then 'alert_queue_depth'
            when 'alert_oldest_pending_seconds_is_positive' then 'alert_oldest_pending_seconds'
            when 'alert_dead_letters_is_positive' then 'alert_dead_letters'
            when 'notify_on_error_needs_an_email' then 'notification_email'
            when 'categories_are_not_both_included_and_excluded' then 'exclude_category_ids'
            else 'settings' end;
        raise exception '%: invalid value (%)', v_field, v_constraint
            using errcode = 'check_violation', column = v_field, constraint = v_constraint;
    end;

    -- Pending rows are not claimed yet, so they may follow the new settings.
    if not v_new.enabled or v_new.sync_direction = 'FROM_LOYVERSE' then
        update loyverse.loyverse_price_sync_queue q
           set status = 'cancelled', completed_at = now(), updated_at = now(),
               last_error = 'price sync to Loyverse disabled'
         where q.restaurant_id = p_restaurant_id and q.status = 'pending';
    else
        if v_new.price_rounding_rule <> v_old.price_rounding_rule then
            update loyverse.loyverse_price_sync_queue q
               set price_to_send = loyverse.price_to_send(q.new_price, v_new.price_rounding_rule, a.decimal_places, m.price_factor),
                   version = q.version + 1, updated_at = now()
              from loyverse.accounts a, loyverse.loyverse_item_mappings m
             where a.id = q.account_id and m.product_id = q.product_id
               and q.restaurant_id = p_restaurant_id and q.status = 'pending';
        end if;
        v_filters_changed := v_new.include_category_ids is distinct from v_old.include_category_ids
                             or v_new.exclude_category_ids is distinct from v_old.exclude_category_ids;
        if v_filters_changed then
            -- pending changes of products the filters now leave out are not sent
            update loyverse.loyverse_price_sync_queue q
               set status = 'cancelled', completed_at = now(), updated_at = now(),
                   last_error = 'category no longer synced to Loyverse'
              from public.products p
             where p.id = q.product_id
               and q.restaurant_id = p_restaurant_id and q.status = 'pending'
               and not ((cardinality(v_new.include_category_ids) = 0 or p.category_id = any (v_new.include_category_ids))
                        and (p.category_id is null or not p.category_id = any (v_new.exclude_category_ids)));
        end if;
        if v_new.sync_frequency <> v_old.sync_frequency then
            update loyverse.loyverse_price_sync_queue q
               set next_attempt_at = loyverse.price_sync_due_at(v_new.sync_frequency), updated_at = now()
             where q.restaurant_id = p_restaurant_id and q.status = 'pending' and q.attempts = 0
               and q.source in ('trigger', 'settings');
            if v_new.sync_frequency = 'REALTIME' and not v_new.paused then
                select l.account_id into v_account from loyverse.loyverse_restaurant_links l
                 where l.restaurant_id = p_restaurant_id;
                if v_account is not null then
                    perform loyverse.wake_price_sync(v_account);
                end if;
            end if;
        end if;
        -- what was not synced before, or would be sent differently now, catches up
        if not v_old.enabled or v_old.sync_direction = 'FROM_LOYVERSE' or v_filters_changed
           or v_new.price_rounding_rule <> v_old.price_rounding_rule then
            perform loyverse.enqueue_current_prices(loyverse._price_sync_out_of_sync(p_restaurant_id), 'settings', 0,
                                                    loyverse.price_sync_due_at(v_new.sync_frequency));
        end if;
    end if;
    return loyverse.price_sync_settings(p_restaurant_id);
end;
$$;
comment on function loyverse.update_price_sync_settings(uuid, jsonb) is
    'Change price-sync settings: p_changes = {"setting": value, ...}. Validated; an error names the field '
    '(its message starts with it; diagnostics column too) and nothing changes. Returns the new settings. '
    'Example: select loyverse.update_price_sync_settings(''<uuid>'', ''{"price_rounding_rule": "UP"}'');';

drop function loyverse._add_outcome_totals(uuid[], text[]);
drop function loyverse.category_is_synced(uuid, uuid[], uuid[]);
