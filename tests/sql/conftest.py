"""Fixtures shared by the SQL tests of the price-sync queue."""

from __future__ import annotations

import pytest


@pytest.fixture
def world(conn, fernet_key):
    """One account, two restaurants (stores s1, s2) of it, three mapped products each."""
    from loyverse_sync import accounts

    account_id = accounts.add_account(conn, name="acc", token="tok", base_url="http://127.0.0.1:9/v1.0")
    out = {"account_id": account_id, "restaurants": [], "products": []}
    for n, store in enumerate(("s1", "s2")):
        rid = accounts.add_restaurant(conn, f"R{n}")
        accounts.link_restaurant(conn, rid, account_id, store)
        cat = conn.execute("insert into public.categories (restaurant_id, name) values (%s, 'c') returning id",
                           (rid,)).fetchone()["id"]
        out["restaurants"].append(rid)
        for k in range(3):
            pid = conn.execute("insert into public.products (restaurant_id, category_id, name, price)"
                               " values (%s, %s, %s, 10) returning id", (rid, cat, f"p{k}")).fetchone()["id"]
            conn.execute("insert into loyverse.loyverse_item_mappings (product_id, restaurant_id, account_id,"
                         " loyverse_item_id, loyverse_variant_id, loyverse_store_id, last_synced_price)"
                         " values (%s, %s, %s, %s, %s, %s, 10)", (pid, rid, account_id, f"item{k}", f"v{k}", store))
            out["products"].append(pid)
        out.setdefault("categories", []).append(cat)
    # the guardrails (a move past 100 % is held) are tested on their own (test_price_sync_guardrails)
    conn.execute("update loyverse.loyverse_price_sync_settings set hold_change_percent = null")
    conn.execute("delete from loyverse.loyverse_sync_logs where sync_type = 'SETTINGS_CHANGE'")  # the fixture's, not the test's
    return out
