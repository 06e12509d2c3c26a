"""Share of the Loyverse rate budget used while draining a backlog, and the 429s it caused.

The emulator enforces 300 requests per 300 s, time-scaled (--time-scale 50: 300 per 6 s,
sliding window); the account's rate_limit_window_seconds is set to the same 300/time_scale.
A backlog of single-variant price changes (one per item, one POST per item) is drained by
the price-sync engine through the account's shared governor. From the emulator's request
log: requests admitted per consecutive window (anchored at the first request) and the
number of 429 answers. Goal: >= 95 % of the budget in every full window, zero 429s.

Usage: .venv/bin/python bench/rate_budget.py [--items 1500] [--time-scale 50]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time

import _scratch
import rig

from loyverse_emulator import server
from loyverse_sync import db
from loyverse_sync.pricesync import engine

LIMIT = 300
WINDOW = 300.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1500)
    parser.add_argument("--time-scale", type=float, default=50.0)
    parser.add_argument("--admin", default=os.environ.get("LOYVERSE_SYNC_BENCH_ADMIN", "host=127.0.0.1 user=postgres dbname=postgres"))
    args = parser.parse_args()
    with _scratch.scratch_database("rate", admin=args.admin) as dsn:
        run(dsn, args.items, args.time_scale)


def _seconds(entry: dict) -> float:
    return dt.datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()


def run(dsn: str, n_items: int, time_scale: float) -> None:
    window = WINDOW / time_scale
    with server.EmulatorServer(menu=n_items, seed=11, stores=1, time_scale=time_scale) as emu, \
            db.connect(dsn, autocommit=True) as conn, db.Connector(dsn, role="worker") as connector:
        seed = rig.seed_from_emulator(conn, emu, stores=1, rate_limit_requests=LIMIT,
                                          rate_limit_window_seconds=window)
        one_per_item = list({seed.items[vid]: pid for (vid, _), pid in seed.products.items()}.values())
        time.sleep(window + 0.5)  # the seeding's GETs have left the emulator's window
        emu.state.reset(log=True, counters=True, rate_limit=False, price_changes=True)
        conn.execute("update public.products set price = price + 0.5 where id = any(%s::uuid[])",
                     (one_per_item,))
        started = time.monotonic()
        result = engine.drain_account(connector, seed.account_id)
        elapsed = time.monotonic() - started
        log = [e for e in emu.state.requests_since(0) if e.get("merchant_id") == seed.merchant_id]
        left = conn.execute("select count(*) as n from loyverse.loyverse_price_sync_queue"
                            " where status <> 'done'").fetchone()["n"]

    admitted = [e for e in log if e["status"] != 429]
    rejected = sum(1 for e in log if e["status"] == 429)
    t0 = _seconds(log[0])
    last = _seconds(log[-1])
    full = int((last - t0) // window)  # windows that ended before the last request
    counts = [0] * (full + 1)
    for e in admitted:
        k = int((_seconds(e) - t0) // window)
        counts[min(k, full)] += 1
    shares = [c / LIMIT for c in counts[:full]]
    print(f"backlog: {len(one_per_item)} single-variant changes (one per item), drained in {elapsed:.1f} s "
          f"({result.rows} rows, {len(log)} requests, {left} rows not done)")
    print(f"emulator limit: {LIMIT} requests / {window:g} s (300 s / time_scale {time_scale:g}), "
          f"account rate_limit_window_seconds = {window:g}")
    print("requests per window: " + ", ".join(str(c) for c in counts)
          + "  (last window partial: the backlog ran out)")
    if shares:
        print(f"budget used in the {full} full windows: min {min(shares):.1%}, mean "
              f"{sum(shares) / len(shares):.1%}   (goal >= 95 %)")
    else:
        print("no full window: use more --items")
    print(f"429 answers: {rejected}   (goal 0)")


if __name__ == "__main__":
    main()
