-- Open and close alert breaches and queue one ALERT or RECOVERY email per change; the worker
-- runs it every minute.
create function loyverse.evaluate_alerts()
returns table (restaurant_id uuid, alert text, change text, value double precision)
language plpgsql
set search_path = ''
as $$
-- Open a breach (and queue an ALERT email) for every condition newly over its threshold;
-- close it (and queue a RECOVERY email) when it is back under. Once per breach, whatever
-- how often this runs: the open breach is remembered in loyverse_alert_state.
begin
    create temporary table if not exists pg_temp.alert_changes (
        restaurant_id uuid, alert text, change text, value double precision, threshold double precision
    ) on commit drop;
    truncate pg_temp.alert_changes;

    with opened as (
        insert into loyverse.loyverse_alert_state as a (restaurant_id, alert, value, threshold)
        select m.restaurant_id, m.alert, m.value, m.threshold
          from loyverse.alert_measurements m
         where m.breached
           and not exists (select 1 from loyverse.loyverse_alert_state o
                            where o.restaurant_id = m.restaurant_id and o.alert = m.alert
                              and o.recovered_at is null)
        on conflict do nothing
        returning a.restaurant_id, a.alert, a.value, a.threshold
    )
    insert into pg_temp.alert_changes select o.restaurant_id, o.alert, 'BREACHED', o.value, o.threshold from opened o;

    with closed as (
        update loyverse.loyverse_alert_state a
           set recovered_at = now(), value = m.value
          from loyverse.alert_measurements m
         where a.restaurant_id = m.restaurant_id and a.alert = m.alert
           and a.recovered_at is null and not m.breached
        returning a.restaurant_id, a.alert, m.value, a.threshold
    )
    insert into pg_temp.alert_changes select c.restaurant_id, c.alert, 'RECOVERED', c.value, c.threshold from closed c;

    insert into loyverse.loyverse_notification_outbox (restaurant_id, kind, recipient, subject, body, payload, dedupe_key)
    select c.restaurant_id,
           case c.change when 'BREACHED' then 'ALERT' else 'RECOVERY' end,
           s.notification_email,
           format('[loyverse-sync] %s: %s %s', r.name, replace(lower(c.alert), '_', ' '),
                  case c.change when 'BREACHED' then 'over its threshold' else 'back to normal' end),
           format(E'Restaurant: %s
Condition: %s
Value: %s
Threshold: %s
At: %s

%s',
                  r.name, c.alert, round(c.value::numeric, 3), round(c.threshold::numeric, 3), now(),
                  case c.change when 'BREACHED'
                       then 'See `loyverse-sync sync status --restaurant ' || r.id || '` for details.'
                       else 'No action needed.' end),
           jsonb_build_object('alert', c.alert, 'change', c.change, 'value', c.value, 'threshold', c.threshold),
           format('alert:%s:%s:%s:%s', c.restaurant_id, c.alert, c.change,
                  (select max(a.breached_at) from loyverse.loyverse_alert_state a
                    where a.restaurant_id = c.restaurant_id and a.alert = c.alert))
      from pg_temp.alert_changes c
      join public.restaurants r on r.id = c.restaurant_id
      join loyverse.loyverse_price_sync_settings s on s.restaurant_id = c.restaurant_id
     where s.notification_email is not null
    on conflict (dedupe_key) do nothing;

    return query select c.restaurant_id, c.alert, c.change, c.value from pg_temp.alert_changes c;
end;
$$;

comment on function loyverse.evaluate_alerts() is
    'Compare every restaurant''s alert conditions with its thresholds; open/close breaches and queue one '
    'ALERT or RECOVERY email per change. Run periodically by the worker.';
