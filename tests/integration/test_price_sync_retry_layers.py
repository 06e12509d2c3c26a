"""One retry layer per concern (docs/price-sync.md, "Retries"): a row's failed write is the
queue's (attempts, the restaurant's backoff, a wake booked for the moment it is due), so a
drain job that crashed is not retried by procrastinate; its rows come back on their own.
Real procrastinate workers (in-process, one-shot) against the emulator over HTTP; every wait
is read on the database's clock."""

from __future__ import annotations

import asyncio
import decimal
import time

import pytest

from loyverse_emulator import server
from loyverse_sync.pricesync import engine
from loyverse_sync.worker import app as app_mod
from tests.support import pricesync as testing

D = decimal.Decimal


@pytest.fixture
def emu():
    with server.EmulatorServer(menu=6, seed=3, stores=1, time_scale=100) as emu:
        yield emu


@pytest.fixture
def seed(conn, emu, fernet_key):
    return testing.seed_from_emulator(conn, emu, stores=1, rate_limit_window_seconds=3.0)


def _fixed(conn, seed, n):
    """n (variant, store) -> product of FIXED prices (a VARIABLE one is never queued)."""
    fixed = {str(r["product_id"]) for r in conn.execute(
        "select product_id from loyverse.loyverse_item_mappings where loyverse_pricing_type = 'FIXED'")}
    out = [(key, pid) for key, pid in seed.products.items() if str(pid) in fixed][:n]
    assert len(out) == n, "the seeded menu has too few FIXED prices"
    return out


def _queue(conn):
    return conn.execute("select status, attempts, next_attempt_at, last_error_code"
                        " from loyverse.loyverse_price_sync_queue order by id").fetchall()


def _due_jobs(conn, account_id):
    return conn.execute("select scheduled_at, status::text as status from procrastinate_jobs"
                        " where queueing_lock = %s order by id", (f"loyverse_price_sync_due:{account_id}",)).fetchall()


def _sync_jobs(conn):
    return conn.execute("select id, status::text as status, attempts from procrastinate_jobs"
                        " where task_name = 'sync_loyverse_prices' order by id").fetchall()


def _wait_until_db_time(conn, moment, deadline=60.0):
    """Poll the database's clock (a generous bound for a hung box, not a speed claim)."""
    start = time.monotonic()
    while not conn.execute("select now() >= %s as due", (moment,)).fetchone()["due"]:
        assert time.monotonic() - start < deadline, f"the database clock never reached {moment}"
        time.sleep(0.05)


def _run_worker_once(dsn):
    """A real procrastinate worker that runs what is due now and returns."""
    app = app_mod.build_app(app_mod.worker_connector(dsn), close_connector=True)

    async def run() -> None:
        async with app.open_async():
            await app.run_worker_async(wait=False, install_signal_handlers=False, queues=["price_sync"],
                                       delete_jobs="successful")

    asyncio.run(run())


@pytest.mark.parametrize("ends", ["caught up", "at max_batches"])
def test_a_row_failing_in_the_last_batch_books_a_wake_at_its_backoff(conn, connector, emu, seed, ends):
    ((_, store_id), product_id), = _fixed(conn, seed, 1)
    conn.execute("select loyverse.update_price_sync_settings(%s, '{\"backoff_base_seconds\": 60}')",
                 (seed.restaurants[store_id],))
    conn.execute("update public.products set price = price + 1 where id = %s", (product_id,))
    emu.state.set_faults(seed.merchant_id, p500=1.0)
    config = engine.EngineConfig(http_max_attempts=1, http_timeout=3,
                                 max_batches=1 if ends == "at max_batches" else None)
    result = engine.drain_account(connector, seed.account_id, config=config)
    assert result.batches == 1  # the failing batch was the drain's last
    (row,) = _queue(conn)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    waited = conn.execute("select extract(epoch from next_attempt_at - updated_at)::float8 as s"
                          " from loyverse.loyverse_price_sync_queue").fetchone()["s"]
    assert 30 <= waited <= 60  # 60 s * 2^0, jitter 0.5..1.0: the restaurant's backoff
    # booked for exactly that moment (the account's lock), not left to the minute's sweep
    assert [(j["scheduled_at"], j["status"]) for j in _due_jobs(conn, seed.account_id)] == [
        (row["next_attempt_at"], "todo")]


@pytest.mark.slow  # a few seconds: left out of the fast lane, run by CI
def test_a_failed_row_goes_out_when_its_backoff_ends_with_no_sweep(conn, dsn, emu, seed):
    ((variant_id, store_id), product_id), = _fixed(conn, seed, 1)
    conn.execute("select loyverse.update_price_sync_settings(%s, %s)",
                 (seed.restaurants[store_id], '{"backoff_base_seconds": 3, "backoff_cap_seconds": 3}'))
    target = conn.execute("update public.products set price = price + 1 where id = %s returning price",
                          (product_id,)).fetchone()["price"]
    emu.state.set_faults(seed.merchant_id, p500=1.0)
    # the trigger's job: the write fails, the row backs off (on a slow box a booked wake may
    # come due while this worker still runs and fail once more: the count is not the point)
    _run_worker_once(dsn)
    (row,) = _queue(conn)
    assert (row["status"], row["last_error_code"]) == ("pending", "INTERNAL_SERVER_ERROR")
    assert row["attempts"] >= 1
    (booked,) = _due_jobs(conn, seed.account_id)
    assert booked["scheduled_at"] == row["next_attempt_at"]
    emu.state.set_faults(seed.merchant_id, clear=True)
    _wait_until_db_time(conn, booked["scheduled_at"])
    _run_worker_once(dsn)  # nothing but the booked job: no sweep ran
    (done,) = _queue(conn)
    assert (done["status"], done["attempts"]) == ("done", row["attempts"])
    assert testing.loyverse_prices(emu, seed.merchant_id)[(variant_id, store_id)] == D(target)


def test_a_crashed_drain_job_is_not_retried_and_the_next_job_of_the_account_runs(conn, dsn, emu, seed, monkeypatch):
    (key_a, a), (key_b, b) = _fixed(conn, seed, 2)
    real_drain = engine.PriceSync.drain
    calls = []

    def crashing_once(self, account_id, **kwargs):
        calls.append(account_id)
        if len(calls) == 1:
            # a change arrives while this job runs (its queued follow-up), then the drain dies
            with _connect(dsn) as c:
                c.execute("update public.products set price = price + 2 where id = %s", (b,))
            raise RuntimeError("the drain crashed")
        return real_drain(self, account_id, **kwargs)

    monkeypatch.setattr(engine.PriceSync, "drain", crashing_once)
    conn.execute("update public.products set price = price + 1 where id = %s", (a,))
    _run_worker_once(dsn)
    # the crashed job is closed (failed), not retried: procrastinate retrying it collided with
    # the queued follow-up (one todo job per account) and left it `doing`, holding the
    # account's lock, so no later job of the account could run until the worker restarted
    assert len(calls) == 2, calls
    assert [j["status"] for j in _sync_jobs(conn)] == ["failed"]
    assert {r["status"] for r in _queue(conn)} == {"done"} and len(_queue(conn)) == 2
    want = testing.db_prices(conn, seed.account_id)
    have = testing.loyverse_prices(emu, seed.merchant_id)
    assert (have[key_a], have[key_b]) == (want[key_a], want[key_b])


def test_rows_a_crashed_drain_had_claimed_come_back_by_their_lease_and_the_sweep(conn, dsn, emu, seed, monkeypatch):
    ((variant_id, store_id), product_id), = _fixed(conn, seed, 1)
    monkeypatch.setenv("LOYVERSE_SYNC_LEASE_SECONDS", "1")
    real_drain = engine.PriceSync.drain

    def claim_then_crash(self, account_id, **kwargs):
        with _connect(dsn) as c:
            rows = c.execute("select * from loyverse.claim_price_sync_batch(%s, 'crash:1', 250, 1)",
                             (account_id,)).fetchall()
        assert rows
        raise RuntimeError("the drain crashed after its claim")

    monkeypatch.setattr(engine.PriceSync, "drain", claim_then_crash)
    target = conn.execute("update public.products set price = price + 1 where id = %s returning price",
                          (product_id,)).fetchone()["price"]
    _run_worker_once(dsn)
    assert [j["status"] for j in _sync_jobs(conn)] == ["failed"]
    (row,) = conn.execute("select status, lease_until from loyverse.loyverse_price_sync_queue").fetchall()
    assert row["status"] == "processing"
    monkeypatch.setattr(engine.PriceSync, "drain", real_drain)
    _wait_until_db_time(conn, row["lease_until"])
    # the minute's sweep: releases the lease (an attempt) and wakes the account
    swept = conn.execute("select loyverse.sweep_price_sync() as r").fetchone()["r"]
    assert swept["woken"] == 1, swept
    _run_worker_once(dsn)
    (row,) = _queue(conn)
    assert (row["status"], row["attempts"]) == ("done", 1)
    assert testing.loyverse_prices(emu, seed.merchant_id)[(variant_id, store_id)] == D(target)


def _connect(dsn):
    import psycopg
    from psycopg import rows

    return psycopg.connect(dsn, autocommit=True, row_factory=rows.dict_row)
