"""Price sync sends the inverse of the import's tax conversion (the mapping's price factor)."""

from __future__ import annotations

from decimal import Decimal

import pytest


@pytest.fixture
def conn(rolled_back):
    """This module's cases change nothing that outlives them: one database, each test rolled back."""
    return rolled_back

@pytest.mark.parametrize(
    ("price", "rule", "decimals", "factor", "expected"),
    [
        ("4.83", "NONE", 2, "1.05", "4.60"),  # ADDED 5 % tax: Loyverse holds the pre-tax price
        ("4.83", "NONE", 2, "1", "4.83"),
        ("12.00", "NONE", 2, "0.833333", "14.40"),  # INCLUDED 20 % tax removed on import
        (
            "4.87",
            "NEAREST_0.10",
            2,
            "1.05",
            "4.67",
        ),  # rounding applies to our price, then the factor
        ("1100", "NONE", 0, "1.1", "1000"),
    ],
)
def test_price_to_send_divides_the_rounded_price_by_the_factor(
    conn, price, rule, decimals, factor, expected
):
    row = conn.execute(
        "select loyverse.price_to_send(%s::numeric, %s, %s, %s::numeric) as p",
        (price, rule, decimals, factor),
    ).fetchone()
    assert row["p"] == Decimal(expected)


def test_a_price_change_queues_the_price_loyverse_should_hold(conn):
    conn.execute("""
        insert into public.restaurants (name) values ('Nord');
        insert into public.products (restaurant_id, name, price) select id, 'Kombucha', 4.83 from public.restaurants;
        insert into loyverse.loyverse_accounts (name, token_ciphertext, token_key_id) values ('acct', '\\x00', 'k');
        insert into loyverse.loyverse_restaurant_links (restaurant_id, account_id, store_id)
            select r.id, a.id, 's1' from public.restaurants r, loyverse.loyverse_accounts a;
        insert into loyverse.loyverse_price_sync_settings (restaurant_id) select id from public.restaurants;
        insert into loyverse.loyverse_item_mappings (product_id, restaurant_id, account_id, loyverse_item_id,
                                                     loyverse_variant_id, loyverse_store_id, last_synced_price, price_factor)
            select p.id, p.restaurant_id, a.id, 'i1', 'v1', 's1', 4.60, 1.05 from public.products p, loyverse.loyverse_accounts a;
    """)
    conn.execute("update public.products set price = 5.25")
    row = conn.execute(
        "select new_price, price_to_send from loyverse.loyverse_price_sync_queue"
    ).fetchone()
    assert row["new_price"] == Decimal("5.25") and row["price_to_send"] == Decimal("5.000")
