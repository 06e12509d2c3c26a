"""Convergence under faults, full size: 10,000 random price updates (single-row and bulk) on two
accounts (EUR, 3 stores; JPY, 1 store), emulator faults (5xx, 429 bursts, hangs past the HTTP
timeout, drops, fail-after-write), worker processes SIGKILLed mid-batch every few seconds.
Reports time, requests, retries, fault counts and the convergence checks of tests/chaos.

Usage: .venv/bin/python bench/chaos.py [--updates 10000] [--items 200] [--workers 2]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time

import _scratch
import rig

from loyverse_emulator import server
from loyverse_sync import db

FAULTS = {"p500": 0.08, "p429": 0.04, "ptimeout": 0.02, "pdrop": 0.04, "pslow": 0.03,
          "delay_seconds": 0.2, "hang_seconds": 1.5, "fail_after_write": 0.08}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-every", type=float, default=3.0)
    args = parser.parse_args()
    with _scratch.scratch_database("chaos") as dsn, db.connect(dsn, autocommit=True) as conn, \
            server.EmulatorServer(menu=args.items, seed=7, stores=3, time_scale=100) as emu:
        rig.grow_menu(emu, 1, args.items // 2)
        eur = rig.seed_from_emulator(conn, emu, merchant_index=0, rate_limit_window_seconds=3.0,
                                         account_name="eur")
        jpy = rig.seed_from_emulator(conn, emu, merchant_index=1, rate_limit_window_seconds=3.0,
                                         account_name="jpy")
        seeds = (eur, jpy)
        products: dict[str, list[str]] = {}
        decimals: dict[str, int] = {}
        for seed, dp in ((eur, 2), (jpy, 0)):
            for (_, store), pid in seed.products.items():
                products.setdefault(seed.restaurants[store], []).append(pid)
                decimals[seed.restaurants[store]] = dp
        for rid, rule in zip(products, ["NONE", "NEAREST_0.05", "UP", "DOWN"], strict=True):
            conn.execute("select loyverse.update_price_sync_settings(%s, jsonb_build_object("
                         "'price_rounding_rule', %s::text))", (rid, rule))
        emu.state.reset()
        for n, seed in enumerate(seeds):
            emu.state.set_faults(seed.merchant_id, clear=True, seed=11 + n, **FAULTS,
                                 fail_after_write_kind="drop" if n else "500")
        updater = rig.Updater(conn, products, decimals, random.Random(3))
        cron = rig.Cron(dsn, interval=1.0)
        cron.start()
        started = time.monotonic()
        kills = 0
        with rig.WorkerPool(dsn, tempfile.mkdtemp(), concurrency=3, verbose=False) as pool:
            pool.start(args.workers)
            for rid in products:
                updater.updates += conn.execute("update public.products set price = price + 1"
                                                " where restaurant_id = %s", (rid,)).rowcount
            next_kill = time.monotonic() + args.kill_every
            ticks, next_tick = 0, time.monotonic() + 1.0
            while updater.updates < args.updates:
                updater.step()
                time.sleep(0.02)
                if time.monotonic() >= next_tick:
                    kind, n = (("429", 8), ("timeout", 2), ("drop", 2), ("500", 2))[(ticks // 2) % 4]
                    emu.state.set_faults(seeds[ticks % 2].merchant_id, fail_next=n, fail_next_kind=kind,
                                         fail_after_write_next=1)
                    ticks, next_tick = ticks + 1, time.monotonic() + 1.2
                if time.monotonic() >= next_kill:
                    kills += pool.kill_mid_batch(conn, wait=1.0)
                    next_kill = time.monotonic() + args.kill_every
            updating = time.monotonic() - started
            rig.wait_drained(conn, 240)
            total = time.monotonic() - started
        cron.stop()
        log = emu.state.requests_since(0)
        faults = rig.fault_counts(emu)
        counts = rig.queue_counts(conn)
        attempts = conn.execute("select coalesce(sum(attempts), 0)::int as a, count(*) filter (where attempts > 0)"
                                "::int as rows from loyverse.loyverse_price_sync_queue").fetchone()
        diverged = sum(len(rig.diverged(conn, emu, s)) for s in seeds)
        stale = 0
        for s in seeds:
            want = rig.db_prices(conn, s.account_id)
            stale += len(rig.stale_last_writes(emu, s, want)) + len(rig.stale_last_changes(emu, s, want))
        mapped = sum(len(s.products) for s in seeds)
        print("| updates | statements (bulk) | mapped products | update phase s | total s (to drained) |"
              " requests | faulted requests | queue retries (rows) | SIGKILLs mid-batch |")
        print("|---|---|---|---|---|---|---|---|---|")
        print(f"| {updater.updates:,} | {updater.statements} ({updater.bulk_statements}) | {mapped} | {updating:.1f} |"
              f" {total:.1f} | {len(log):,} | {sum(faults.values())} | {attempts['a']} ({attempts['rows']}) |"
              f" {kills} |")
        print(f"faults: {dict(sorted(faults.items()))}")
        print(f"queue: {counts}")
        print(f"diverged: {diverged}; stale last writes: {stale}; processing: {counts.get('processing', 0)}; "
              f"dead: {counts.get('dead', 0)}; failed: {counts.get('failed', 0)}")


if __name__ == "__main__":
    main()
