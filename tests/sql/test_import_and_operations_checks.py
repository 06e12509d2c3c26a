"""The named CHECKs of the menu-import and operations tables reject bad data, naming themselves."""

from __future__ import annotations

import psycopg
import pytest

VIOLATIONS = {
    "snapshot_requests_are_nonnegative": "update loyverse.loyverse_snapshots set requests_made = -1",
    "snapshot_object_kind_is_valid": "update loyverse.loyverse_snapshot_objects set kind = 'receipt'",
    "object_mapping_kind_is_valid": "update loyverse.loyverse_object_mappings set kind = 'tax'",
    "plan_match_rule_is_valid": "update loyverse.loyverse_import_plan set match_rule = 'barcode'",
    "plan_decision_is_valid": "update loyverse.loyverse_import_plan set decision = 'merge'",
    "plan_outcome_is_valid": "update loyverse.loyverse_import_plan set outcome = 'maybe'",
    "plan_object_kind_is_valid": "update loyverse.loyverse_import_plan_objects set kind = 'tax'",
    "plan_object_match_rule_is_valid": "update loyverse.loyverse_import_plan_objects set match_rule = 'sku'",
    "plan_object_decision_is_valid": "update loyverse.loyverse_import_plan_objects set decision = 'skip'",
    "issue_severity_is_valid": "update loyverse.loyverse_import_issues set severity = 'panic'",
    "api_calls_is_nonnegative": "update loyverse.loyverse_api_call_stats set calls = -1",
    "latency_buckets_has_ten_bounds": "update loyverse.loyverse_api_call_stats set latency_buckets = '{1,2}'",
    "alert_is_known": "update loyverse.loyverse_alert_state set alert = 'SOMETHING'",
}



@pytest.fixture
def conn(rolled_back):
    """This module's cases change nothing that outlives them: one database, each test rolled back."""
    return rolled_back

@pytest.fixture
def rows(conn):
    conn.execute("""
        insert into public.restaurants (name) values ('Nord');
        insert into loyverse.loyverse_accounts (name, token_ciphertext, token_key_id) values ('acct', '\\x00', 'k');
        insert into loyverse.loyverse_snapshots (account_id) select id from loyverse.loyverse_accounts;
        insert into loyverse.loyverse_snapshot_objects (snapshot_id, seq, kind, payload)
            select id, 1, 'item', '{}' from loyverse.loyverse_snapshots;
        insert into loyverse.loyverse_object_mappings (restaurant_id, kind, loyverse_id, local_id)
            select id, 'category', 'c1', gen_random_uuid() from public.restaurants;
        insert into loyverse.loyverse_import_runs (restaurant_id) select id from public.restaurants;
        insert into loyverse.loyverse_import_plan (run_id, row_no, item_seq) select id, 1, 1 from loyverse.loyverse_import_runs;
        insert into loyverse.loyverse_import_plan_objects (run_id, kind, loyverse_id, name, local_id, decision)
            select id, 'category', 'c1', 'Drinks', gen_random_uuid(), 'create' from loyverse.loyverse_import_runs;
        insert into loyverse.loyverse_import_issues (run_id, severity, code, message)
            select id, 'fidelity', 'VARIABLE_PRICE', 'm' from loyverse.loyverse_import_runs;
        select loyverse.record_api_calls(id, '[{"method": "GET", "endpoint": "/items", "status": 200, "seconds": 0.1}]')
            from loyverse.loyverse_accounts;
        insert into loyverse.loyverse_alert_state (restaurant_id, alert) select id, 'DEAD_LETTERS' from public.restaurants;
    """)


@pytest.mark.parametrize("constraint", sorted(VIOLATIONS))
def test_bad_data_is_rejected_by_the_named_check(conn, rows, constraint):
    with pytest.raises(psycopg.errors.CheckViolation) as info:
        conn.execute(VIOLATIONS[constraint])
    assert info.value.diag.constraint_name == constraint
