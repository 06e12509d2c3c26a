"""Many accounts: 50 Loyverse accounts, each with a backlog, drained by one worker process and
then by three, against a time-scaled emulator (x10: 300 requests per 30 s per account).

Prints the aggregate requests/s as a share of the sum of the accounts' budgets (goal >= 90 %),
the peak number of PostgreSQL connections held by running price-sync jobs (drain + governor;
one per job since the governor shares the drain's connection; procrastinate's pool not
counted), and the workers' CPU and peak RSS per account.

Usage: .venv/bin/python bench/many_accounts.py [--accounts 50] [--items 120] [--concurrency 15]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _scratch

from loyverse_sync import db
from loyverse_sync.emulator import server
from loyverse_sync.pricesync import testing
from tests.chaos import harness


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=50)
    parser.add_argument("--items", type=int, default=120, help="items per account (one write each)")
    parser.add_argument("--time-scale", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=15,
                        help="jobs of the single worker; the three workers get a third each (every running"
                             " job holds 1 PostgreSQL connection: keep the total under max_connections)")
    args = parser.parse_args()
    window = 300.0 / args.time_scale
    budget = args.accounts * 300 / window
    with _scratch.scratch_database("accounts") as dsn, \
            server.EmulatorServer(menu=args.items, seed=1, stores=1, merchants=args.accounts,
                                  time_scale=args.time_scale) as emu:
        for n in range(1, args.accounts):
            harness.grow_menu(emu, n, args.items - 15, seed=1000 + n)
        with db.connect(dsn, autocommit=True) as conn:
            t = time.monotonic()
            seeds = [testing.seed_from_emulator(conn, emu, merchant_index=n, rate_limit_window_seconds=window,
                                                account_name=f"acct{n}") for n in range(args.accounts)]
            print(f"seeded {args.accounts} accounts, {sum(len(s.products) for s in seeds)} products "
                  f"in {time.monotonic() - t:.1f} s")
            cron = harness.Cron(dsn, interval=2.0)
            cron.start()
            print(f"| worker processes | concurrency | requests | drain s | requests/s | share of budget "
                  f"({budget:.0f}/s) | 429s | peak connections of jobs | worker CPU s / account | peak RSS MiB (per process) |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            for procs, concurrency in ((1, args.concurrency), (3, max(1, args.concurrency // 3))):
                time.sleep(window)  # every account starts with a fresh budget
                emu.state.reset()
                with harness.WorkerPool(dsn, tempfile.mkdtemp(), concurrency=concurrency,
                                        env={"LOYVERSE_SYNC_LOG_FORMAT": "text"}, verbose=False) as pool:
                    pool.start(procs)
                    time.sleep(2.0)
                    cpu0 = sum(_scratch.proc_usage(p.pid)[0] for p in pool.procs)
                    conn.execute("update public.products set price = price + 1")
                    started = time.monotonic()
                    peak_conns = 0
                    while True:
                        peak_conns = max(peak_conns, conn.execute(
                            "select count(*) as n from pg_stat_activity where datname = current_database()"
                            " and application_name in ('loyverse_sync.pricesync', 'loyverse_sync.governor')"
                        ).fetchone()["n"])
                        counts = harness.queue_counts(conn)
                        if not counts.get("pending") and not counts.get("processing"):
                            break
                        time.sleep(0.1)
                        if time.monotonic() - started > 120:
                            print("NOT DRAINED", counts, conn.execute(
                                "select status::text, count(*) from procrastinate_jobs group by 1").fetchall(),
                                conn.execute("select * from loyverse.loyverse_price_sync_queue where status in"
                                             " ('pending','processing') limit 3").fetchall(), flush=True)
                            print(pool.output()[-3000:])
                            raise SystemExit(1)
                    drained = time.monotonic() - started
                    usage = [_scratch.proc_usage(p.pid) for p in pool.procs]
                    cpu = sum(u[0] for u in usage) - cpu0
                log = emu.state.requests_since(0)
                requests = len(log)
                limited = sum(1 for e in log if e["status"] == 429)
                rps = requests / drained
                print(f"| {procs} | {concurrency} | {requests} | {drained:.1f} | {rps:.0f} | "
                      f"{rps / budget:.0%} | {limited} | {peak_conns} | {cpu / args.accounts:.3f} | "
                      f"{max(u[1] for u in usage) / 1024:.0f} |")
            cron.stop()
            bad = {k: v for s in seeds for k, v in harness.diverged(conn, emu, s).items()}
            print(f"diverged prices after both runs: {len(bad)}; queue {harness.queue_counts(conn)}")
            for row in conn.execute("select status, last_error_code, last_error, attempts from"
                                    " loyverse.loyverse_price_sync_queue where status in ('failed', 'dead')"
                                    " limit 5").fetchall():
                print("  ", row)
            for k, v in list(bad.items())[:5]:
                print("  ", k, v)


if __name__ == "__main__":
    main()
