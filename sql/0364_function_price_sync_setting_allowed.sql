-- Internal helper of the settings API: the values a setting accepts, for error messages.
create function loyverse._price_sync_setting_allowed(p_key text)
returns text
language sql
immutable
set search_path = ''
as $$
    select case p_key
        when 'enabled' then 'true, false'
        when 'sync_direction' then 'TO_LOYVERSE, FROM_LOYVERSE, BIDIRECTIONAL'
        when 'sync_frequency' then 'REALTIME, BATCH_5MIN, BATCH_HOURLY, MANUAL'
        when 'price_rounding_rule' then 'NONE, NEAREST_0.05, NEAREST_0.10, UP, DOWN'
        when 'include_category_ids' then 'a list of category ids of this restaurant'
        when 'exclude_category_ids' then 'a list of category ids of this restaurant, none of them included'
        when 'notify_on_error' then 'true, false (true needs notification_email)'
        when 'notification_email' then 'an email address of at most 254 characters, or null'
        when 'max_attempts' then 'an integer from 1 to 50'
        when 'backoff_base_seconds' then 'a number of seconds from 0.01 to 3600, at most backoff_cap_seconds'
        when 'backoff_cap_seconds' then 'a number of seconds from 0.01 to 86400, at least backoff_base_seconds'
        when 'priority' then 'an integer from -100 to 100'
        when 'prices_include_tax' then 'true, false'
        when 'alert_failure_rate' then 'a number above 0 and at most 1'
        when 'alert_queue_depth' then 'an integer of at least 1'
        when 'alert_oldest_pending_seconds' then 'an integer of at least 1'
        when 'alert_dead_letters' then 'an integer of at least 1'
        when 'conflict_policy' then 'hold, ours, theirs, latest'
        when 'catalog_changes' then 'report, apply'
        when 'sync_stock' then 'true, false'
        when 'hold_change_percent' then 'a number from 1 to 100000, or null (no limit)'
        when 'hold_change_amount' then 'a number from 0.01 to 99999999, or null (no limit)'
        when 'hold_below_price' then 'a number from 0 to 99999999, or null (no floor)'
        else 'see loyverse.price_sync_settings()'
    end
$$;
comment on function loyverse._price_sync_setting_allowed(text) is
    'Internal: the values a price-sync setting accepts, as named in update_price_sync_settings'' errors.';
