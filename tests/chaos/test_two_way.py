"""Two-way sync under chaos: edits on both sides of the same products (UPDATE products and the
emulator's back office), duplicated, dropped and reordered webhook deliveries, a worker process
SIGKILLed mid-run, then the polling safety net. Under `latest` both sides end equal for every
product; under `hold` every product that differs has its conflict held, and only products
edited on both sides do. No price from Loyverse is ever pushed back (counted in the emulator's
own price-change log: our prices and the back office's come from disjoint ranges)."""

from __future__ import annotations

import decimal
import os
import random
import subprocess
import sys
import time

import pytest

from loyverse_emulator import server
from loyverse_sync.inbound import jobs
from tests.support import chaos as harness
from tests.support import inbound as itesting
from tests.support import pricesync as testing

D = decimal.Decimal
EDITS = 60
PRODUCTS = 5


def quiet(conn) -> bool:
    """Nothing left to do: no delivery pending, no price change pending or in flight."""
    row = conn.execute(
        "select (select count(*) from loyverse.loyverse_inbox where status = 'pending')"
        "     + (select count(*) from loyverse.loyverse_price_sync_queue where status in ('pending', 'processing'))"
        "   as n").fetchone()
    return row["n"] == 0


def settle(conn, adm) -> None:
    """Wait until the deliveries sent so far are applied, the queue is drained, and nothing new
    was delivered meanwhile (a push's own webhook may still be on its way)."""
    def done() -> bool:
        sent = len(adm.webhook_deliveries())
        return quiet(conn) and sent == len(adm.webhook_deliveries()) and quiet(conn)
    itesting.wait_for(done, timeout=180, what="the system to settle")


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["latest", "hold"])
def test_two_way_chaos_converges_or_holds(dsn, conn, fernet_key, tmp_path, policy):
    rng = random.Random(f"two-way-{policy}")
    with server.EmulatorServer(menu=PRODUCTS, seed=11, stores=1) as emu, emu.admin() as adm, \
            itesting.running_receiver(dsn) as url:
        seed = testing.seed_from_emulator(conn, emu, stores=1, settings={
            "sync_direction": "BIDIRECTIONAL", "conflict_policy": policy})
        keys = sorted(k for k in seed.products if emu.state.variant_price(k[0], k[1], seed.merchant_id) is not None)
        keys = keys[:PRODUCTS]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"DATABASE_URL": dsn}
        subscribed = subprocess.run([sys.executable, "-m", "loyverse_sync", "account", "subscribe",
                                     str(seed.account_id), "--url", url, "--allow-http"],
                                    env=env, capture_output=True, text=True, timeout=120, check=False)
        assert subscribed.returncode == 0, subscribed.stderr
        jobs.poll_due(dsn)  # the polling cursor starts now
        ours: dict[str, set[D]] = {}
        edited: dict[str, set[str]] = {}
        cron = harness.Cron(dsn, interval=1.0)  # the sweep recovers the killed worker's jobs
        cron.start()
        with harness.WorkerPool(dsn, str(tmp_path / "workers"), concurrency=4) as pool:
            pool.start(2)
            itesting.wait_for(lambda: conn.execute("select count(*) as n from procrastinate_workers").fetchone()["n"]
                              >= 2, what="the workers to start")
            for n in range(EDITS):
                key = rng.choice(keys)
                pid = seed.products[key]
                if n % 10 == 3:
                    adm.webhook_faults(duplicate=1)
                elif n % 10 == 6:
                    adm.webhook_faults(drop=1)
                elif n % 10 == 8:
                    adm.webhook_faults(reorder=1)
                if rng.random() < 0.5:
                    new = D(rng.randrange(10000, 19999)) / 100  # ours: 100.00 .. 199.99
                    ours.setdefault(pid, set()).add(new)
                    conn.execute("update public.products set price = %s where id = %s", (new, pid))
                    edited.setdefault(pid, set()).add("ours")
                else:
                    new = D(rng.randrange(20000, 29999)) / 100  # theirs: 200.00 .. 299.99
                    adm.set_price(key[0], key[1], float(new), merchant_id=seed.merchant_id)
                    edited.setdefault(pid, set()).add("theirs")
                if n == EDITS // 2:
                    pool.kill(0)  # SIGKILL, no cleanup; a replacement starts
                time.sleep(rng.random() * 0.05)  # pacing only: nothing below asserts on time
            adm.webhook_faults(flush=True)
            settle(conn, adm)
            # the safety net: one poll reads what dropped deliveries never brought
            conn.execute("update loyverse.loyverse_inbound_settings set last_polled_at = now() - interval '1 hour'")
            jobs.poll_due(dsn)
            settle(conn, adm)
        cron.stop()
        diverged = harness.diverged(conn, emu, seed)
        held = {str(r["product_id"]): r for r in conn.execute(
            "select product_id, error_details from loyverse.loyverse_price_sync_queue where status = 'conflict'"
        ).fetchall()}
        # An echo push would be a queue row carrying a Loyverse price (200.00 and up): none may exist.
        echoes = conn.execute("select count(*) as n from loyverse.loyverse_price_sync_queue"
                              " where price_to_send >= 200").fetchone()["n"]
        writes = conn.execute("select count(*) as n from loyverse.loyverse_price_sync_queue where status = 'done'"
                              ).fetchone()["n"]
        have = testing.loyverse_prices(emu, seed.merchant_id)
        queue_rows = conn.execute("select status, source, last_error_code, count(*) from loyverse.loyverse_price_sync_queue"
                                  " group by 1, 2, 3").fetchall()
        decisions = conn.execute("select decision, count(*) from loyverse.loyverse_inbound_audit group by 1").fetchall()
    assert echoes == 0
    products_by_key = {seed.products[k]: k for k in keys}
    if policy == "latest":
        assert diverged == {}, diverged
        assert held == {}
        assert writes > 0, ("nothing was pushed: the run tested nothing", queue_rows, decisions)
    else:
        assert held, ("no conflict was held: the run tested nothing", queue_rows, decisions)
        for pid in held:
            assert edited.get(pid) == {"ours", "theirs"}, f"{pid}: a conflict held without edits on both sides"
        missing = [k for k in diverged if seed.products[k] not in held]
        assert missing == [], f"products differing without a held conflict: {missing}"
        for pid, row in held.items():
            assert D(str(row["error_details"]["loyverse_price"])).quantize(D("0.001")) == have[products_by_key[pid]]
    assert pool.kills == 1
