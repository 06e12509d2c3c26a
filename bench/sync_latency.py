"""Latency from COMMIT of `UPDATE products SET price` to the emulator receiving the write.

REALTIME restaurant, idle queue, a real worker: `loyverse-sync worker` in its own process
(procrastinate, woken by LISTEN/NOTIFY). N single-product updates (autocommit), each one
after the previous write arrived plus a pause, so the queue is idle every time. The write's
arrival time is the emulator's request-log time of the POST (wall clock, ms, taken when
the request starts being handled). Goal: p50 < 0.5 s, p99 < 2 s.

Usage: .venv/bin/python bench/sync_latency.py [--updates 100] [--pause 0.2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import _scratch
import psycopg
import rig

from loyverse_emulator import server
from loyverse_sync import db


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=100)
    parser.add_argument("--pause", type=float, default=0.2, help="idle seconds after each arrival")
    parser.add_argument("--admin", default=os.environ.get("LOYVERSE_SYNC_BENCH_ADMIN", "host=127.0.0.1 user=postgres dbname=postgres"))
    args = parser.parse_args()
    with _scratch.scratch_database("lat", admin=args.admin) as dsn:
        run(dsn, args.updates, args.pause)


def _seconds(entry: dict) -> float:
    return dt.datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def run(dsn: str, updates: int, pause: float) -> None:
    with server.EmulatorServer(menu=40, seed=5, stores=1, time_scale=100) as emu, \
            db.connect(dsn, autocommit=True) as conn:
        seed = rig.seed_from_emulator(conn, emu, stores=1, rate_limit_window_seconds=3.0)
        products = list(seed.products.values())
        env = dict(os.environ, DATABASE_URL=dsn)
        with tempfile.TemporaryFile() as log:
            worker = subprocess.Popen([sys.executable, "-m", "loyverse_sync", "worker", "--concurrency", "2"],
                                      env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                latencies = measure(conn, emu, seed.merchant_id, products, updates, pause)
            finally:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
    lat_ms = [x * 1000 for x in latencies]
    print(f"{len(lat_ms)} single-row price updates, REALTIME, idle queue, `loyverse-sync worker` "
          f"(procrastinate, LISTEN/NOTIFY) in its own process")
    print(f"COMMIT -> emulator receives the POST: p50 {statistics.median(lat_ms):.0f} ms, "
          f"p90 {_quantile(lat_ms, 0.9):.0f} ms, p99 {_quantile(lat_ms, 0.99):.0f} ms, "
          f"max {max(lat_ms):.0f} ms, min {min(lat_ms):.0f} ms   (goal p50 < 500 ms, p99 < 2000 ms)")


def measure(conn: psycopg.Connection, emu: server.EmulatorServer, merchant_id: str,
            products: list[str], updates: int, pause: float) -> list[float]:
    since = max((e["id"] for e in emu.state.requests_since(0)), default=0)
    time.sleep(2.0)  # the worker is up and listening
    latencies = []
    for n in range(updates):
        product_id = products[n % len(products)]
        price = decimal.Decimal("20.00") + decimal.Decimal(n) / 100
        conn.execute("update public.products set price = %s where id = %s", (price, product_id))
        committed = time.time()
        deadline = time.monotonic() + 10
        arrived = None
        while arrived is None:
            if time.monotonic() > deadline:
                raise SystemExit(f"update {n}: no write reached the emulator within 10 s")
            for entry in emu.state.requests_since(since, merchant_id=merchant_id):
                since = max(since, entry["id"])
                if entry["method"] == "POST" and arrived is None:
                    arrived = _seconds(entry)
            time.sleep(0.002)
        latencies.append(arrived - committed)
        time.sleep(pause)
        for entry in emu.state.requests_since(since, merchant_id=merchant_id):  # nothing else arrives
            since = max(since, entry["id"])
    return latencies


if __name__ == "__main__":
    main()
