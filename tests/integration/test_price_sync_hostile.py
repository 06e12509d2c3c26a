"""Hostile Loyverse answers to the price-sync worker: hypothesis-generated corruptions of
GET /items and POST /items (the emulator's `mangle` fault, over real HTTP) — missing,
mistyped and oversized fields, unknown or missing ids, an item dropped or sent twice,
non-JSON / truncated / empty / HTML bodies, a bogus cursor, an empty page with a cursor.

What a user would notice is asserted: every row of an item nobody corrupted is done with
Loyverse holding our price; a corrupted item's rows end done (recovered, right price),
failed (with a code and a message naming what was wrong) or, for transport-like garbage
that never stops, dead after max_attempts; no row stays pending/processing; no traceback
(WORKER_ERROR); and no price or variant in Loyverse changes except to the price we sent.
"""

from __future__ import annotations

import decimal
import gc
import logging
import sys
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyverse_emulator import server
from loyverse_sync import db
from loyverse_sync.pricesync import engine
from tests.support import pricesync as testing

D = decimal.Decimal
FAST = engine.EngineConfig(http_max_attempts=2, http_timeout=3)
#: a failed row's backoff is its restaurant's setting (production: 2 s, capped at 900 s)
FAST_BACKOFF = {"backoff_base_seconds": 0.01, "backoff_cap_seconds": 0.05}
MAX_ATTEMPTS = 3
BULK = "^/items$"  # GET /items?items_ids=...
EVERY_READ = r"^/items(/[^/]+)?$"  # the bulk GET and GET /items/{id}
UNKNOWN_STORE = "00000000-0000-4000-8000-00000000beef"
BOGUS_CURSOR = "AAAAAAAAAAAAAAAA"

# name -> ops applied to the corrupted item in GET answers
READ_CORRUPTIONS: dict[str, list[dict[str, Any]]] = {
    "variants not a list": [{"op": "set", "path": "/variants", "value": "oops"}],
    "variants null": [{"op": "set", "path": "/variants", "value": None}],
    "variant not an object": [{"op": "set", "path": "/variants/0", "value": 7}],
    "variant id missing": [{"op": "remove", "path": "/variants/0/variant_id"}],
    "stores null": [{"op": "set", "path": "/variants/*/stores", "value": None}],
    "stores missing": [{"op": "remove", "path": "/variants/0/stores"}],
    "store entry junk": [{"op": "set", "path": "/variants/0/stores/0", "value": "x"}],
    "price a string": [{"op": "set", "path": "/variants/*/stores/0/price", "value": "12.50"}],
    "price negative": [{"op": "set", "path": "/variants/*/stores/1/price", "value": -5}],
    "price huge": [{"op": "set", "path": "/variants/0/stores/*/price", "value": 1e300}],
    "price boolean": [{"op": "set", "path": "/variants/0/stores/2/price", "value": True}],
    "store id missing": [{"op": "remove", "path": "/variants/0/stores/0/store_id"}],
    "store id unknown": [{"op": "set", "path": "/variants/0/stores/0/store_id", "value": UNKNOWN_STORE}],
    "item id missing": [{"op": "remove", "path": "/id"}],
    "item id unknown": [{"op": "set", "path": "/id", "value": "ffffffff-0000-4000-8000-000000000000"}],
    "item is junk": [{"op": "replace", "value": "junk"}],
    "item dropped": [{"op": "drop"}],
    "item twice": [{"op": "duplicate"}],
    "item twice, different": [{"op": "duplicate", "edits": [
        {"op": "set", "path": "/variants/0/stores/0/price", "value": 0.01}]}],
}
GARBAGE: dict[str, dict[str, Any]] = {
    "html page": {"body": "<html><body>502 Bad Gateway</body></html>", "content_type": "text/html"},
    "empty body": {"body": ""},
    "truncated json": {"truncate": 25},
    "not json": {"body": "OK"},
    "html 500": {"body": "<html>oops</html>", "status": 500, "content_type": "text/html"},
}
# name -> ops applied to the corrupted item in the POST /items answer (the write is applied)
ANSWER_CORRUPTIONS: dict[str, list[dict[str, Any]]] = {
    "variants not a list": [{"op": "set", "path": "/variants", "value": {"a": 1}}],
    "price a string": [{"op": "set", "path": "/variants/*/stores/*/price", "value": "abc"}],
    "item id unknown": [{"op": "set", "path": "/id", "value": "ffffffff-0000-4000-8000-000000000000"}],
    "item is a list": [{"op": "replace", "value": [1, 2]}],
    "other price": [{"op": "set", "path": "/variants/*/stores/*/price", "value": 0.5}],
}

corruptions = st.one_of(
    st.tuples(st.just("read"), st.sampled_from(sorted(READ_CORRUPTIONS)),
              st.sampled_from(["bulk", "every read"]), st.sampled_from([None, 1])),
    st.tuples(st.just("read garbage"), st.sampled_from(sorted(GARBAGE)), st.just("single"),
              st.sampled_from([None, 1])),
    st.tuples(st.just("write garbage"), st.sampled_from(sorted(GARBAGE)), st.just("post"),
              st.sampled_from([None, 1])),
    st.tuples(st.just("answer"), st.sampled_from(sorted(ANSWER_CORRUPTIONS)), st.just("post"),
              st.sampled_from([None, 1])),
)
batch_faults = st.sampled_from([None] * 5 + ["bulk garbage once", "bulk garbage forever", "empty page with a cursor",
                                             "bogus cursor"])


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    changed = sorted(draw(st.sets(st.integers(0, 11), min_size=3, max_size=9)))
    targets = draw(st.lists(st.sampled_from(changed), min_size=1, max_size=min(4, len(changed) - 1), unique=True))
    return {
        "changed": {i: draw(st.integers(1, 999)) for i in changed},  # item index -> cents added
        "corrupt": {i: draw(corruptions) for i in targets},
        "batch": draw(batch_faults),
    }


def _rules(item_id: str, corruption: tuple[str, str, str, int | None]) -> list[dict[str, Any]]:
    family, name, place, count = corruption
    if family == "read":
        path = BULK if place == "bulk" else EVERY_READ
        return [{"methods": ["GET"], "path": path, "target": item_id, "ops": READ_CORRUPTIONS[name],
                 "count": count}]
    if family == "read garbage":  # GET /items/{id} only (reached when the bulk read was bad)
        return [{"methods": ["GET"], "path": r"^/items/[^/]+$", "target": item_id, "count": count,
                 **GARBAGE[name]}]
    if family == "write garbage":
        return [{"methods": ["POST"], "path": BULK, "target": item_id, "count": count, **GARBAGE[name]}]
    return [{"methods": ["POST"], "path": BULK, "target": item_id, "ops": ANSWER_CORRUPTIONS[name],
             "count": count}]


def _expected(corruption: tuple[str, str, str, int | None]) -> set[tuple[str, str | None]]:
    """Allowed final (status, last_error_code) of the corrupted item's rows."""
    family, name, place, count = corruption
    done = {("done", None)}
    if family == "read":
        if name == "store id unknown":  # restated as read: Loyverse refuses the write (404)
            return {("failed", "NOT_FOUND")}
        if place == "bulk" or count == 1 or name in ("item dropped", "item twice", "item twice, different"):
            return done  # re-read alone (GET /items/{id}) and recovered
        if name == "item is junk":
            return {("failed", "MALFORMED_RESPONSE")}
        return {("failed", "MALFORMED_ITEM")}
    if family == "read garbage":
        return done  # the bulk read was fine: never re-read alone
    if family == "write garbage":
        return done  # applied; the retry reads our price back
    if name == "other price":
        return {("failed", "VERIFY_FAILED")}
    return done  # an unusable answer is retried; the re-read shows our price


@pytest.fixture
def _no_earlier_garbage():
    # Earlier tests (tests/integration/test_price_sync_worker.py) leave an unclosed psycopg
    # connection in a reference cycle; this test allocates enough to trigger the collector,
    # which would report that leak here. Collect it now, without blaming this test.
    hook = sys.unraisablehook
    sys.unraisablehook = lambda _unraisable: None
    try:
        gc.collect()
    finally:
        sys.unraisablehook = hook


@pytest.fixture
def emu(_no_earlier_garbage):
    with server.EmulatorServer(menu=12, seed=1, stores=3, time_scale=100) as emu:
        for m in emu.merchants:
            emu.state.set_modes(m["merchant_id"], rate_limit=None)
        yield emu


@pytest.fixture
def seed(conn, emu, fernet_key):
    return testing.seed_from_emulator(conn, emu, stores=3, rate_limit_window_seconds=3.0,
                                      settings={"max_attempts": MAX_ATTEMPTS, **FAST_BACKOFF})


def _variants(emu: server.EmulatorServer, mid: str) -> dict[str, set[str]]:
    dump = emu.state.dump(mid)[mid]
    return {i["id"]: {v["variant_id"] for v in i.get("variants") or [] if not v.get("deleted_at")}
            for i in dump["items"] if not i.get("deleted_at")}


def _drain_until_settled(connector: db.Connector, conn: Any, seed: testing.Seed, since: int) -> list[dict[str, Any]]:
    for _ in range(4 * MAX_ATTEMPTS + 4):
        engine.drain_account(connector, seed.account_id, config=FAST)
        rows = conn.execute("select * from loyverse.loyverse_price_sync_queue where id > %s order by id",
                            (since,)).fetchall()
        if not any(r["status"] in ("pending", "processing") for r in rows):
            return rows
        time.sleep(0.06)
    return rows


# derandomize: CI gets the same 30 examples every run (a landing gate must not flake);
# explore with more examples and random seeds locally (250 passed when this was written).
@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@pytest.mark.slow  # a few seconds: left out of the fast lane, run by CI
@given(scenario=scenarios())
def test_bad_loyverse_answers_fail_only_the_affected_rows(conn, dsn, connector, emu, seed, caplog, scenario):
    mid = seed.merchant_id
    item_ids = sorted(set(seed.items.values()))
    by_product = {p: key for key, p in seed.products.items()}
    emu.state.set_faults(mid, clear=True)
    before_prices = testing.loyverse_prices(emu, mid)
    before_variants = _variants(emu, mid)
    since = conn.execute("select coalesce(max(id), 0) as n from loyverse.loyverse_price_sync_queue").fetchone()["n"]

    changed = {item_ids[i]: D(cents) / 100 for i, cents in scenario["changed"].items() if i < len(item_ids)}
    for item_id, delta in changed.items():
        products = [p for (vid, _sid), p in seed.products.items() if seed.items[vid] == item_id]
        conn.execute("update public.products set price = price + %s where id = any(%s)", (delta, products))
    corrupt = {item_ids[i]: c for i, c in scenario["corrupt"].items() if i < len(item_ids)}
    rules = [rule for item_id, c in corrupt.items() for rule in _rules(item_id, c)]
    batch = scenario["batch"]
    if batch in ("bulk garbage once", "bulk garbage forever"):
        rules.append({"methods": ["GET"], "path": BULK, "body": "<html>Service Unavailable</html>",
                      "count": 1 if batch == "bulk garbage once" else None})
    elif batch == "empty page with a cursor":
        rules.append({"methods": ["GET"], "path": BULK, "count": 1, "ops": [
            {"op": "set", "path": "/items", "value": []}, {"op": "set", "path": "/cursor", "value": BOGUS_CURSOR}]})
    elif batch == "bogus cursor":
        rules.append({"methods": ["GET"], "path": BULK, "ops": [
            {"op": "set", "path": "/cursor", "value": BOGUS_CURSOR}]})
    with emu.admin() as adm:
        adm.set_faults(mid, clear=True, mangle=rules)

    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="loyverse_sync"):
        rows = _drain_until_settled(connector, conn, seed, since)
    emu.state.set_faults(mid, clear=True)
    after_prices = testing.loyverse_prices(emu, mid)

    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]  # no traceback
    assert rows, "the price changes were queued"
    targets: dict[tuple[str, str], D] = {}
    for row in rows:
        key = by_product[str(row["product_id"])]
        item_id = seed.items[key[0]]
        status, code = row["status"], row["last_error_code"]
        assert status not in ("pending", "processing"), row
        assert code != "WORKER_ERROR", row["last_error"]
        target = D(row["price_to_send"]).quantize(D("0.001"))
        targets[key] = target
        if batch == "bulk garbage forever":
            allowed = {("dead", "MALFORMED_RESPONSE")}
        elif item_id in corrupt:
            allowed = _expected(corrupt[item_id])
            if batch == "empty page with a cursor" and corrupt[item_id][2] == "bulk":
                # the emptied first bulk read hides the item's bulk-only corruption: the item
                # is re-read alone (clean) and written
                allowed = allowed | {("done", None)}
        else:
            allowed = {("done", None)}
        got = (status, None if status == "done" else code)
        assert got in allowed, (item_id, corrupt.get(item_id), batch, status, code, row["last_error"])
        if status == "done":
            assert after_prices[key] == target, (key, corrupt.get(item_id), batch)
        else:
            assert row["last_error"] and len(row["last_error"]) > 10, row
            if code == "MALFORMED_ITEM":
                assert item_id in row["last_error"] and "unusable" in row["last_error"]
            if status == "dead":
                assert row["attempts"] == MAX_ATTEMPTS
    # Loyverse: nothing changed except to the price we sent; no variant deleted
    for key, price in after_prices.items():
        assert price == before_prices.get(key) or price == targets.get(key), (key, price, corrupt, batch)
    assert _variants(emu, mid) == before_variants
