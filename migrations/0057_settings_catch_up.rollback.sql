-- Undo 0057: the previous settings update, full sync and enqueue_current_prices; rows queued
-- by a settings change count as manual ones.
update loyverse.loyverse_price_sync_queue set source = 'manual' where source = 'settings';
alter table loyverse.loyverse_price_sync_queue drop constraint queue_source_is_valid;
alter table loyverse.loyverse_price_sync_queue add constraint queue_source_is_valid
    check (source in ('trigger', 'manual', 'retry', 'resolve', 'requeue'));

create or replace function loyverse.trigger_price_sync(p_restaurant_id uuid, p_full boolean default false)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_settings loyverse.loyverse_price_sync_settings := loyverse._price_sync_restaurant(p_restaurant_id);
    v_account bigint;
    v_count integer;
begin
    if not v_settings.enabled or v_settings.sync_direction = 'FROM_LOYVERSE' then
        raise exception 'restaurant: price sync to Loyverse is disabled for % (enabled=%, sync_direction=%)',
            p_restaurant_id, v_settings.enabled, v_settings.sync_direction
            using errcode = 'object_not_in_prerequisite_state', column = 'restaurant';
    end if;
    if v_settings.paused then
        raise exception 'restaurant: price sync is paused for %; resume it first', p_restaurant_id
            using errcode = 'object_not_in_prerequisite_state', column = 'restaurant';
    end if;
    select l.account_id into v_account from loyverse.loyverse_restaurant_links l where l.restaurant_id = p_restaurant_id;

    if p_full then
        perform loyverse.enqueue_current_prices(array(
            select m.product_id
              from loyverse.loyverse_item_mappings m
              join public.products p on p.id = m.product_id
              join loyverse.accounts a on a.id = m.account_id
             where m.restaurant_id = p_restaurant_id
               and m.last_synced_price is distinct from
                   loyverse.price_to_send(p.price, v_settings.price_rounding_rule, a.decimal_places, m.price_factor)
               and not exists (select 1 from loyverse.loyverse_price_sync_queue q
                                where q.product_id = m.product_id and q.status in ('pending', 'processing', 'conflict'))),
            'manual', 200);
    end if;

    update loyverse.loyverse_price_sync_queue q
       set next_attempt_at = now(),
           priority = greatest(q.priority, v_settings.priority + 200),
           updated_at = now()
     where q.restaurant_id = p_restaurant_id and q.status = 'pending';
    get diagnostics v_count = row_count;

    insert into loyverse.loyverse_sync_logs (restaurant_id, account_id, sync_type, status, items_total, details, completed_at)
    values (p_restaurant_id, v_account, 'MANUAL_TRIGGER', 'SUCCESS', v_count,
            jsonb_build_object('full', p_full), now());
    if v_count > 0 and v_account is not null then
        perform loyverse.wake_price_sync(v_account);
    end if;
    return v_count;
end;
$$;
comment on function loyverse.trigger_price_sync(uuid, boolean) is
    'Sync a restaurant now: its pending changes become due with priority + 200 (p_full: also queue every '
    'mapped product not known to be in sync). Returns the rows due. Example: select loyverse.trigger_price_sync(''<uuid>'');';

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
        if v_new.sync_frequency <> v_old.sync_frequency then
            update loyverse.loyverse_price_sync_queue q
               set next_attempt_at = loyverse.price_sync_due_at(v_new.sync_frequency), updated_at = now()
             where q.restaurant_id = p_restaurant_id and q.status = 'pending' and q.attempts = 0
               and q.source = 'trigger';
            if v_new.sync_frequency = 'REALTIME' and not v_new.paused then
                select l.account_id into v_account from loyverse.loyverse_restaurant_links l
                 where l.restaurant_id = p_restaurant_id;
                if v_account is not null then
                    perform loyverse.wake_price_sync(v_account);
                end if;
            end if;
        end if;
    end if;
    return loyverse.price_sync_settings(p_restaurant_id);
end;
$$;
comment on function loyverse.update_price_sync_settings(uuid, jsonb) is
    'Change price-sync settings: p_changes = {"setting": value, ...}. Validated; an error names the field '
    '(its message starts with it; diagnostics column too) and nothing changes. Returns the new settings. '
    'Example: select loyverse.update_price_sync_settings(''<uuid>'', ''{"price_rounding_rule": "UP"}'');';

drop function loyverse._price_sync_out_of_sync(uuid);
drop function loyverse.enqueue_current_prices(uuid[], text, integer, timestamptz);
create function loyverse.enqueue_current_prices(p_product_ids uuid[], p_source text, p_priority_boost integer default 0)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_count integer;
    v_accounts bigint[];
    v_account bigint;
begin
    with wanted as (
        select p.id as product_id, m.restaurant_id, m.account_id, m.last_synced_price as old_price,
               p.price as new_price,
               loyverse.price_to_send(p.price, s.price_rounding_rule, a.decimal_places, m.price_factor) as price_to_send,
               s.priority + p_priority_boost as priority,
               s.max_attempts,
               not s.paused as wake,
               m.loyverse_item_id
          from public.products p
          join loyverse.loyverse_item_mappings m on m.product_id = p.id
          join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id
          join loyverse.accounts a on a.id = m.account_id
         where p.id = any (p_product_ids)
           and s.enabled
           and s.sync_direction in ('TO_LOYVERSE', 'BIDIRECTIONAL')
    ), upserted as (
        insert into loyverse.loyverse_price_sync_queue as q
               (product_id, restaurant_id, account_id, source, priority, old_price, new_price,
                price_to_send, max_attempts, next_attempt_at, loyverse_item_id)
        select w.product_id, w.restaurant_id, w.account_id, p_source, w.priority, w.old_price,
               w.new_price, w.price_to_send, w.max_attempts, now(), w.loyverse_item_id
          from wanted w
        on conflict (product_id) where status = 'pending' do update
           set new_price = excluded.new_price,
               price_to_send = excluded.price_to_send,
               version = q.version + case when q.price_to_send = excluded.price_to_send then 0 else 1 end,
               source = excluded.source,
               loyverse_item_id = excluded.loyverse_item_id,
               priority = greatest(q.priority, excluded.priority),
               next_attempt_at = now(),
               updated_at = now()
        returning q.product_id, q.account_id
    )
    select count(*), array_agg(distinct u.account_id) filter (where w.wake)
      into v_count, v_accounts
      from upserted u join wanted w on w.product_id = u.product_id;

    if v_accounts is not null then
        foreach v_account in array v_accounts loop
            perform loyverse.wake_price_sync(v_account);
        end loop;
    end if;
    return v_count;
end;
$$;
comment on function loyverse.enqueue_current_prices(uuid[], text, integer) is
    'Queue the current price of the given products (due now, priority raised by p_priority_boost) and '
    'wake their accounts; returns the rows queued. Skips products whose restaurant does not sync to Loyverse.';

revoke execute on function loyverse.enqueue_current_prices(uuid[], text, integer) from public;
grant execute on function loyverse.enqueue_current_prices(uuid[], text, integer) to loyverse_worker;
