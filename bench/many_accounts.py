"""Many accounts: 50 Loyverse accounts, each with a backlog, drained by one worker process and
then by three, against a time-scaled emulator (x10: 300 requests per 30 s per account).

Prints the aggregate requests/s as a share of the sum of the accounts' budgets (goal >= 90 %),
the peak number of PostgreSQL connections of the workers' own pools (application_name
loyverse_sync.worker: one per job slot, opened at start, plus one for the periodic tasks; the
governor shares the drain's connection; procrastinate's pool not counted), and the workers'
CPU and peak RSS per account.

After the table, per row: when each account's first and last request went out (start-up
latency versus pace: an account drains at ~10 requests/s once started, so what is lost is
the time until every account has started) and where the CPU went during the drain (workers,
PostgreSQL from /proc, this process with the emulator). The workers are started and
registered with procrastinate before the price update (booting three processes on two
cores takes > 2 s). The workers run with the shipped lease scaled like the emulator's clock
(120 s / time scale). ``--py-spy DIR`` records each worker (raw py-spy format, per thread).

Usage: .venv/bin/python bench/many_accounts.py [--accounts 50] [--items 120] [--concurrency 15]
       [--rows 1,3] [--py-spy DIR]
"""

from __future__ import annotations

import argparse
import datetime
import os
import signal
import subprocess
import sys
import tempfile
import time

import _scratch
import rig

from loyverse_emulator import server
from loyverse_sync import db


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=50)
    parser.add_argument("--items", type=int, default=120, help="items per account (one write each)")
    parser.add_argument("--time-scale", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=15,
                        help="jobs of the single worker; the three workers get a third each (every running"
                             " job holds 1 PostgreSQL connection: keep the total under max_connections)")
    parser.add_argument("--rows", default="1,3", help="worker processes per row (e.g. 1 or 1,3)")
    parser.add_argument("--py-spy", metavar="DIR", default=None,
                        help="record a py-spy profile (raw, --idle off) of each worker during the drain into DIR")
    args = parser.parse_args()
    window = 300.0 / args.time_scale
    # The shipped lease (EngineConfig.lease_seconds, 120 s) on the emulator's clock: a drain of
    # 240 requests at 1/s renews it every 40 s, so at x10 every 4 s. (The chaos harness's 6 s
    # lease, meant for fast recovery after SIGKILL, renewed it every 2 s: 3.5 s of
    # PostgreSQL time per run, rewriting every leased row.)
    lease = 120.0 / args.time_scale
    budget = args.accounts * 300 / window
    with _scratch.scratch_database("accounts") as dsn, \
            server.EmulatorServer(menu=args.items, seed=1, stores=1, merchants=args.accounts,
                                  time_scale=args.time_scale) as emu:
        for n in range(1, args.accounts):
            rig.grow_menu(emu, n, args.items - 15, seed=1000 + n)
        with db.connect(dsn, autocommit=True) as conn:
            t = time.monotonic()
            seeds = [rig.seed_from_emulator(conn, emu, merchant_index=n, rate_limit_window_seconds=window,
                                                account_name=f"acct{n}") for n in range(args.accounts)]
            print(f"seeded {args.accounts} accounts, {sum(len(s.products) for s in seeds)} products "
                  f"in {time.monotonic() - t:.1f} s")
            cron = rig.Cron(dsn, interval=2.0)
            cron.start()
            print(f"| worker processes | concurrency | requests | drain s | requests/s | share of budget "
                  f"({budget:.0f}/s) | 429s | peak connections of jobs | worker CPU s / account | peak RSS MiB (per process) |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            rows = [int(p) for p in args.rows.split(",")]
            timelines: list[str] = []
            for procs in rows:
                concurrency = max(1, args.concurrency // procs)
                time.sleep(window)  # every account starts with a fresh budget
                emu.state.reset()
                with rig.WorkerPool(dsn, tempfile.mkdtemp(), concurrency=concurrency, verbose=False,
                                        env={"LOYVERSE_SYNC_LOG_FORMAT": "text",
                                             "LOYVERSE_SYNC_LEASE_SECONDS": str(lease)}) as pool:
                    since_id = conn.execute("select coalesce(max(id), 0) as n from procrastinate_workers"
                                            ).fetchone()["n"]
                    pool.start(procs)
                    _wait_for_workers(conn, since_id, procs)  # booting 3 processes on 2 cores takes > 2 s
                    time.sleep(1.0)  # LISTEN and the first (empty) fetch come right after registration
                    cpu0 = sum(_scratch.proc_usage(p.pid)[0] for p in pool.procs)
                    spies = _start_py_spy(args.py_spy, procs, pool.procs)
                    conn.execute("update public.products set price = price + 1")
                    pg0, own0, apps0 = _postgres_cpu(), time.process_time(), _backend_cpu(conn)
                    started = time.monotonic()
                    started_wall = time.time()
                    peak_conns = 0
                    while True:
                        peak_conns = max(peak_conns, conn.execute(
                            "select count(*) as n from pg_stat_activity where datname = current_database()"
                            " and application_name = 'loyverse_sync.worker'"
                        ).fetchone()["n"])
                        # through the partial indexes of pending / processing rows: a status count
                        # of the whole queue 10 times a second was this script's own load on
                        # PostgreSQL (a scan of 56,000-112,000 rows each time)
                        if not conn.execute(
                            "select exists (select 1 from loyverse.loyverse_price_sync_queue where status = 'pending')"
                            " or exists (select 1 from loyverse.loyverse_price_sync_queue where status = 'processing')"
                            " as busy").fetchone()["busy"]:
                            break
                        time.sleep(0.1)
                        if time.monotonic() - started > 120 + 2 * args.items * window / 300:
                            print("NOT DRAINED", rig.queue_counts(conn), conn.execute(
                                "select status::text, count(*) from procrastinate_jobs group by 1").fetchall(),
                                conn.execute("select * from loyverse.loyverse_price_sync_queue where status in"
                                             " ('pending','processing') limit 3").fetchall(), flush=True)
                            print(pool.output()[-3000:])
                            raise SystemExit(1)
                    drained = time.monotonic() - started
                    _stop_py_spy(spies)
                    usage = [_scratch.proc_usage(p.pid) for p in pool.procs]
                    cpu = sum(u[0] for u in usage) - cpu0
                    pg, own = _postgres_cpu() - pg0, time.process_time() - own0
                    by_app: dict[str, float] = {}
                    for pid, (app, seconds) in _backend_cpu(conn).items():
                        by_app[app] = by_app.get(app, 0.0) + seconds - apps0.get(pid, (app, 0.0))[1]
                    cores = len(os.sched_getaffinity(0))
                    split = (f"CPU during the drain ({cores} cores x {drained:.1f} s = {cores * drained:.1f} s):"
                             f" workers {cpu:.1f} s + PostgreSQL {pg:.1f} s + bench/emulator {own:.1f} s"
                             f" = {cpu + pg + own:.1f} s; PostgreSQL backends alive at the end, by application: "
                             + ", ".join(f"{app or '(background)'} {v:.1f} s" for app, v in
                                         sorted(by_app.items(), key=lambda kv: -kv[1]) if v >= 0.05))
                log = emu.state.requests_since(0)
                requests = len(log)
                limited = sum(1 for e in log if e["status"] == 429)
                rps = requests / drained
                print(f"| {procs} | {concurrency} | {requests} | {drained:.1f} | {rps:.0f} | "
                      f"{rps / budget:.0%} | {limited} | {peak_conns} | {cpu / args.accounts:.3f} | "
                      f"{max(u[1] for u in usage) / 1024:.0f} |")
                timelines.append(_timeline(procs, log, started_wall, drained) + "\n  " + split)
            cron.stop()
            for line in timelines:
                print(line)
            bad = {k: v for s in seeds for k, v in rig.diverged(conn, emu, s).items()}
            print(f"diverged prices after both runs: {len(bad)}; queue {rig.queue_counts(conn)}")
            for row in conn.execute("select status, last_error_code, last_error, attempts from"
                                    " loyverse.loyverse_price_sync_queue where status in ('failed', 'dead')"
                                    " limit 5").fetchall():
                print("  ", row)
            for k, v in list(bad.items())[:5]:
                print("  ", k, v)


def _postgres_cpu() -> float:
    """CPU seconds of the local PostgreSQL server: its live processes plus the reaped backends
    (the postmaster's cutime + cstime); 0 when it is not visible in /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                head, _, rest = f.read().rpartition(")")
        except OSError:
            continue
        if not head.endswith("(postgres"):
            continue
        fields = rest.split()
        total += (int(fields[11]) + int(fields[12])) / tick
        if fields[1] == "1" or not os.path.exists(f"/proc/{fields[1]}"):  # the postmaster
            total += (int(fields[13]) + int(fields[14])) / tick
    return total


def _backend_cpu(conn) -> dict[int, tuple[str, float]]:
    """CPU seconds so far of each PostgreSQL process in pg_stat_activity, with its application_name."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for row in conn.execute("select pid, coalesce(application_name, '') as app from pg_stat_activity").fetchall():
        try:
            with open(f"/proc/{row['pid']}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[row["pid"]] = (row["app"] or "", (int(fields[11]) + int(fields[12])) / tick)
    return out


def _wait_for_workers(conn, since_id: int, procs: int, timeout: float = 60.0) -> None:
    """Until the new worker processes have registered with procrastinate (imports done, app open)."""
    deadline = time.monotonic() + timeout
    while conn.execute("select count(*) as n from procrastinate_workers where id > %s",
                       (since_id,)).fetchone()["n"] < procs:
        if time.monotonic() > deadline:
            raise SystemExit(f"{procs} worker(s) did not start within {timeout:.0f} s")
        time.sleep(0.1)


def _timeline(procs: int, log: list, started: float, drained: float) -> str:
    """When each account's first and last request went out (seconds after the price update),
    and the pace in between: start-up latency versus throughput."""
    by_merchant: dict[str, list[float]] = {}
    for e in log:
        at = datetime.datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp() - started
        by_merchant.setdefault(e.get("merchant_id") or "?", []).append(at)
    firsts = sorted(min(v) for v in by_merchant.values())
    lasts = sorted(max(v) for v in by_merchant.values())
    paces = sorted((len(v) - 1) / (max(v) - min(v)) for v in by_merchant.values() if max(v) > min(v))

    def q(values: list[float], share: float) -> float:
        return values[min(len(values) - 1, int(share * len(values)))] if values else float("nan")

    return (f"{procs} process(es): first request per account p50 {q(firsts, .5):.2f} s, max {firsts[-1]:.2f} s;"
            f" last request p50 {q(lasts, .5):.2f} s, max {lasts[-1]:.2f} s (drained at {drained:.2f} s);"
            f" requests/s per account p10 {q(paces, .1):.2f}, p50 {q(paces, .5):.2f}")


def _start_py_spy(directory: str | None, procs: int, workers: list) -> list:
    if not directory:
        return []
    os.makedirs(directory, exist_ok=True)
    spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return [subprocess.Popen([spy, "record", "--pid", str(p.pid), "--format", "raw", "--rate", "250", "--threads",
                              "--nonblocking", "--output", os.path.join(directory, f"{procs}procs-w{i}.txt")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for i, p in enumerate(workers)]


def _stop_py_spy(spies: list) -> None:
    for spy in spies:
        spy.send_signal(signal.SIGINT)
    for spy in spies:
        spy.wait(timeout=30)


if __name__ == "__main__":
    main()
