"""Without webhooks: polling brings back-office edits in; reconciliation finds exactly the
injected drift with about one request per 250 items and repairs it in each direction."""

from __future__ import annotations

import decimal
import json
import math
import os
import subprocess
import sys

import pytest

from loyverse_emulator import server
from loyverse_sync.inbound import jobs
from tests.support import inbound as itesting
from tests.support import pricesync as testing

D = decimal.Decimal


def cli(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["DATABASE_URL"] = dsn
    return subprocess.run([sys.executable, "-m", "loyverse_sync", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def price(conn, product_id) -> D:
    return conn.execute("select price from public.products where id = %s", (product_id,)).fetchone()["price"]


def item_gets(adm, merchant_id) -> int:
    return sum(1 for r in adm.requests(merchant_id=merchant_id)
               if r["method"] == "GET" and r["path"].rstrip("/").endswith("/items"))


def test_polling_brings_a_back_office_price_in_when_no_webhook_is_subscribed(conn, dsn, connector, fernet_key):
    with server.EmulatorServer(menu=6, seed=4, stores=1) as emu, emu.admin() as adm:
        seed = testing.seed_from_emulator(conn, emu, stores=1, settings={"sync_direction": "FROM_LOYVERSE"})
        (variant_id, store_id), product_id = sorted(seed.products.items())[0]
        first = jobs.poll_due(connector)  # the first poll only starts the cursor
        assert [(r["account_id"], r["pages"]) for r in first] == [(seed.account_id, 0)]
        assert jobs.poll_due(connector) == []  # not due again before its interval
        adm.set_price(variant_id, store_id, 31.25, merchant_id=seed.merchant_id)
        assert adm.webhook_deliveries() == []
        conn.execute("update loyverse.loyverse_inbound_settings set last_polled_at = now() - interval '1 hour'")
        gets = item_gets(adm, seed.merchant_id)
        (polled,) = jobs.poll_due(connector)
        assert polled["stored"] == 1 and item_gets(adm, seed.merchant_id) == gets + 1
        with itesting.running_worker(dsn):  # its apply job takes the delivery in
            itesting.wait_for(lambda: price(conn, product_id) == D("31.25"), what="the polled price")
        # the overlap window reads the same item again: applying it again changes nothing
        conn.execute("update loyverse.loyverse_inbound_settings set last_polled_at = now() - interval '1 hour'")
        (again,) = jobs.poll_due(connector)
        assert again["items"] >= 1
        assert conn.execute("select loyverse.apply_loyverse_inbox(%s) as r", (seed.account_id,)
                            ).fetchone()["r"]["failed"] == 0
    assert conn.execute("select count(*) as n from loyverse.loyverse_price_sync_queue").fetchone()["n"] == 0
    sources = conn.execute("select i.source from loyverse.inbound_decisions d join loyverse.loyverse_inbox i"
                           " on i.id = d.inbox_id where d.decision = 'PRICE_APPLIED'").fetchall()
    assert [s["source"] for s in sources] == ["poll"]


@pytest.mark.slow
def test_reconcile_finds_exactly_the_injected_drift_and_repairs_it(conn, dsn, fernet_key):
    with server.EmulatorServer(menu=260, seed=5, stores=1) as emu, emu.admin() as adm:
        seed = testing.seed_from_emulator(conn, emu, stores=1)  # TO_LOYVERSE
        (rid,) = seed.restaurants.values()
        keys = sorted(k for k in seed.products
                      if emu.state.variant_price(k[0], k[1], seed.merchant_id) is not None)
        theirs = keys[:3]
        ours = keys[10:12]
        adm.set_prices([{"variant_id": v, "store_id": s, "price": 500 + n} for n, (v, s) in enumerate(theirs)],
                       merchant_id=seed.merchant_id)
        conn.execute("begin")
        conn.execute("set local loyverse_sync.origin = 'loyverse'")  # a change that was never queued
        conn.execute("update public.products set price = price + 1 where id = any(%s::uuid[])",
                     ([seed.products[k] for k in ours],))
        conn.execute("commit")
        items = len(set(seed.items.values()))
        before = item_gets(adm, seed.merchant_id)
        found = cli(dsn, "sync", "reconcile", rid, "--json")
        assert found.returncode == 1, found.stderr
        report = json.loads(found.stdout)
        assert item_gets(adm, seed.merchant_id) - before == math.ceil(items / 250) == report["requests"]
        drifted = {(r["kind"], r["loyverse_price"] is not None) for r in report["rows"]}
        assert report["drift"] == 5 and drifted == {("price", True)}
        view = conn.execute("select product_id::text from loyverse.price_drift where restaurant_id = %s",
                            (rid,)).fetchall()
        assert sorted(r["product_id"] for r in view) == sorted(str(seed.products[k]) for k in theirs + ours)
        assert conn.execute("select value from loyverse.alert_measurements where restaurant_id = %s"
                            " and alert = 'PRICE_DRIFT'", (rid,)).fetchone()["value"] == 5
        with itesting.running_worker(dsn):
            repaired = cli(dsn, "sync", "reconcile", rid, "--repair", "--json")
            assert repaired.returncode == 0, repaired.stderr
            assert json.loads(repaired.stdout)["repair"]["queued"] == 5
            itesting.wait_for(lambda: conn.execute(
                "select count(*) as n from loyverse.loyverse_price_sync_queue where status <> 'done'"
            ).fetchone()["n"] == 0, what="the repair pushed")
        again = cli(dsn, "sync", "reconcile", rid, "--json")
        assert again.returncode == 0 and json.loads(again.stdout)["drift"] == 0
        want = testing.db_prices(conn, seed.account_id)
        have = testing.loyverse_prices(emu, seed.merchant_id)
        assert want and {k: v for k, v in want.items() if have[k] != v} == {}


def test_reconcile_repairs_a_from_loyverse_restaurant_from_loyverse(conn, dsn, fernet_key):
    with server.EmulatorServer(menu=5, seed=6, stores=1) as emu, emu.admin() as adm:
        seed = testing.seed_from_emulator(conn, emu, stores=1, settings={"sync_direction": "FROM_LOYVERSE"})
        (rid,) = seed.restaurants.values()
        (variant_id, store_id), product_id = sorted(seed.products.items())[0]
        adm.set_price(variant_id, store_id, 8.75, merchant_id=seed.merchant_id)
        result = cli(dsn, "sync", "reconcile", rid, "--repair")
        assert result.returncode == 0, result.stderr + result.stdout
        assert "1 drifted" in result.stdout and "1 pulled" in result.stdout
        assert price(conn, product_id) == D("8.75")
        assert conn.execute("select count(*) as n from loyverse.loyverse_price_sync_queue").fetchone()["n"] == 0
        assert conn.execute("select count(*) as n from loyverse.price_drift where repaired_at is null"
                            ).fetchone()["n"] == 0
