"""The procrastinate tasks of the price sync.

* ``sync_loyverse_prices(account_id)``: deferred from SQL by ``loyverse.wake_price_sync``
  with queueing_lock and lock ``loyverse_price_sync:<account>`` (one queued and one running
  job per account; accounts run in parallel). Drains the account in a thread (the HTTP
  client is synchronous); on cancellation (graceful-shutdown timeout) it tells the drain to
  stop, which finishes the item in flight and releases the rest of its batch.
* ``sweep_price_sync`` (every minute): expired leases, BATCH_* restaurants at their
  boundary, backoffs that ended, lost wake-ups; stalled procrastinate jobs are retried.
* ``send_price_sync_notifications`` (every minute): queue error digests, send the outbox.
* ``prune_price_sync_queue`` (hourly): retention of done/cancelled rows.
* ``import_loyverse_menu(run_id)``: deferred by ``loyverse.request_menu_import`` (the HTTP
  API, the console, or SQL): fetches the menu and runs the import, as its requester.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import os
import threading
from typing import Any

import procrastinate

from loyverse_sync import db, queries
from loyverse_sync.loyverse import client as client_mod
from loyverse_sync.pricesync import engine, notify

logger = logging.getLogger("loyverse_sync.worker")

QUEUE = "price_sync"
SYNC_TASK = "sync_loyverse_prices"


def engine_config_from_env(env: dict[str, str] | None = None) -> engine.EngineConfig:
    """Engine tuning from LOYVERSE_SYNC_BATCH_ITEMS, _LEASE_SECONDS, _HTTP_TIMEOUT.

    A failed row's backoff is not here: it is the restaurant's setting (backoff_base_seconds,
    backoff_cap_seconds), read by complete_price_sync_batch beside max_attempts.
    """
    env = dict(os.environ if env is None else env)
    config = engine.EngineConfig()
    for key, attr, cast in (
        ("LOYVERSE_SYNC_BATCH_ITEMS", "max_items", int),
        ("LOYVERSE_SYNC_LEASE_SECONDS", "lease_seconds", float),
        ("LOYVERSE_SYNC_HTTP_TIMEOUT", "http_timeout", float),
    ):
        if env.get(key):
            setattr(config, attr, cast(env[key]))
    for gone in ("LOYVERSE_SYNC_BACKOFF_BASE", "LOYVERSE_SYNC_BACKOFF_CAP"):
        if env.get(gone):  # read until this release; say where the setting went
            logger.warning("%s is no longer read: a failed row's backoff is a restaurant setting "
                           "(`loyverse-sync sync settings set -r R backoff_base_seconds=... "
                           "backoff_cap_seconds=...`)", gone)
    return config


def register(app: procrastinate.App, connector: db.Connector, config: engine.EngineConfig | None = None) -> None:
    """Register the price-sync tasks on ``app``; their own SQL goes through ``connector``."""
    config = config or engine_config_from_env()
    # A drain thread sleeps while its account waits for the rate budget: with asyncio's default
    # executor (min(32, cpus + 4) threads) a worker drained only that many accounts at once,
    # whatever its --concurrency. One thread per possible job (the CLI allows 64).
    drains = concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="price-sync-drain")
    _start_threads(drains, 64)
    # the SSL context every drain's client shares: built now, not by the first burst of drains
    client_mod._shared_ssl_context()
    # Every drain of this process: the connector's pooled connections, decrypted accounts.
    price_sync = engine.PriceSync(connector, config)

    # No procrastinate retry: a row's failed write is retried by the queue (attempts, the
    # restaurant's backoff, a wake booked when due), and a crashed drain's rows come back by
    # their lease and the minute's sweep. Retrying the job added nothing and, with the
    # account's follow-up job queued (one todo job per queueing lock), the retry failed with a
    # unique violation and left the job `doing` with the account's lock: no later drain of
    # that account ran until the worker restarted (tests/integration/test_price_sync_retry_layers.py).
    @app.task(name=SYNC_TASK, queue=QUEUE, pass_context=True)
    async def sync_loyverse_prices(context: procrastinate.JobContext, account_id: int) -> dict[str, Any]:
        """Drain one account's due price changes into Loyverse."""
        stop = threading.Event()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            drains, functools.partial(price_sync.drain, int(account_id), stop=stop)
        )
        try:
            result = await asyncio.shield(future)
        except asyncio.CancelledError:
            stop.set()  # finish the item in flight, release the rest of the batch
            with contextlib.suppress(Exception):
                await asyncio.shield(future)
            raise
        logger.info("account %s: %s", account_id, result.as_dict())
        return result.as_dict()

    @app.periodic(cron="* * * * *", periodic_id="sweep")
    @app.task(name="sweep_price_sync", queue=QUEUE, queueing_lock="sweep_price_sync", pass_context=True)
    async def sweep_price_sync(context: procrastinate.JobContext, timestamp: int) -> dict[str, Any]:
        """Safety net: leases, batch frequencies, backoffs, lost wake-ups, stalled jobs."""
        result = await asyncio.to_thread(_sql, connector, "sweep")
        stalled = await recover_stalled_jobs(context.app.job_manager, stalled_after_seconds())
        return {**(result or {}), "stalled_jobs": stalled}

    @app.periodic(cron="* * * * *", periodic_id="notifications")
    @app.task(name="send_price_sync_notifications", queue=QUEUE, queueing_lock="send_price_sync_notifications")
    async def send_price_sync_notifications(timestamp: int) -> dict[str, Any]:
        """Queue error digests and send the email outbox (never blocks price sync)."""
        return await asyncio.to_thread(run_notifications, connector)

    @app.periodic(cron="* * * * *", periodic_id="alerts")
    @app.task(name="evaluate_alerts", queue=QUEUE, queueing_lock="evaluate_alerts")
    async def evaluate_alerts(timestamp: int) -> int:
        """Open and close alert breaches; each change queues one ALERT or RECOVERY email."""
        return int(await asyncio.to_thread(_sql, connector, "evaluate_alerts") or 0)

    @app.periodic(cron="17 * * * *", periodic_id="prune")
    @app.task(name="prune_price_sync_queue", queue=QUEUE, queueing_lock="prune_price_sync_queue")
    async def prune_price_sync_queue(timestamp: int) -> int:
        """Retention: delete done and cancelled queue rows older than LOYVERSE_SYNC_RETENTION_DAYS (7)."""
        days = float(os.environ.get("LOYVERSE_SYNC_RETENTION_DAYS", "7"))
        return int(await asyncio.to_thread(_sql, connector, "prune", {"older_than_seconds": days * 86400,
                                                                       "limit": 50000}) or 0)


    @app.task(name="import_loyverse_menu", queue=QUEUE)
    async def import_loyverse_menu(run_id: int) -> dict[str, Any]:
        """Run a requested menu import (fetch, plan, write); progress in loyverse.import_runs."""
        return await asyncio.to_thread(run_requested_import, connector, int(run_id))


def run_requested_import(connector: db.Connector, run_id: int) -> dict[str, Any]:
    """One requested import, acting as whoever requested it (the audit trail's actor)."""
    from loyverse_sync.importer import runs

    row = connector.execute_one("importer", "requested_by", {"id": run_id})
    actor = (row or {}).get("actor") or "worker"
    try:
        result = runs.execute_requested(connector.acting_as(actor), run_id)
    except runs.ImportProblem as exc:
        # recorded on the run (FAILED, error): a procrastinate retry would not change it
        logger.warning("import run %s failed: %s", run_id, exc)
        return {"run_id": run_id, "status": "FAILED", "error": str(exc)}
    return {k: v for k, v in result.items() if isinstance(v, str | int | float | bool | None)}


def _start_threads(executor: concurrent.futures.ThreadPoolExecutor, n: int) -> None:
    """Start the executor's threads now, not one per job during a burst of wake-ups: starting
    a thread blocks the event loop (which fetches the jobs) until the thread runs."""
    barrier = threading.Barrier(n)

    def wait() -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=30)

    for _ in range(n):
        executor.submit(wait)


def heartbeat_seconds() -> float:
    """Seconds between procrastinate worker heartbeats (LOYVERSE_SYNC_HEARTBEAT_SECONDS, default 10)."""
    return float(os.environ.get("LOYVERSE_SYNC_HEARTBEAT_SECONDS") or 10.0)


def stalled_after_seconds() -> float:
    """A worker without a heartbeat for 3 heartbeats is dead; its running jobs are stalled."""
    return 3 * heartbeat_seconds()


async def recover_stalled_jobs(job_manager: procrastinate.manager.JobManager, seconds_since_heartbeat: float) -> int:
    """Put the running jobs of dead workers (SIGKILL, lost host) back in the queue.

    A dead worker's job stays ``doing`` and keeps its ``lock``, so its account is blocked
    until the job is retried. Retrying it fails with a unique violation when the account
    already has a queued job (same queueing lock): then that queued job does the work and
    the stalled one is closed as failed. Returns the stalled jobs handled.
    """
    handled = 0
    for job in await job_manager.get_stalled_jobs(seconds_since_heartbeat=seconds_since_heartbeat):
        try:
            await job_manager.retry_job(job)
        except procrastinate.exceptions.ConnectorException:
            logger.info("stalled job %s: a job of the same lock is queued already; closing it", job.id)
            with contextlib.suppress(procrastinate.exceptions.ConnectorException):
                await job_manager.finish_job(job, status=procrastinate.jobs.Status.FAILED, delete_job=False)
        handled += 1
    return handled


def _sql(connector: db.Connector, name: str, params: dict[str, Any] | None = None) -> Any:
    """The first value of the named query ``name`` of queries/pricesync.sql."""
    row = connector.execute_one("pricesync", name, params)
    return None if row is None else next(iter(row.values()))


def run_notifications(connector: db.Connector, settings: notify.SmtpSettings | None = None) -> dict[str, Any]:
    """Queue digests (LOYVERSE_SYNC_DIGEST_INTERVAL seconds, default 3600) and send the outbox."""
    interval = float(os.environ.get("LOYVERSE_SYNC_DIGEST_INTERVAL", "3600"))
    settings = settings or notify.SmtpSettings.from_env()
    with connector.connection() as conn:
        queued = queries.execute(conn, "pricesync", "enqueue_digests", {"interval_seconds": interval}).fetchone()
        out: dict[str, Any] = {"queued": queued["queued"] if queued else 0}
        if settings is None:
            out["skipped"] = "LOYVERSE_SYNC_SMTP_HOST is not set"
            return out
        out.update(notify.send_pending(conn, settings))
        return out
