-- SQL API: change some price-sync settings of a restaurant. Every key is validated; a bad
-- one raises an error naming it (diagnostics column = the key) and nothing changes. Pending
-- rows follow the new settings (frequency, rounding, disabled, category filters), and a
-- change that widens what is sent (sync enabled again, direction back towards Loyverse,
-- category filters or rounding rule changed) queues every product whose price in Loyverse
-- is not known to be the one we would send now, at the restaurant's frequency (source
-- 'settings'): prices changed while a product was not synced are not left behind.
create function loyverse.update_price_sync_settings(p_restaurant_id uuid, p_changes jsonb)
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
    v_allowed text;
    v_account bigint;
    v_filters_changed boolean;
    v_editable constant text[] := array['enabled', 'sync_direction', 'sync_frequency', 'include_category_ids',
        'exclude_category_ids', 'price_rounding_rule', 'notify_on_error', 'notification_email', 'max_attempts',
        'backoff_base_seconds', 'backoff_cap_seconds', 'priority', 'prices_include_tax', 'alert_failure_rate', 'alert_queue_depth',
        'alert_oldest_pending_seconds', 'alert_dead_letters', 'conflict_policy', 'catalog_changes', 'sync_stock',
        'hold_change_percent', 'hold_change_amount', 'hold_below_price'];
    v_nullable constant text[] := array['notification_email', 'hold_change_percent', 'hold_change_amount',
        'hold_below_price'];
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
        if v_value = 'null'::jsonb and not v_key = any (v_nullable) then
            raise exception '%: must not be null (allowed: %)', v_key, loyverse._price_sync_setting_allowed(v_key)
                using errcode = 'not_null_violation', column = v_key;
        end if;
        begin
            -- one key at a time, so a type error names its field
            v_new := jsonb_populate_record(v_new, jsonb_build_object(v_key, v_value));
        exception when others then
            raise exception '%: invalid value % (allowed: %)', v_key, v_value, loyverse._price_sync_setting_allowed(v_key)
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
               backoff_base_seconds = v_new.backoff_base_seconds,
               backoff_cap_seconds = v_new.backoff_cap_seconds,
               priority = v_new.priority,
               prices_include_tax = v_new.prices_include_tax,
               alert_failure_rate = v_new.alert_failure_rate,
               alert_queue_depth = v_new.alert_queue_depth,
               alert_oldest_pending_seconds = v_new.alert_oldest_pending_seconds,
               alert_dead_letters = v_new.alert_dead_letters,
               conflict_policy = v_new.conflict_policy,
               catalog_changes = v_new.catalog_changes,
               sync_stock = v_new.sync_stock,
               hold_change_percent = v_new.hold_change_percent,
               hold_change_amount = v_new.hold_change_amount,
               hold_below_price = v_new.hold_below_price,
               updated_at = now()
         where s.restaurant_id = p_restaurant_id;
    exception when check_violation then
        get stacked diagnostics v_constraint = constraint_name;
        v_field := case v_constraint
            when 'sync_direction_is_valid' then 'sync_direction'
            when 'sync_frequency_is_valid' then 'sync_frequency'
            when 'price_rounding_rule_is_valid' then 'price_rounding_rule'
            when 'notification_email_is_valid' then 'notification_email'
            when 'notification_email_is_at_most_254_characters' then 'notification_email'
            when 'hold_change_percent_is_between_1_and_100000' then 'hold_change_percent'
            when 'hold_change_amount_is_between_0_01_and_99999999' then 'hold_change_amount'
            when 'hold_below_price_is_between_0_and_99999999' then 'hold_below_price'
            when 'max_attempts_is_between_1_and_50' then 'max_attempts'
            when 'backoff_base_seconds_is_between_0_01_and_3600' then 'backoff_base_seconds'
            when 'backoff_cap_seconds_is_between_0_01_and_86400' then 'backoff_cap_seconds'
            -- a check over two settings: name the one this change set (the cap when both)
            when 'backoff_cap_is_at_least_the_base' then
                case when p_changes ? 'backoff_cap_seconds' or not p_changes ? 'backoff_base_seconds'
                     then 'backoff_cap_seconds' else 'backoff_base_seconds' end
            when 'priority_is_between_minus_100_and_100' then 'priority'
            when 'alert_failure_rate_is_a_fraction' then 'alert_failure_rate'
            when 'alert_queue_depth_is_positive' then 'alert_queue_depth'
            when 'alert_oldest_pending_seconds_is_positive' then 'alert_oldest_pending_seconds'
            when 'alert_dead_letters_is_positive' then 'alert_dead_letters'
            when 'conflict_policy_is_valid' then 'conflict_policy'
            when 'catalog_changes_is_valid' then 'catalog_changes'
            when 'notify_on_error_needs_an_email' then 'notification_email'
            when 'categories_are_not_both_included_and_excluded' then 'exclude_category_ids'
            else 'settings' end;
        -- the allowed values, so the error says what would do
        v_allowed := '; allowed: ' || loyverse._price_sync_setting_allowed(v_field);
        raise exception '%: invalid value (%)%', v_field, v_constraint, v_allowed
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
              from loyverse.loyverse_accounts a, loyverse.loyverse_item_mappings m
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
               and not loyverse.category_is_synced(p.category_id, v_new.include_category_ids,
                                                   v_new.exclude_category_ids);
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
    '(its message starts with it; diagnostics column too) and the allowed values, and nothing changes. '
    'Returns the new settings. '
    'Example: select loyverse.update_price_sync_settings(''<uuid>'', ''{"price_rounding_rule": "UP"}'');';
