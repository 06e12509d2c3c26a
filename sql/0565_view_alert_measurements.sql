-- Each restaurant's alert conditions measured now against their thresholds (read by
-- evaluate_alerts and by operators).
create view loyverse.alert_measurements as
select st.restaurant_id,
       st.restaurant_name,
       m.alert,
       m.value,
       m.threshold,
       m.value >= m.threshold as breached
  from loyverse.price_sync_status st
  join loyverse.loyverse_price_sync_settings s on s.restaurant_id = st.restaurant_id
  cross join lateral (values
      ('FAILURE_RATE', coalesce(1 - st.success_rate_last_hour, 0)::double precision, s.alert_failure_rate),
      ('QUEUE_DEPTH', st.pending::double precision, s.alert_queue_depth::double precision),
      ('OLDEST_PENDING', coalesce(extract(epoch from st.oldest_pending_age), 0)::double precision,
                         s.alert_oldest_pending_seconds::double precision),
      ('DEAD_LETTERS', st.dead::double precision, s.alert_dead_letters::double precision),
      -- prices that differ from Loyverse at the last reconciliation, not repaired since
      ('PRICE_DRIFT', (select count(*) from loyverse.loyverse_price_drift d
                        where d.restaurant_id = st.restaurant_id and d.repaired_at is null)::double precision,
                      1::double precision)
  ) m(alert, value, threshold)
 where s.enabled and not s.paused;

comment on view loyverse.alert_measurements is
    'Each restaurant''s alert conditions now: the measured value, its threshold from the settings, breached or not.';
