-- Grants for the operators' statistics, alerts and views.
grant select, insert, update, delete on loyverse.loyverse_api_call_stats, loyverse.loyverse_alert_state to loyverse_worker;
grant execute on function loyverse.record_api_calls(bigint, jsonb), loyverse.evaluate_alerts() to loyverse_worker;
grant select on loyverse.api_latency, loyverse.alert_measurements, loyverse.alerts to loyverse_readonly, loyverse_worker;
