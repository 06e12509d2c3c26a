-- Undo 0040: the operators' statistics, alert state and their views.
drop function if exists loyverse.evaluate_alerts();
drop view if exists loyverse.alerts;
drop view if exists loyverse.alert_measurements;
drop table if exists loyverse.loyverse_alert_state;
drop view if exists loyverse.api_latency;
drop aggregate if exists loyverse.sum_buckets(bigint[]);
drop function if exists loyverse._sum_buckets(bigint[], bigint[]);
drop function if exists loyverse._latency_quantile(bigint[], double precision);
drop function if exists loyverse.record_api_calls(bigint, jsonb);
drop function if exists loyverse.latency_bounds();
drop table if exists loyverse.loyverse_api_call_stats;
