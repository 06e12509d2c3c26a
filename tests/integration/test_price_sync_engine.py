"""The worker logic against the emulator over real HTTP: trigger -> queue -> drain -> Loyverse."""

from __future__ import annotations

import decimal

import pytest

from loyverse_emulator import server
from loyverse_sync.pricesync import engine
from tests.support import pricesync as testing

D = decimal.Decimal
FAST = engine.EngineConfig(http_max_attempts=2, http_timeout=3)
#: a failed row's backoff is its restaurant's setting (production: 2 s, capped at 900 s)
FAST_BACKOFF = {"backoff_base_seconds": 0.01, "backoff_cap_seconds": 0.05}


@pytest.fixture
def emu():
    # time_scale 100: the emulator's 300-request window lasts 3 s (the account says the same)
    with server.EmulatorServer(menu=12, seed=1, stores=3, time_scale=100) as emu:
        yield emu


@pytest.fixture
def seed(conn, emu, fernet_key):
    return testing.seed_from_emulator(conn, emu, stores=3, rate_limit_window_seconds=3.0,
                                      settings=FAST_BACKOFF)


def drain(connector, seed, **kw):
    return engine.drain_account(connector, seed.account_id, config=kw.pop("config", FAST), **kw)


def converged(conn, emu, seed):
    want = testing.db_prices(conn, seed.account_id)
    have = testing.loyverse_prices(emu, seed.merchant_id)
    return {k: (v, have.get(k)) for k, v in want.items() if have.get(k) != v}


def queue(conn):
    return conn.execute("select * from loyverse.loyverse_price_sync_queue order by id").fetchall()


def test_one_price_change_reaches_loyverse_with_two_requests(conn, dsn, connector, emu, seed):
    (_variant_id, _store_id), product_id = next(iter(seed.products.items()))
    conn.execute("update public.products set price = price + 1.25 where id = %s", (product_id,))
    before = len(emu.state.requests_since(0))
    result = drain(connector, seed)
    assert result.counts["done"] == 1
    assert len(emu.state.requests_since(0)) - before == 2  # one bulk GET, one POST
    assert converged(conn, emu, seed) == {}
    (row,) = queue(conn)
    assert row["status"] == "done"
    mapping = conn.execute("select * from loyverse.loyverse_item_mappings where product_id = %s",
                           (product_id,)).fetchone()
    assert mapping["last_synced_price"] == row["price_to_send"]
    assert mapping["sync_direction"] == "TO_LOYVERSE"
    log = conn.execute("select * from loyverse.loyverse_sync_logs where sync_type = 'PRICE_SYNC'").fetchone()
    assert (log["status"], log["items_succeeded"], log["requests_made"]) == ("SUCCESS", 1, 2)


@pytest.mark.parametrize("stores_merge", ["merge", "replace"])
def test_chain_wide_change_is_one_write_per_item_under_both_store_modes(conn, dsn, connector, emu, seed, stores_merge):
    for m in emu.merchants:
        emu.state.set_modes(m["merchant_id"], stores_merge=stores_merge)
    conn.execute("update public.products set price = round(price * 1.05, 2)")
    start = len(emu.state.requests_since(0))
    result = drain(connector, seed)
    log = emu.state.requests_since(0)[start:]
    posts = [e for e in log if e.get("method") == "POST"]
    assert len(posts) == len({i for i in seed.items.values()})
    assert converged(conn, emu, seed) == {}
    assert result.counts["done"] == len(seed.products)


def test_rounding_is_applied_to_the_price_sent(conn, dsn, connector, emu, seed):
    (variant_id, store_id), product_id = next(iter(seed.products.items()))
    rid = seed.restaurants[store_id]
    conn.execute("select loyverse.update_price_sync_settings(%s, '{\"price_rounding_rule\": \"UP\"}')", (rid,))
    conn.execute("update public.products set price = 7.01 where id = %s", (product_id,))
    drain(connector, seed)
    assert testing.loyverse_prices(emu, seed.merchant_id)[(variant_id, store_id)] == D("7.100")


def test_changes_during_an_inflight_send_converge_to_the_last_price(conn, dsn, connector, emu, seed):
    (variant_id, store_id), product_id = next(iter(seed.products.items()))
    prices = iter([D("11.00"), D("12.00"), D("13.00"), D("14.00")])
    conn.execute("update public.products set price = 10 where id = %s", (product_id,))

    original = engine._sync_item

    def sync_item(client, item_id, item, rows):
        # while this item is in flight, the app changes the price again
        price = next(prices, None)
        if price is not None:
            conn.execute("update public.products set price = %s where id = %s", (price, product_id))
        return original(client, item_id, item, rows)

    engine._sync_item = sync_item
    try:
        drain(connector, seed)
    finally:
        engine._sync_item = original
    assert testing.loyverse_prices(emu, seed.merchant_id)[(variant_id, store_id)] == D("14.000")
    assert converged(conn, emu, seed) == {}
    statuses = [r["status"] for r in queue(conn)]
    assert statuses and set(statuses) == {"done"}


def test_variant_gone_fails_at_once_and_flags_the_mapping(conn, dsn, connector, emu, seed):
    (_variant_id, _store_id), product_id = next(iter(seed.products.items()))
    conn.execute("update loyverse.loyverse_item_mappings set loyverse_variant_id = 'gone-variant'"
                 " where product_id = %s", (product_id,))
    conn.execute("update public.products set price = price + 1 where id = %s", (product_id,))
    drain(connector, seed)
    (row,) = queue(conn)
    assert (row["status"], row["last_error_code"], row["attempts"]) == ("failed", "NOT_FOUND", 1)
    mapping = conn.execute("select needs_attention, attention_reason from loyverse.loyverse_item_mappings"
                           " where product_id = %s", (product_id,)).fetchone()
    assert mapping["needs_attention"] and "NOT_FOUND" in mapping["attention_reason"]


def test_server_errors_back_off_then_dead_letter(conn, dsn, connector, emu, seed):
    (_variant_id, store_id), product_id = next(iter(seed.products.items()))
    rid = seed.restaurants[store_id]
    conn.execute("select loyverse.update_price_sync_settings(%s, '{\"max_attempts\": 2, \"backoff_base_seconds\": 60, \"backoff_cap_seconds\": 900}')",
                 (rid,))
    conn.execute("update public.products set price = price + 1 where id = %s", (product_id,))
    emu.state.set_faults(seed.merchant_id, p500=1.0)
    drain(connector, seed, config=engine.EngineConfig(http_max_attempts=1, http_timeout=3))
    (row,) = queue(conn)
    assert (row["status"], row["attempts"], row["last_error_code"]) == ("pending", 1, "INTERNAL_SERVER_ERROR")
    assert conn.execute("select next_attempt_at > now() + interval '20 s' as later"
                        " from loyverse.loyverse_price_sync_queue").fetchone()["later"]
    conn.execute("update loyverse.loyverse_price_sync_queue set next_attempt_at = now()")
    drain(connector, seed)
    (row,) = queue(conn)
    assert (row["status"], row["attempts"]) == ("dead", 2)
    emu.state.set_faults(seed.merchant_id, clear=True)
    assert conn.execute("select loyverse.retry_price_sync(null, null, 'dead') as n").fetchone()["n"] == 1
    drain(connector, seed)
    assert converged(conn, emu, seed) == {}


@pytest.mark.parametrize("fault", [{"p429": 0.5}, {"p500": 0.4}, {"pdrop": 0.3}, {"fail_after_write": 0.4}])
def test_faults_never_leave_an_old_price_in_loyverse(conn, dsn, connector, emu, seed, fault):
    ids = list(seed.products.values())[:12]
    emu.state.set_faults(seed.merchant_id, seed=3, **fault)
    for _n in range(3):
        conn.execute("update public.products set price = price + 0.5 where id = any(%s::uuid[])", (ids,))
        drain(connector, seed)
        conn.execute("update loyverse.loyverse_price_sync_queue set next_attempt_at = now()"
                     " where status = 'pending'")
    emu.state.set_faults(seed.merchant_id, clear=True)
    for _ in range(10):
        conn.execute("update loyverse.loyverse_price_sync_queue set next_attempt_at = now()"
                     " where status = 'pending'")
        if drain(connector, seed).rows == 0:
            break
    assert converged(conn, emu, seed) == {}


def test_counter_edit_is_overwritten_for_to_loyverse_and_logged(conn, dsn, connector, emu, seed):
    (variant_id, store_id), product_id = next(iter(seed.products.items()))
    item_id = seed.items[variant_id]
    _edit_in_loyverse(emu, seed, item_id, variant_id, store_id, D("99.90"))
    conn.execute("update public.products set price = 5 where id = %s", (product_id,))
    drain(connector, seed)
    (row,) = queue(conn)
    assert (row["status"], row["last_error_code"]) == ("done", "CONFLICT_OVERWRITTEN")
    assert testing.loyverse_prices(emu, seed.merchant_id)[(variant_id, store_id)] == D("5.000")


def test_counter_edit_is_held_for_bidirectional_and_resolved(conn, dsn, connector, emu, seed):
    (variant_id, store_id), product_id = next(iter(seed.products.items()))
    rid = seed.restaurants[store_id]
    conn.execute("select loyverse.update_price_sync_settings(%s, '{\"sync_direction\": \"BIDIRECTIONAL\"}')", (rid,))
    _edit_in_loyverse(emu, seed, seed.items[variant_id], variant_id, store_id, D("99.90"))
    conn.execute("update public.products set price = 5 where id = %s", (product_id,))
    drain(connector, seed)
    (row,) = queue(conn)
    assert row["status"] == "conflict" and D(str(row["error_details"]["loyverse_price"])) == D("99.9")
    assert testing.loyverse_prices(emu, seed.merchant_id)[(variant_id, store_id)] == D("99.900")
    # keep ours: pushed over the counter edit
    assert conn.execute("select loyverse.resolve_price_sync_conflicts(%s, 'ours', %s) as n",
                        (rid, product_id)).fetchone()["n"] == 1
    drain(connector, seed)
    assert testing.loyverse_prices(emu, seed.merchant_id)[(variant_id, store_id)] == D("5.000")
    # a second edit, keep theirs: our product takes Loyverse's price, nothing is queued
    _edit_in_loyverse(emu, seed, seed.items[variant_id], variant_id, store_id, D("42.00"))
    conn.execute("update public.products set price = 6 where id = %s", (product_id,))
    drain(connector, seed)
    conn.execute("select loyverse.resolve_price_sync_conflicts(%s, 'theirs')", (rid,))
    assert conn.execute("select price from public.products where id = %s", (product_id,)).fetchone()["price"] == 42
    assert conn.execute("select count(*) as n from loyverse.loyverse_price_sync_queue"
                        " where status in ('pending', 'conflict')").fetchone()["n"] == 0


def _edit_in_loyverse(emu, seed, item_id, variant_id, store_id, price):
    from loyverse_sync.loyverse import client as client_mod
    from loyverse_sync.loyverse import restate

    token = next(m for m in emu.merchants if m["merchant_id"] == seed.merchant_id)["tokens"][0]
    with client_mod.LoyverseClient(emu.base_url, token) as c:
        c.post_item(restate.item_body(c.get_item(item_id), {(variant_id, store_id): price}))
