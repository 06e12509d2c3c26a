"""Convergence under faults: ~1,000 random price updates, real workers, injected faults, SIGKILLs.

Two emulator merchants (EUR with 3 stores, JPY with 1) = two accounts, four restaurants with
different rounding rules. While updates stream in, the emulator injects 5xx, 429 bursts,
client timeouts (hangs longer than the worker's HTTP timeout), dropped connections and
fail-after-write, and worker processes holding a claim are SIGKILLed and restarted. After the
drain every mapped product's price in the restaurant's store equals our final rounded price,
the last write of every (variant, store) in the emulator's log carried that price, and nothing
is stuck. Then one restaurant is failed on purpose (every POST 500, max_attempts 2): its rows
dead-letter, nothing else does, and `loyverse-sync sync retry --dead` brings it to convergence.

Run in both readings of an update POST (the emulator's `post_semantics`): `whole` (omitted
fields reset to the create defaults; the full run) and `merge` (a shorter run: fewer updates,
no dead-letter phase, which does not depend on the reading). The menus are rich (composite
items, suppliers, purchase costs, two taxes, barcodes, stock levels); besides equal prices,
no field of any item other than the synced store prices may change (item fingerprints).

PostgreSQL is not restarted: the shared test server is not ours to restart.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time

import pytest

from loyverse_emulator import server
from tests.support import chaos as harness
from tests.support import pricesync as testing

UPDATES = 1000
RULES = ["NONE", "NEAREST_0.05", "UP"]  # the EUR restaurants; the JPY one rounds DOWN
FAULTS = {"p500": 0.08, "p429": 0.04, "ptimeout": 0.02, "pdrop": 0.04, "pslow": 0.03,
          "delay_seconds": 0.2, "hang_seconds": 1.5, "fail_after_write": 0.08}


@pytest.fixture(params=["whole", "merge"])
def post_semantics(request):
    return request.param


@pytest.fixture
def emu(post_semantics):
    with server.EmulatorServer(menu=40, seed=7, stores=3, time_scale=100, rich_menu=True,
                               post_semantics=post_semantics) as emu:
        yield emu


def test_converges_under_faults_and_kills(dsn, conn, emu, post_semantics, fernet_key, tmp_path):
    eur = testing.seed_from_emulator(conn, emu, merchant_index=0, stores=3, rate_limit_window_seconds=3.0,
                                     account_name="eur")
    jpy = testing.seed_from_emulator(conn, emu, merchant_index=1, rate_limit_window_seconds=3.0,
                                     account_name="jpy")
    seeds = (eur, jpy)
    decimals: dict[str, int] = {}
    products: dict[str, list[str]] = {}
    for seed, dp in ((eur, 2), (jpy, 0)):
        for (_, store), pid in seed.products.items():
            rid = seed.restaurants[store]
            products.setdefault(rid, []).append(pid)
            decimals[rid] = dp
    for rid, rule in zip(eur.restaurants.values(), RULES, strict=True):
        conn.execute("select loyverse.update_price_sync_settings(%s, jsonb_build_object('price_rounding_rule', %s::text))",
                     (rid, rule))
    jpy_rid = next(iter(jpy.restaurants.values()))
    conn.execute("select loyverse.update_price_sync_settings(%s, '{\"price_rounding_rule\": \"DOWN\"}')", (jpy_rid,))
    initial = {s.merchant_id: testing.loyverse_prices(emu, s.merchant_id) for s in seeds}
    fingerprints = {s.merchant_id: harness.item_fingerprints(emu, s.merchant_id, s.products) for s in seeds}

    for n, seed in enumerate(seeds):
        emu.state.set_faults(seed.merchant_id, clear=True, seed=11 + n, **FAULTS,
                             fail_after_write_kind="drop" if n else "500")
    updater = harness.Updater(conn, products, decimals, random.Random(3))
    cron = harness.Cron(dsn, interval=1.0)
    cron.start()
    try:
        full = post_semantics == "whole"
        run(dsn, conn, emu, seeds, products, jpy_rid, updater, initial, tmp_path,
            updates=UPDATES if full else UPDATES // 3, dead_letters=full)
    finally:
        cron.stop()
    for seed in seeds:
        after = harness.item_fingerprints(emu, seed.merchant_id, seed.products)
        assert harness.fingerprint_changes(fingerprints[seed.merchant_id], after) == []


def run(dsn, conn, emu, seeds, products, jpy_rid, updater, initial, tmp_path, *, updates, dead_letters):
    eur, jpy = seeds
    started = time.monotonic()
    with harness.WorkerPool(dsn, str(tmp_path / "logs"), concurrency=3) as pool:
        pool.start(2)
        # every mapped product changes at least once (Loyverse's VARIABLE-priced variants too)
        for rid in products:
            updater.updates += conn.execute("update public.products set price = price + 1"
                                            " where restaurant_id = %s", (rid,)).rowcount
        kills_mid_batch = 0
        next_kill = time.monotonic() + 2.0
        next_tick = time.monotonic() + 0.5
        ticks = 0
        while updater.updates < updates or ticks < 8:
            if updater.updates < updates:
                updater.step()
            time.sleep(0.06)  # ~10 s of updates
            if time.monotonic() >= next_tick:
                # besides the random draws, every kind on purpose: 429 bursts (someone else
                # spending the budget), hangs past the HTTP timeout, drops, 5xx, write-then-fail
                kind, n = (("429", 8), ("timeout", 2), ("drop", 2), ("500", 2))[(ticks // 2) % 4]
                emu.state.set_faults(seeds[ticks % 2].merchant_id, fail_next=n, fail_next_kind=kind,
                                     fail_after_write_next=1)
                ticks += 1
                next_tick = time.monotonic() + 1.2
            if time.monotonic() >= next_kill:
                kills_mid_batch += pool.kill_mid_batch(conn, wait=1.0)
                next_kill = time.monotonic() + 2.5
        for _ in range(2):  # more kills while the backlog drains
            kills_mid_batch += pool.kill_mid_batch(conn)
        # At least 3 kills must land mid-batch, however slow the machine (under load the timed
        # attempts above can all find no claim in flight): more changes make more batches.
        deadline = time.monotonic() + 120
        while kills_mid_batch < 3 and time.monotonic() < deadline:
            if not harness.queue_counts(conn).get("pending"):
                updater.step()
            kills_mid_batch += pool.kill_mid_batch(conn, wait=3.0)
        update_seconds = time.monotonic() - started
        harness.wait_drained(conn, 60)
        drain_seconds = time.monotonic() - started - update_seconds

        # -- convergence under random faults -------------------------------------------
        counts = harness.queue_counts(conn)
        problems = conn.execute("select id, status, last_error_code, last_error from loyverse.loyverse_price_sync_queue"
                                " where status in ('failed', 'dead', 'conflict')").fetchall()
        assert problems == [], problems  # 8 attempts: random faults never exhaust them
        for seed in seeds:
            assert harness.diverged(conn, emu, seed) == {}
            want = testing.db_prices(conn, seed.account_id)
            assert harness.stale_last_changes(emu, seed, want) == {}
            assert harness.stale_last_writes(emu, seed, want) == {}
        faults = harness.fault_counts(emu)
        for kind in ("500", "429", "timeout", "drop", "slow", "after_write:500", "after_write:drop"):
            assert faults.get(kind, 0) > 0, faults
        assert kills_mid_batch >= 3
        print(f"\nchaos CI: {updater.updates} updates in {updater.statements} statements "
              f"({updater.bulk_statements} bulk), {update_seconds:.1f} s + drain {drain_seconds:.1f} s; "
              f"{kills_mid_batch} SIGKILLs mid-batch; faults {faults}; queue {counts}; "
              f"noop writes {[harness.noop_writes(emu, s.merchant_id, initial[s.merchant_id]) for s in seeds]}")
        if not dead_letters:
            return

        # -- dead letters only where faults make them inevitable; `sync retry --dead` ---
        conn.execute("select loyverse.update_price_sync_settings(%s, '{\"max_attempts\": 2}')", (jpy_rid,))
        emu.state.set_faults(jpy.merchant_id, clear=True, p500=1.0, methods=["POST"])
        emu.state.set_faults(eur.merchant_id, clear=True)
        conn.execute("update public.products set price = price + 7 where restaurant_id = %s", (jpy_rid,))
        harness.wait_drained(conn, 30)
        dead = conn.execute("select restaurant_id::text, attempts, last_error_code from loyverse.loyverse_price_sync_queue"
                            " where status = 'dead'").fetchall()
        assert len(dead) == len(products[jpy_rid])
        assert {d["restaurant_id"] for d in dead} == {jpy_rid}
        assert {d["attempts"] for d in dead} == {2}
        assert {d["last_error_code"] for d in dead} <= harness.FAULT_CODES, dead
        assert harness.queue_counts(conn).get("failed", 0) == 0

        emu.state.set_faults(jpy.merchant_id, clear=True)
        env = {**pool.env}
        proc = subprocess.run([sys.executable, "-m", "loyverse_sync", "sync", "retry", "--dead"], env=env,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and f"{len(dead)} change(s) queued again" in proc.stdout, proc
        harness.wait_drained(conn, 30)

    counts = harness.queue_counts(conn)
    assert counts.get("processing", 0) == counts.get("pending", 0) == 0
    assert counts.get("dead", 0) == counts.get("failed", 0) == 0
    for seed in seeds:
        assert harness.diverged(conn, emu, seed) == {}
        want = testing.db_prices(conn, seed.account_id)
        assert harness.stale_last_changes(emu, seed, want) == {}
        assert harness.stale_last_writes(emu, seed, want) == {}
    assert os.path.exists(pool.logs[0])
