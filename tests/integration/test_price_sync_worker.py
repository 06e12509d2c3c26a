"""Real procrastinate workers (in-process) drain the queue into the emulator over HTTP."""

from __future__ import annotations

import asyncio
import decimal
import time

import pytest

from loyverse_emulator import server
from loyverse_sync.worker import app as app_mod
from tests.support import pricesync as testing

D = decimal.Decimal


@pytest.fixture
def emu():
    with server.EmulatorServer(menu=8, seed=2, stores=2, time_scale=100) as emu:
        yield emu


@pytest.fixture
def seed(conn, emu, fernet_key):
    return testing.seed_from_emulator(conn, emu, stores=2, rate_limit_window_seconds=3.0)


def jobs(conn):
    return conn.execute("select task_name, status::text, queueing_lock, lock, args from procrastinate_jobs"
                        " where task_name = 'sync_loyverse_prices'").fetchall()


def test_many_updates_queue_one_job_and_a_one_shot_worker_syncs_them(conn, dsn, emu, seed):
    ids = list(seed.products.values())
    for n in range(5):
        conn.execute("update public.products set price = price + 0.1 where id = any(%s::uuid[])", (ids[n::3],))
    (job,) = jobs(conn)
    assert job["status"] == "todo" and job["args"] == {"account_id": seed.account_id}
    assert job["queueing_lock"] == job["lock"] == f"loyverse_price_sync:{seed.account_id}"

    app = app_mod.build_app(app_mod.worker_connector(dsn), close_connector=True)

    async def run() -> None:
        async with app.open_async():
            await app.run_worker_async(wait=False, install_signal_handlers=False, queues=["price_sync"],
                                       delete_jobs="successful")

    asyncio.run(run())
    assert jobs(conn) == []
    want = testing.db_prices(conn, seed.account_id)
    have = testing.loyverse_prices(emu, seed.merchant_id)
    assert {k: v for k, v in want.items() if have[k] != v} == {}
    assert conn.execute("select count(*) as n from loyverse.loyverse_price_sync_queue"
                        " where status <> 'done'").fetchone()["n"] == 0


def test_manual_restaurants_wait_for_an_explicit_trigger(conn, dsn, emu, seed):
    (variant_id, store_id), product_id = next(iter(seed.products.items()))
    rid = seed.restaurants[store_id]
    conn.execute("select loyverse.update_price_sync_settings(%s, '{\"sync_frequency\": \"MANUAL\"}')", (rid,))
    conn.execute("update public.products set price = 33 where id = %s", (product_id,))
    assert jobs(conn) == []
    assert conn.execute("select loyverse.sweep_price_sync() as r").fetchone()["r"]["woken"] == 0
    assert conn.execute("select loyverse.trigger_price_sync(%s) as n", (rid,)).fetchone()["n"] == 1
    assert len(jobs(conn)) == 1
    app = app_mod.build_app(app_mod.worker_connector(dsn), close_connector=True)

    async def run() -> None:
        async with app.open_async():
            await app.run_worker_async(wait=False, install_signal_handlers=False, queues=["price_sync"])

    asyncio.run(run())
    assert testing.loyverse_prices(emu, seed.merchant_id)[(variant_id, store_id)] == D("33.000")


def test_commit_to_loyverse_latency_with_a_running_worker(conn, dsn, emu, seed):
    products = list(seed.products.items())[:5]
    app = app_mod.build_app(app_mod.worker_connector(dsn), close_connector=True)
    latencies = []

    async def run() -> None:
        async with app.open_async():
            worker = asyncio.create_task(app.run_worker_async(
                install_signal_handlers=False, queues=["price_sync"], delete_jobs="successful"))
            await asyncio.sleep(0.5)
            for n, ((variant_id, store_id), product_id) in enumerate(products):
                target = D("50.00") + n
                start = time.monotonic()
                await asyncio.to_thread(conn.execute, "update public.products set price = %s where id = %s",
                                        (target, product_id))
                while emu.state.variant_price(variant_id, store_id, seed.merchant_id) != target:
                    # a bound for a hung worker, not a speed claim (latency is bench/'s)
                    assert time.monotonic() - start < 60, "price did not reach Loyverse"
                    await asyncio.sleep(0.01)
                latencies.append(time.monotonic() - start)
            worker.cancel()
            with __import__("contextlib").suppress(asyncio.CancelledError):
                await worker

    asyncio.run(run())
    assert max(latencies) < 2.0, latencies
