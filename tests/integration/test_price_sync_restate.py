"""The price write restates the whole item: right whether Loyverse merges an update POST into
the stored item or reads it as the whole object (the emulator's `post_semantics` modes).

A chain-wide price change is synced into the demo's menu (`loyverse-sync demo`; 40 of its
150 items mapped) and into a rich generated menu (options, modifiers, two taxes, costs and
purchase costs, barcodes, composite items, sold by weight, suppliers, stock levels, three
stores of which two are mapped); afterwards every field of every item is as before except
the synced store prices (a fingerprint of every item). A Loyverse answer that resets a restated field fails the rows with VERIFY_FAILED.
"""

from __future__ import annotations

import httpx
import pytest

from loyverse_emulator import server
from loyverse_sync.loyverse import restate
from loyverse_sync.pricesync import engine
from tests.support import chaos as harness
from tests.support import pricesync as testing

FAST = engine.EngineConfig(http_max_attempts=2, http_timeout=3)
#: a failed row's backoff is its restaurant's setting (production: 2 s, capped at 900 s)
FAST_BACKOFF = {"backoff_base_seconds": 0.01, "backoff_cap_seconds": 0.05}


def _emulator(menu: str, post_semantics: str) -> server.EmulatorServer:
    if menu == "demo":  # the menu `loyverse-sync demo` serves (cli/demo.py): 150 items, seed 7, 2 stores
        emu = server.EmulatorServer(menu=150, seed=7, stores=2, merchants=1, time_scale=100,
                                    post_semantics=post_semantics)
    else:
        emu = server.EmulatorServer(menu=60, seed=4, stores=3, time_scale=100, rich_menu=True,
                                    post_semantics=post_semantics)
    for m in emu.merchants:
        emu.state.set_modes(m["merchant_id"], rate_limit=None)
    return emu


@pytest.mark.parametrize("post_semantics", ["merge", "whole"])
@pytest.mark.parametrize("menu", ["demo", "rich"])
def test_a_chain_wide_change_changes_nothing_but_the_synced_prices(conn, dsn, connector, fernet_key, menu, post_semantics):
    with _emulator(menu, post_semantics) as emu:
        # rich: two of the three stores are mapped, the third store's prices must not move either
        seed = testing.seed_from_emulator(conn, emu, stores=2, items=40, rate_limit_window_seconds=3.0,
                                          settings=FAST_BACKOFF)
        before = harness.item_fingerprints(emu, seed.merchant_id, seed.products)
        since = emu.state.requests_since(0)[-1]["id"]
        changed = conn.execute("update public.products set price = price + 1").rowcount
        result = engine.drain_account(connector, seed.account_id, config=FAST)

        fixed = conn.execute("select count(*) as n from loyverse.loyverse_item_mappings"
                             " where loyverse_pricing_type = 'FIXED'").fetchone()["n"]
        assert changed == len(seed.products) > fixed > 0 or changed == fixed > 0
        assert result.counts.get("done") == fixed  # a VARIABLE price (entered at the counter) is never sent
        assert harness.diverged(conn, emu, seed) == {}
        assert harness.fingerprint_changes(before, harness.item_fingerprints(emu, seed.merchant_id,
                                                                             seed.products)) == []
        posts = [e["body"] for e in emu.state.requests_since(since, seed.merchant_id) if e["method"] == "POST"]
        written = conn.execute("select count(distinct loyverse_item_id) as n from loyverse.loyverse_item_mappings"
                               " where loyverse_pricing_type = 'FIXED'").fetchone()["n"]
        assert len(posts) == written > 0  # one write per item with a FIXED price, as before
        sent_keys = {k for body in posts for k in body}
        assert set(restate.ITEM_FIELDS) - sent_keys <= {"description"}  # old items lack the key
        assert not sent_keys & {"handle", "image_url", "created_at", "updated_at", "deleted_at"}
        if menu == "rich":
            assert any(body.get("components") for body in posts)
            assert any(len(body.get("tax_ids") or []) > 1 for body in posts)


def test_the_old_minimal_body_would_reset_the_item_under_the_whole_reading(conn, fernet_key):
    """What the fingerprint and the mode catch: the body the sync sent before (id, item_name,
    variant ids and stores) clears the category, taxes, modifiers, stock tracking and SKUs."""
    with _emulator("rich", "whole") as emu:
        mid = emu.merchants[0]["merchant_id"]
        item = next(i for i in emu.state.items(mid) if i["category_id"] and i["tax_ids"] and i["track_stock"])
        before = harness.item_fingerprints(emu, mid, [])
        with httpx.Client(base_url=emu.base_url, headers={"Authorization": f"Bearer {emu.token}"}) as api:
            body = {"id": item["id"], "item_name": item["item_name"],
                    "variants": [{"variant_id": v["variant_id"], "option1_value": v["option1_value"],
                                  "option2_value": v["option2_value"], "option3_value": v["option3_value"],
                                  "stores": v["stores"]} for v in item["variants"]]}
            assert api.post("/items", json=body).status_code == 200
        changes = harness.fingerprint_changes(before, harness.item_fingerprints(emu, mid, []))
        text = "\n".join(changes)
        for field in ("category_id", "tax_ids", "track_stock"):
            assert f"item {item['id']} {field}:" in text, text
        assert "'sku'" in text  # SKUs are replaced


def test_an_answer_that_resets_a_restated_field_fails_the_rows(conn, dsn, connector, fernet_key):
    with _emulator("rich", "merge") as emu:
        seed = testing.seed_from_emulator(conn, emu, stores=1, rate_limit_window_seconds=3.0,
                                          settings=FAST_BACKOFF)
        item_id = next(i["id"] for i in emu.state.items(seed.merchant_id)
                       if i["id"] in set(seed.items.values()) and i["category_id"])
        pids = [pid for (vid, _), pid in seed.products.items() if seed.items[vid] == item_id]
        emu.state.set_faults(seed.merchant_id, mangle=[{"methods": ["POST"], "path": "^/items$", "target": item_id,
                                                        "ops": [{"op": "set", "path": "/category_id", "value": None}]}])
        conn.execute("update public.products set price = price + 1 where id = any(%s::uuid[])", (pids,))
        engine.drain_account(connector, seed.account_id, config=FAST)
        rows = conn.execute("select status, last_error_code, last_error from loyverse.loyverse_price_sync_queue"
                            ).fetchall()
        assert len(rows) == len(pids) > 0
        assert {(r["status"], r["last_error_code"]) for r in rows} == {("failed", "VERIFY_FAILED")}
        assert all("category_id" in r["last_error"] and "became null" in r["last_error"] for r in rows)
