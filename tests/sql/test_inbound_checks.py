"""The named CHECKs of the inbound tables (inbox, inbound settings, objects, audit, drift) and
the new settings reject bad data, naming themselves."""

from __future__ import annotations

import psycopg
import pytest

VIOLATIONS = {
    "conflict_policy_is_valid": "update loyverse.loyverse_price_sync_settings set conflict_policy = 'newest'",
    "catalog_changes_is_valid": "update loyverse.loyverse_price_sync_settings set catalog_changes = 'ignore'",
    "url_secret_is_long": "update loyverse.loyverse_inbound_settings set url_secret = 'short'",
    "client_secret_has_a_key": "update loyverse.loyverse_inbound_settings set client_secret_ciphertext = '\\x00'",
    "poll_interval_seconds_is_between_10_and_86400": "update loyverse.loyverse_inbound_settings set poll_interval_seconds = 5",
    "poll_overlap_seconds_is_between_0_and_86400": "update loyverse.loyverse_inbound_settings set poll_overlap_seconds = -1",
    "inbox_source_is_valid": "update loyverse.loyverse_inbox set source = 'email'",
    "inbox_status_is_valid": "update loyverse.loyverse_inbox set status = 'lost'",
    "inbox_attempts_is_nonnegative": "update loyverse.loyverse_inbox set attempts = -1",
    "inbound_object_kind_is_valid": "update loyverse.loyverse_inbound_objects set kind = 'category'",
    "inbound_decision_is_valid": "update loyverse.loyverse_inbound_audit set decision = 'SHRUG'",
    "drift_kind_is_valid": "update loyverse.loyverse_price_drift set kind = 'colour'",
}



@pytest.fixture
def conn(rolled_back):
    """This module's cases change nothing that outlives them: one database, each test rolled back."""
    return rolled_back

@pytest.fixture
def rows(conn):
    conn.execute("""
        insert into public.restaurants (name) values ('Nord');
        insert into public.products (restaurant_id, name, price) select id, 'Tea', 3 from public.restaurants;
        insert into loyverse.loyverse_accounts (name, token_ciphertext, token_key_id) values ('acct', '\\x00', 'k');
        insert into loyverse.loyverse_price_sync_settings (restaurant_id) select id from public.restaurants;
        insert into loyverse.loyverse_inbound_settings (account_id) select id from loyverse.loyverse_accounts;
        insert into loyverse.loyverse_inbox (account_id, source, body) select id, 'webhook', '{}' from loyverse.loyverse_accounts;
        insert into loyverse.loyverse_inbound_objects (account_id, kind, loyverse_id)
            select id, 'item', 'i1' from loyverse.loyverse_accounts;
        insert into loyverse.loyverse_inbound_audit (account_id, decision)
            select id, 'PRICE_APPLIED' from loyverse.loyverse_accounts;
        insert into loyverse.loyverse_price_drift (restaurant_id, product_id, account_id, loyverse_item_id,
                                                   loyverse_variant_id, kind)
            select p.restaurant_id, p.id, a.id, 'i1', 'v1', 'price' from public.products p, loyverse.loyverse_accounts a;
    """)


@pytest.mark.parametrize("constraint", sorted(VIOLATIONS))
def test_bad_data_is_rejected_by_the_named_check(conn, rows, constraint):
    with pytest.raises(psycopg.errors.CheckViolation) as info:
        conn.execute(VIOLATIONS[constraint])
    assert info.value.diag.constraint_name == constraint


def test_a_valid_row_passes_every_check(conn, rows):
    counts = conn.execute("""select (select count(*) from loyverse.loyverse_inbox) as inbox,
                                    (select count(*) from loyverse.loyverse_price_drift) as drift""").fetchone()
    assert counts == {"inbox": 1, "drift": 1}
