"""Convergence across a PostgreSQL restart, on a server this test owns.

The shared test server is not ours to restart, so the test starts its own embedded
PostgreSQL (the `pgserver` package, unix socket only, fresh data directory), migrates it,
seeds two emulator merchants (EUR with 3 stores, JPY with 1) and starts two real worker
processes. A few hundred random price updates stream in while the emulator injects modest
faults; in the middle PostgreSQL is stopped in fast mode (every connection is dropped), kept
down for a moment, and started again with the same options. The updater retries its own
statements on connection errors; the workers must recover by themselves. A worker process is
restarted only if it died (the test records it). After the drain every mapped product's price
in the emulator equals the database's final rounded price, and no row is stuck in processing.

procrastinate (3.10) stops a worker whose LISTEN or heartbeat side task loses the database
("Side task listener failed ..., stopping worker"). `loyverse-sync worker` then waits for the
database (`--reconnect-timeout`) and starts procrastinate's worker again in the same process,
so no worker process dies (asserted); the test would still play the supervisor and restart a
dead one, to report it. The API calls the workers made are all in loyverse_api_call_stats
afterwards: a drain whose records could not be written keeps them for the next flush.
"""

from __future__ import annotations

import atexit
import contextlib
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from typing import Any

import psycopg
import pytest
from psycopg import conninfo as pg_conninfo

from loyverse_emulator import server
from loyverse_sync import db
from tests.support import chaos as harness
from tests.support import pricesync as testing

STATEMENTS = 300  # random UPDATE statements (single-row and bulk)
RESTART_AT = 150  # statement after which PostgreSQL goes down
DOWNTIME = 1.5  # seconds between the fast stop and the start
RULES = ["NONE", "NEAREST_0.05", "UP"]  # the EUR restaurants; the JPY one rounds DOWN
FAULTS = {"p500": 0.03, "p429": 0.02, "pdrop": 0.02, "pslow": 0.02, "delay_seconds": 0.2,
          "fail_after_write": 0.03}


class OwnedPostgres:
    """An embedded PostgreSQL (pgserver) in a private data directory, restartable at will."""

    def __init__(self, root: pathlib.Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver
            from pgserver import _commands

            self.bin = _commands.POSTGRES_BIN_PATH
            self.datadir = root / "pg"
            self.server = pgserver.get_server(self.datadir, cleanup_mode=None)
        params = pg_conninfo.conninfo_to_dict(self.server.get_uri())
        self.socket_dir = str(params["host"])
        self.user = self.server.system_user  # 'pgserver' when we run as root, else None (us)
        self.restarts = 0

    def conninfo(self, dbname: str) -> str:
        return pg_conninfo.make_conninfo(host=self.socket_dir, user="postgres", dbname=dbname)

    def pg_ctl(self, *args: str, timeout: float = 30.0) -> None:
        """pg_ctl on our data directory, as the OS user pgserver runs the server as."""
        subprocess.run([str(self.bin / "pg_ctl"), "-D", str(self.datadir), *args], check=True,
                       user=self.user, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout)

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("-w", "-m", mode, "stop")

    def start(self) -> None:
        # the options pgserver starts it with: no TCP listener, the same socket directory
        self.pg_ctl("-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.datadir / "log"), "start")

    def restart(self, downtime: float) -> None:
        """Fast stop (connections are terminated), `downtime` seconds down, start again."""
        self.stop("fast")
        time.sleep(downtime)
        self.start()
        self.restarts += 1


@pytest.fixture
def owned_pg():
    root = pathlib.Path(tempfile.mkdtemp(prefix="lvs-pgr-"))  # short: unix socket paths are limited
    try:
        pg = OwnedPostgres(root)
    except Exception as exc:  # any failure means: no embedded server here
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"embedded PostgreSQL (pgserver) cannot start here: {type(exc).__name__}: {exc}")
    try:
        yield pg
    finally:
        with contextlib.suppress(Exception):
            pg.stop("immediate")
        atexit.unregister(pg.server._cleanup)  # nothing left for pgserver to stop at exit
        type(pg.server)._instances.pop(pg.datadir, None)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def emu():
    with server.EmulatorServer(menu=40, seed=7, stores=3, time_scale=100) as emu:
        yield emu


class RetryingUpdater:
    """harness.Updater whose statements survive the server going away: reconnect and retry."""

    def __init__(self, dsn: str, updater: harness.Updater) -> None:
        self.dsn = dsn
        self.updater = updater
        self.connection_errors = 0
        self.retried_after: list[float] = []  # seconds from the first error to a working statement

    def step(self) -> None:
        first_error = None
        while True:
            try:
                self.updater.step()
                if first_error is not None:
                    self.retried_after.append(time.monotonic() - first_error)
                return
            except psycopg.OperationalError:
                self.connection_errors += 1
                first_error = first_error or time.monotonic()
                if time.monotonic() - first_error > 30:
                    raise
                with contextlib.suppress(Exception):
                    self.updater.conn.close()
                time.sleep(0.1)
                with contextlib.suppress(psycopg.OperationalError):
                    self.updater.conn = harness.connect(self.dsn)


def test_converges_across_a_postgres_restart(owned_pg, emu, fernet_key, tmp_path):
    admin = harness.connect(owned_pg.conninfo("postgres"))
    admin.execute("create database lvs_restart")
    admin.close()
    dsn = owned_pg.conninfo("lvs_restart")
    db.migrate(dsn)
    conn = harness.connect(dsn)

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
    for n, seed in enumerate(seeds):
        emu.state.set_faults(seed.merchant_id, clear=True, seed=21 + n, **FAULTS,
                             fail_after_write_kind="drop" if n else "500")

    updater = RetryingUpdater(dsn, harness.Updater(conn, products, decimals, random.Random(5)))
    cron = harness.Cron(dsn, interval=1.0)
    cron.start()
    try:
        with harness.WorkerPool(dsn, str(tmp_path / "logs"), concurrency=3) as pool:
            run(owned_pg, dsn, emu, seeds, products, updater, pool)
    finally:
        cron.stop()
        with contextlib.suppress(Exception):
            updater.updater.conn.close()


def run(owned_pg: OwnedPostgres, dsn: str, emu: Any, seeds: Any, products: dict[str, list[str]],
        updater: RetryingUpdater, pool: harness.WorkerPool) -> None:
    started = time.monotonic()
    already = {s.merchant_id: len(emu.state.requests_since(0, s.merchant_id)) for s in seeds}  # the seeding's
    pool.start(2)
    pids_before = [p.pid for p in pool.procs]
    # every mapped product changes at least once
    for rid in products:
        updater.updater.conn.execute("update public.products set price = price + 1 where restaurant_id = %s", (rid,))

    restart = threading.Thread(target=owned_pg.restart, args=(DOWNTIME,), name="pg-restart")
    deaths: list[tuple[int, int | None]] = []  # (worker index, exit code) of workers that died
    last_words: list[str] = []  # the end of each dead worker's log
    for n in range(STATEMENTS):
        if n == RESTART_AT:
            restart.start()
            time.sleep(0.05)  # the stop is under way: the next statements meet it
        updater.step()
        time.sleep(0.02)
    restart.join(timeout=60)
    assert owned_pg.restarts == 1
    update_seconds = time.monotonic() - started

    conn = updater.updater.conn
    deadline = time.monotonic() + 45
    while True:  # the drain; a worker that died is recorded and started again
        for i, proc in enumerate(pool.procs):
            if proc.poll() is not None:
                deaths.append((i, proc.returncode))
                with open(pool.logs[i], "rb") as log:  # its own last words, before a respawn appends
                    last_words.append(log.read()[-4000:].decode(errors="replace"))
                pool.procs[i] = pool._respawn(i)
        counts = harness.queue_counts(conn)
        if counts.get("pending", 0) == 0 and counts.get("processing", 0) == 0:
            break
        assert time.monotonic() < deadline, (f"queue not drained 45 s after the updates: {counts};"
                                             f" worker deaths {deaths}\n{pool.output()[-4000:]}")
        time.sleep(0.1)
    drain_seconds = time.monotonic() - started - update_seconds
    survived = [p.pid for p in pool.procs[:2]] == pids_before and not deaths

    problems = conn.execute("select id, status, last_error_code, last_error from loyverse.loyverse_price_sync_queue"
                            " where status in ('failed', 'dead', 'conflict', 'processing')").fetchall()
    assert problems == [], problems
    # every request the drains made is recorded: at least what their completed batches logged
    # (a batch whose completion the restart cut off is not logged, its calls are still kept),
    # and never more than the emulator saw (the hourly reconcile and polling also read, unlogged)
    for seed in seeds:
        def sent_logged_recorded(seed: Any = seed) -> tuple[int, int, int]:
            sent = len(emu.state.requests_since(0, seed.merchant_id)) - already[seed.merchant_id]
            row = conn.execute(
                "select (select coalesce(sum(requests_made), 0)::int from loyverse.loyverse_sync_logs"
                "         where sync_type = 'PRICE_SYNC' and account_id = %(a)s) as logged,"
                "       (select coalesce(sum(calls), 0)::int from loyverse.loyverse_api_call_stats"
                "         where account_id = %(a)s) as recorded", {"a": seed.account_id}).fetchone()
            return sent, row["logged"], row["recorded"]
        seen = sent_logged_recorded()
        deadline = time.monotonic() + 20
        while not (seen[0] >= seen[2] >= seen[1] > 0) and time.monotonic() < deadline:
            time.sleep(0.2)
            seen = sent_logged_recorded()
        assert seen[0] >= seen[2] >= seen[1] > 0, f"requests sent, logged by batches, recorded: {seen}"
    for seed in seeds:
        assert harness.diverged(conn, emu, seed) == {}
        want = testing.db_prices(conn, seed.account_id)
        assert harness.stale_last_changes(emu, seed, want) == {}
        assert harness.stale_last_writes(emu, seed, want) == {}
    assert updater.connection_errors > 0  # the updater did meet the restart
    assert deaths == [], f"a worker died across the restart: {deaths}\n" + "\n---\n".join(last_words)
    assert survived
    # ... because each rode it out: procrastinate stopped it, it waited and started again
    assert pool.output().count("restarting the worker") >= 2, pool.output()[-4000:]
    print(f"\npostgres restart: {updater.updater.updates} updates in {updater.updater.statements} statements, "
          f"{update_seconds:.1f} s + drain {drain_seconds:.1f} s; updater connection errors "
          f"{updater.connection_errors}, back after {[round(s, 2) for s in updater.retried_after]} s; "
          f"workers survived the restart: {survived}; deaths {deaths}; faults {harness.fault_counts(emu)}; "
          f"queue {harness.queue_counts(conn)}")


def test_a_worker_started_while_postgres_is_down_waits_for_it(owned_pg, fernet_key, tmp_path):
    """compose starts the worker and PostgreSQL together; a restart may be under way when
    systemd starts it: the worker waits for the database instead of exiting 2."""
    admin = harness.connect(owned_pg.conninfo("postgres"))
    admin.execute("create database lvs_late")
    admin.close()
    dsn = owned_pg.conninfo("lvs_late")
    db.migrate(dsn)
    owned_pg.stop("fast")
    log_path = tmp_path / "worker.log"
    env = {**harness.WorkerPool(dsn, str(tmp_path / "logs")).env}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "loyverse_sync", "worker", "--reconnect-timeout", "120"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60  # a state, not a duration: the log line, or the test fails
        while b"does not answer yet" not in log_path.read_bytes():
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        owned_pg.start()
        with harness.connect(dsn) as conn:
            while conn.execute("select count(*) as n from procrastinate_workers").fetchone()["n"] < 1:
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline + 60, log_path.read_text()
                time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
