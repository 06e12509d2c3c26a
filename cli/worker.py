"""`loyverse-sync worker`: the procrastinate worker running the price sync."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from loyverse_sync.cli import _common

if TYPE_CHECKING:
    from loyverse_sync import db


@click.command()
@click.option("--concurrency", "-c", type=_common.IntBetween(1, 64), default=2, show_default=True,
              help="Jobs run at once (different accounts sync in parallel; one account runs one job). "
                   "Above 16, jobs are fetched by one procrastinate worker per 16 jobs, side by side.")
@click.option("--graceful-timeout", type=_common.seconds(), default=30.0, show_default=True,
              help="On SIGTERM, seconds to let running jobs finish before they are told to stop "
                   "(they then finish the item in flight and release the rest of the batch).")
@click.option("--one-shot", is_flag=True, help="Run what is queued, then exit.")
@click.option("--no-listen", is_flag=True, help="Poll only (no LISTEN/NOTIFY).")
@click.option("--metrics-port", type=_common.PORT, help="Serve Prometheus /metrics on this port.")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Address for --metrics-port.")
@click.option("--reconnect-timeout", type=_common.seconds(), default=300.0, show_default=True,
              help="When the database is away at start or goes away later (a restart, a failover), "
                   "seconds to keep waiting for it before exiting with status 1; the worker starts "
                   "(again) once it is back.")
def worker(concurrency: int, graceful_timeout: float, one_shot: bool, no_listen: bool,
           metrics_port: int | None, metrics_host: str, reconnect_timeout: float) -> None:
    """Run the price-sync worker (procrastinate) until SIGTERM/SIGINT.

    Runs the sync_loyverse_prices jobs that price changes queue, and the periodic sweep,
    notification and retention tasks. Configure with DATABASE_URL (or PG*),
    LOYVERSE_SYNC_KEY, and optionally LOYVERSE_SYNC_SMTP_* (see systemd/loyverse-sync.env.example).
    """
    from loyverse_sync import audit

    # Until procrastinate installs its graceful handlers (after it registered the worker), a
    # SIGTERM ends the process with status 0 instead of killing it: nothing runs yet.
    signal.signal(signal.SIGTERM, _exit_before_running)
    found = _common.database()
    audit.use_for_process(f"worker:{audit.os_user()}")  # the audit trail's actor of the worker's own changes
    connector = _connector_once_the_database_answers(found, concurrency, reconnect_timeout)
    if connector is None:
        return  # SIGTERM/SIGINT while it waited
    try:
        _run(connector, found.describe(), concurrency, graceful_timeout, one_shot, no_listen, metrics_port,
             metrics_host, reconnect_timeout)
    finally:
        connector.close()


def _exit_before_running(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def _connector_once_the_database_answers(found: Any, concurrency: int, reconnect_timeout: float) -> db.Connector | None:
    """The process's one database handle. A database that is down or restarting when the
    worker starts (compose starting both at once, a restart in progress) is waited for like one
    lost later (--reconnect-timeout); a refusal that waiting cannot cure (a wrong password, a
    database that does not exist) fails at once. None: stopped by a signal while waiting."""
    import psycopg

    from loyverse_sync.worker import app as app_mod

    try:
        return app_mod.worker_connector(found.conninfo, concurrency=concurrency)
    except psycopg.OperationalError as exc:
        if not server_away(exc):
            raise
        logging.getLogger("loyverse_sync").warning(
            "the database does not answer yet (%s); waiting up to %.0f s",
            " ".join(str(exc).split()), reconnect_timeout)

    def probe() -> None:
        psycopg.connect(found.conninfo, connect_timeout=10).close()

    waited = wait_for_database(probe, reconnect_timeout)
    if waited is None:
        raise click.ClickException(
            f"the database {found.describe()} did not answer within {reconnect_timeout:.0f} s (--reconnect-timeout)")
    if waited is _STOPPED:
        return None
    return app_mod.worker_connector(found.conninfo, concurrency=concurrency)


def server_away(exc: BaseException) -> bool:
    """Whether a failed connection is the server being away (refused, no socket, shutting down
    or starting up, out of connections), not a refusal that waiting cannot cure (SQLSTATE 28:
    authentication; 3D000: no such database)."""
    state = getattr(exc, "sqlstate", None)
    return state is None or state[:2] in ("08", "53", "57")


def _run(connector: db.Connector, where: str, concurrency: int, graceful_timeout: float, one_shot: bool,
         no_listen: bool, metrics_port: int | None, metrics_host: str, reconnect_timeout: float) -> None:
    from loyverse_sync import apicalls, metrics
    from loyverse_sync.worker import app as app_mod

    app = app_mod.build_app(connector, max_pool_size=max(4, concurrency + 3))
    if metrics_port:
        metrics.serve_metrics(connector, metrics_port, metrics_host)
        logging.getLogger("loyverse_sync").info("metrics on http://%s:%s/metrics", metrics_host, metrics_port)
    logging.getLogger("loyverse_sync").info("worker starting on %s", where)
    failure = _SideTaskFailure()
    logging.getLogger("procrastinate.worker").addHandler(failure)
    # API-call records a drain could not write while the database was away are retried from here
    flushing = apicalls.keep_flushing_unsent(connector)
    try:
        _supervise(app, connector, concurrency, failure, graceful_timeout, one_shot, no_listen, reconnect_timeout)
    finally:
        flushing.set()


def _supervise(app: Any, connector: db.Connector, concurrency: int, failure: _SideTaskFailure,
               graceful_timeout: float, one_shot: bool, no_listen: bool, reconnect_timeout: float) -> None:
    """Run the worker; after procrastinate stopped on its own, wait for the database and run it again."""
    from loyverse_sync import apicalls
    from loyverse_sync.worker import tasks

    log = logging.getLogger("loyverse_sync")
    while True:
        failure.reason = None
        try:
            run(app, concurrency,
                queues=["price_sync"],
                shutdown_graceful_timeout=graceful_timeout,
                wait=not one_shot,
                listen_notify=not no_listen,
                delete_jobs="successful",
                update_heartbeat_interval=tasks.heartbeat_seconds(),
                stalled_worker_timeout=tasks.stalled_after_seconds(),
            )
        except Exception as exc:
            # Which of procrastinate's connections meets a restart first depends on timing: a
            # side task (LISTEN, heartbeat) stops the worker cleanly, but the fetch loop or the
            # start (registering the worker) raises out of run_worker. Both are the same event.
            if one_shot or not lost_database(exc):
                raise
            failure.reason = f"lost the database ({type(exc).__name__}: {exc})"
        if failure.reason is None:
            return  # a signal, or --one-shot caught up
        # procrastinate stops cleanly when a side task (LISTEN, heartbeat) loses the database,
        # e.g. during a restart. Wait for it and start again: jobs that were running failed and
        # are retried, their queue rows come back when their lease ends. Only if it stays away
        # do we exit non-zero, for systemd (Restart=on-failure) or compose to take over.
        if one_shot:
            raise click.ClickException(f"worker stopped: {failure.reason}")
        log.warning("worker stopped: %s; waiting up to %.0f s for the database", failure.reason, reconnect_timeout)
        waited = wait_for_database(connector.probe, reconnect_timeout)
        if waited is None:
            raise click.ClickException(
                f"worker stopped: {failure.reason}; the database did not come back within "
                f"{reconnect_timeout:.0f} s (--reconnect-timeout)")
        if waited is _STOPPED:
            return
        log.warning("the database is back after %.1f s: restarting the worker", waited)
        apicalls.flush_unsent(connector)


def lost_database(exc: BaseException) -> bool:
    """Whether ``exc`` (raised out of procrastinate's run loop) is the database going away:
    a connection-level psycopg error, as such or as the cause of procrastinate's
    ConnectorException (a pool that cannot connect in time, PoolTimeout, is one too)."""
    import psycopg

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, psycopg.OperationalError | psycopg.InterfaceError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class _Stopped(float):
    """wait_for_database's answer when SIGTERM/SIGINT came while it waited."""


_STOPPED = _Stopped(-1.0)


def wait_for_database(
    probe: Callable[[], Any],
    timeout: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float | None:
    """Seconds until ``probe`` (``connector.probe``) succeeded again (with backoff, 0.5 s up to
    5 s), or None after ``timeout`` seconds, or _STOPPED when SIGTERM/SIGINT arrived meanwhile."""
    stop = {"now": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["now"] = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        started = clock()
        delay = 0.5
        while not stop["now"]:
            try:
                probe()
                return clock() - started
            except Exception:  # anything the driver raises while the server is away
                pass
            if clock() - started >= timeout:
                return None
            sleep(min(delay, max(0.0, timeout - (clock() - started))))
            delay = min(delay * 2, 5.0)
        return _STOPPED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


#: Jobs per procrastinate fetch loop. A procrastinate worker starts its jobs one at a time: it
#: fetches one, starts it, fetches the next, all on the event loop thread, which competes for
#: the GIL with the drains already running. When one price update wakes 50 accounts, the
#: 50th job of a single loop started 2.2-3.1 s after the first (bench/many_accounts.py, one
#: process, --concurrency 51); with four loops fetching side by side, 0.4 s.
JOBS_PER_FETCH_LOOP = 16


def fetch_loops(concurrency: int) -> list[int]:
    """How ``concurrency`` jobs are split over fetch loops: at most JOBS_PER_FETCH_LOOP each,
    as even as possible (e.g. 51 -> [13, 13, 13, 12])."""
    loops = -(-concurrency // JOBS_PER_FETCH_LOOP)
    return [concurrency // loops + (1 if i < concurrency % loops else 0) for i in range(loops)]


def run(app: Any, concurrency: int, **options: Any) -> None:
    """Run the worker with ``concurrency`` jobs at once until SIGTERM/SIGINT (or, with
    ``wait=False``, until nothing is left).

    Up to JOBS_PER_FETCH_LOOP jobs this is procrastinate's own ``run_worker``. Above, one
    process runs several procrastinate workers on one event loop and one connection pool
    (each registers as a worker and has its own LISTEN connection and heartbeat); SIGTERM or
    SIGINT stops them all gracefully (cancelling ``run_worker_async`` is procrastinate's
    graceful stop: running jobs get ``shutdown_graceful_timeout``), and when one stops on
    its own (procrastinate stops a worker whose LISTEN or heartbeat task died) the others are
    stopped too, so the process exits and its supervisor restarts it.
    """
    sizes = fetch_loops(concurrency)
    if len(sizes) == 1:
        app.run_worker(concurrency=concurrency, **options)
        return
    asyncio.run(_run_loops(app, sizes, options))


async def _run_loops(app: Any, sizes: list[int], options: dict[str, Any]) -> None:
    async with app.open_async():
        loops = [
            asyncio.create_task(
                app.run_worker_async(concurrency=n, name=f"worker-{i}", install_signal_handlers=False, **options),
                name=f"procrastinate worker {i}",
            )
            for i, n in enumerate(sizes)
        ]
        loop = asyncio.get_running_loop()
        stopping = False

        def stop_all() -> None:
            # once: a second cancel() would interrupt the graceful shutdown the first started
            nonlocal stopping
            if not stopping:
                stopping = True
                for task in loops:
                    task.cancel()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop_all)
        try:
            if options.get("wait", True):
                await asyncio.wait(loops, return_when=asyncio.FIRST_COMPLETED)
                stop_all()  # one stopped on its own: stop the rest (no-op after a signal)
            results = await asyncio.gather(*loops, return_exceptions=True)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        # a loop that crashed (not one we cancelled) fails the command, as with one loop
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result


class _SideTaskFailure(logging.Handler):
    """Remembers why procrastinate stopped the worker on its own (not on a signal)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.reason: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "action", None) in ("side_task_failed", "side_task_monitor_failed"):
            self.reason = f"lost a background task ({getattr(record, 'task_name', '?')}: {getattr(record, 'exception', '')})"
