"""Latency from a price edit in Loyverse's back office to the new price in `products`.

FROM_LOYVERSE restaurant, the webhook path end to end: the emulator's back office changes
one store price and emits `items.update` (its delivery thread POSTs it), the receiver
(Starlette under uvicorn, in this process, a real socket) stores it in the inbox and wakes
the apply job, and `loyverse-sync worker` (its own process, LISTEN/NOTIFY) applies it. The
clock stops when `products.price` shows the new price (polled every 2 ms on a separate
connection). N edits, one at a time, each after the previous arrived plus a pause.
Goal (issue #16): p99 < 2 s.

Usage: .venv/bin/python bench/webhook_latency.py [--edits 100] [--pause 0.1]
"""

from __future__ import annotations

import argparse
import decimal
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import _scratch
import rig

from loyverse_emulator import server
from loyverse_sync import db


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--edits", type=int, default=100)
    parser.add_argument("--pause", type=float, default=0.1, help="idle seconds after each arrival")
    parser.add_argument("--admin", default=os.environ.get("LOYVERSE_SYNC_BENCH_ADMIN",
                                                          "host=127.0.0.1 user=postgres dbname=postgres"))
    args = parser.parse_args()
    with _scratch.scratch_database("whl", admin=args.admin) as dsn:
        run(dsn, args.edits, args.pause)


def run(dsn: str, edits: int, pause: float) -> None:
    with server.EmulatorServer(menu=20, seed=5, stores=1) as emu, emu.admin() as adm, \
            db.connect(dsn, autocommit=True) as conn, rig.running_receiver(dsn) as url:
        seed = rig.seed_from_emulator(conn, emu, stores=1, settings={"sync_direction": "FROM_LOYVERSE"})
        env = dict(os.environ, DATABASE_URL=dsn)
        subscribed = subprocess.run([sys.executable, "-m", "loyverse_sync", "account", "subscribe",
                                     str(seed.account_id), "--url", url, "--allow-http",
                                     "--type", "items.update"], env=env, capture_output=True, text=True)
        if subscribed.returncode != 0:
            raise SystemExit(subscribed.stderr)
        keys = sorted(k for k in seed.products if emu.state.variant_price(k[0], k[1], seed.merchant_id) is not None)
        with tempfile.TemporaryFile() as log:
            worker = subprocess.Popen([sys.executable, "-m", "loyverse_sync", "worker", "--concurrency", "2"],
                                      env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                rig.wait_for(lambda: conn.execute("select count(*) as n from procrastinate_workers").fetchone()["n"],
                                  what="the worker")
                latencies = []
                for n in range(edits):
                    variant_id, store_id = keys[n % len(keys)]
                    product_id = seed.products[(variant_id, store_id)]
                    price = decimal.Decimal("300.00") + decimal.Decimal(n) / 100
                    started = time.monotonic()
                    adm.set_price(variant_id, store_id, float(price), merchant_id=seed.merchant_id)
                    deadline = started + 10
                    while conn.execute("select price from public.products where id = %s",
                                       (product_id,)).fetchone()["price"] != price:
                        if time.monotonic() > deadline:
                            raise SystemExit(f"edit {n}: not in products within 10 s")
                        time.sleep(0.002)
                    latencies.append(time.monotonic() - started)
                    time.sleep(pause)
            finally:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
    ms = [x * 1000 for x in latencies]
    print(f"{len(ms)} back-office price edits, FROM_LOYVERSE, webhook -> receiver -> inbox -> "
          f"`loyverse-sync worker` -> products")
    print(f"edit -> products.price: p50 {statistics.median(ms):.0f} ms, p90 {_quantile(ms, 0.9):.0f} ms, "
          f"p99 {_quantile(ms, 0.99):.0f} ms, max {max(ms):.0f} ms, min {min(ms):.0f} ms   (goal p99 < 2000 ms)")


if __name__ == "__main__":
    main()
