"""Many workers: five worker processes on two accounts, the shared rate governor, scaling.

* Five `loyverse-sync worker` processes serve two accounts (procrastinate's lock gives one
  account to one job at a time; the others wait or take the other account). No product
  version is sent twice (an applied item write that changed nothing) except after a lease
  expiry, which is counted.
* The governor holds: the emulator's request log never has more than the (time-scaled)
  budget in any window, and the emulator answered no 429 at all.
* Accounts drain side by side: two accounts' batches overlap in the database's clock (how
  much that gains is measured by bench/many_accounts.py, not asserted here).
* Three drainers claiming the SAME account concurrently (what a lease expiry makes possible:
  a worker presumed dead still writes) still converge, and no write reverts another's.
* A dead worker's job that holds its account's lock is recovered even when the account
  already has a queued job (procrastinate's retry would hit the queueing-lock unique index).

The five-worker test runs in both readings of an update POST (`post_semantics`), `whole`
and `merge`; both assert that no field of any item but the synced store
prices changed (item fingerprints, on a rich menu for the first account).
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time

import pytest

from loyverse_emulator import server
from loyverse_sync.worker import app as app_mod
from loyverse_sync.worker import tasks
from tests.support import chaos as harness
from tests.support import pricesync as testing

TIME_SCALE = 100  # 300 requests per 3 s per account
WINDOW = 300 / TIME_SCALE


@pytest.fixture
def emu(request):
    # parametrized (post_semantics): a rich menu too; else the plain menu in the default mode
    semantics = getattr(request, "param", None)
    with server.EmulatorServer(menu=400, seed=5, stores=1, time_scale=TIME_SCALE, rich_menu=semantics is not None,
                               post_semantics=semantics or "merge") as emu:
        harness.grow_menu(emu, 1, 400)
        yield emu


def _seed(conn, emu):
    return [testing.seed_from_emulator(conn, emu, merchant_index=n, rate_limit_window_seconds=WINDOW,
                                       account_name=f"acct{n}") for n in (0, 1)]


def _lease_expiries(conn) -> int:
    row = conn.execute(
        "select coalesce(sum((details->'counts'->>'lost')::int), 0)::int as lost,"
        " (select count(*)::int from loyverse.loyverse_price_sync_queue where last_error_code = 'LEASE_EXPIRED') as expired"
        " from loyverse.loyverse_sync_logs where sync_type = 'PRICE_SYNC'").fetchone()
    return row["lost"] + row["expired"]


@pytest.mark.parametrize("emu", ["whole", "merge"], indirect=True)
def test_five_workers_two_accounts_governor_and_scaling(dsn, conn, emu, fernet_key, tmp_path):
    seeds = _seed(conn, emu)
    initial = {s.merchant_id: testing.loyverse_prices(emu, s.merchant_id) for s in seeds}
    fingerprints = {s.merchant_id: harness.item_fingerprints(emu, s.merchant_id, s.products) for s in seeds}
    rids = [next(iter(s.restaurants.values())) for s in seeds]
    emu.state.reset()
    cron = harness.Cron(dsn, interval=1.0)
    cron.start()
    try:
        with harness.WorkerPool(dsn, str(tmp_path / "logs"), concurrency=2, verbose=False) as pool:
            pool.start(5)
            time.sleep(1.0)
            t0 = time.monotonic()
            round_two = conn.execute("select clock_timestamp() as t").fetchone()["t"]
            conn.execute("update public.products set price = price + 3 where restaurant_id = any(%s::uuid[])",
                         (rids,))
            two = harness.wait_drained(conn, 60)
            assert time.monotonic() - t0 >= two
    finally:
        cron.stop()

    requests = [len(emu.state.requests_since(0, s.merchant_id)) for s in seeds]
    peaks = [harness.window_peaks(emu, s.merchant_id, WINDOW) for s in seeds]
    counters = emu.state.counters()
    limited = sum(c["rate_limited"] for c in counters.values())
    noop = [harness.noop_writes(emu, s.merchant_id, initial[s.merchant_id]) for s in seeds]
    expiries = _lease_expiries(conn)
    print(f"\nmany workers: two accounts {two:.2f} s; "
          f"requests {requests}; window peaks {peaks} of 300; 429s {limited}; "
          f"items sent twice {noop} (lease expiries {expiries})")
    for seed in seeds:
        assert harness.diverged(conn, emu, seed) == {}
        after = harness.item_fingerprints(emu, seed.merchant_id, seed.products)
        assert harness.fingerprint_changes(fingerprints[seed.merchant_id], after) == []
    assert limited == 0
    assert max(peaks) <= 300
    assert sum(noop) <= expiries
    # The two accounts drained side by side: in the database's clock, each account's batches of
    # this round span an interval, and the two intervals overlap. (How much faster that
    # is than one after the other depends on the machine: bench/many_accounts.py measures it.)
    spans = conn.execute(
        "select account_id, min(started_at) as first, max(completed_at) as last from loyverse.loyverse_sync_logs"
        " where sync_type = 'PRICE_SYNC' and started_at >= %s group by account_id", (round_two,)).fetchall()
    assert len(spans) == 2, spans
    assert max(r["first"] for r in spans) < min(r["last"] for r in spans), spans


def test_three_drainers_on_one_account_never_revert_each_other(dsn, connector, conn, emu, fernet_key, tmp_path):
    (seed, _) = _seed(conn, emu)
    rid = next(iter(seed.restaurants.values()))
    emu.state.set_modes(seed.merchant_id, rate_limit=None)
    # no procrastinate here: three processes drain the same account at once, as happens when
    # a worker presumed dead (lease expired, job retried) is in fact still writing
    code = ("import sys, time; from loyverse_sync import db; from loyverse_sync.pricesync import engine;"
            "end = time.time() + float(sys.argv[3]);"
            "cfg = engine.EngineConfig(max_items=int(sys.argv[4]));"
            "price_sync = engine.PriceSync(db.Connector(sys.argv[1], role='worker'), cfg);"
            "[price_sync.drain(int(sys.argv[2])) or time.sleep(0.02)"
            " for _ in iter(lambda: time.time() < end, False)]")
    env = {**os.environ, "DATABASE_URL": dsn}
    procs = [subprocess.Popen([sys.executable, "-c", code, dsn, str(seed.account_id), "12", str(size)], env=env)
             for size in (3, 5, 8)]
    products = list(seed.products.values())
    updater = harness.Updater(conn, {rid: products}, {rid: 2}, random.Random(5))
    try:
        end = time.monotonic() + 9
        while time.monotonic() < end:
            updater.step()
            time.sleep(0.01)
    finally:
        for p in procs:
            p.wait(timeout=60)
    # whatever the drainers left behind (backoffs, a last change) one more drain finishes
    from loyverse_sync.pricesync import engine

    engine.drain_account(connector, seed.account_id)
    want = testing.db_prices(conn, seed.account_id)
    print(f"\nthree drainers: {updater.updates} updates, queue {harness.queue_counts(conn)}")
    assert harness.diverged(conn, emu, seed) == {}
    assert harness.stale_last_changes(emu, seed, want) == {}


def test_a_dead_workers_job_is_recovered_when_its_account_has_a_queued_job(dsn, conn, fernet_key):
    worker = conn.execute("insert into procrastinate_workers (last_heartbeat) values (now() - interval '1 hour')"
                          " returning id").fetchone()["id"]
    lock = "loyverse_price_sync:1"
    conn.execute("insert into procrastinate_jobs (queue_name, task_name, lock, queueing_lock, args, status, worker_id)"
                 " values ('price_sync', 'sync_loyverse_prices', %s, %s, '{\"account_id\": 1}', 'doing', %s)",
                 (lock, lock, worker))
    conn.execute("select loyverse.wake_price_sync(1)")  # a change arrived meanwhile: one job queued
    app = app_mod.build_app(app_mod.worker_connector(dsn), close_connector=True, max_pool_size=2)

    async def recover() -> int:
        async with app.open_async():
            return await tasks.recover_stalled_jobs(app.job_manager, tasks.stalled_after_seconds())

    assert asyncio.run(recover()) == 1
    rows = conn.execute("select status::text from procrastinate_jobs where lock = %s order by id", (lock,)).fetchall()
    # the stalled one is closed, the queued one can now run (nothing holds the lock)
    assert [r["status"] for r in rows] == ["failed", "todo"]
