"""`loyverse-sync worker`: the procrastinate worker running the price sync."""

from __future__ import annotations

import logging

import click

from loyverse_sync.cli import _common


@click.command()
@click.option("--concurrency", "-c", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Jobs run at once (different accounts sync in parallel; one account runs one job).")
@click.option("--graceful-timeout", type=click.FloatRange(0), default=30.0, show_default=True,
              help="On SIGTERM, seconds to let running jobs finish before they are told to stop "
                   "(they then finish the item in flight and release the rest of the batch).")
@click.option("--one-shot", is_flag=True, help="Run what is queued, then exit.")
@click.option("--no-listen", is_flag=True, help="Poll only (no LISTEN/NOTIFY).")
@click.option("--metrics-port", type=click.IntRange(1, 65535), help="Serve Prometheus /metrics on this port.")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Address for --metrics-port.")
def worker(concurrency: int, graceful_timeout: float, one_shot: bool, no_listen: bool,
           metrics_port: int | None, metrics_host: str) -> None:
    """Run the price-sync worker (procrastinate) until SIGTERM/SIGINT.

    Runs the sync_loyverse_prices jobs that price changes queue, and the periodic sweep,
    notification and retention tasks. Configure with DATABASE_URL (or PG*),
    LOYVERSE_SYNC_KEY, and optionally LOYVERSE_SYNC_SMTP_* (see systemd/loyverse-sync.env.example).
    """
    from loyverse_sync.worker import app as app_mod
    from loyverse_sync.worker import tasks

    found = _common.database()
    app = app_mod.build_app(found.conninfo, max_pool_size=max(4, concurrency + 3))
    if metrics_port:
        from loyverse_sync import ops

        ops.serve_metrics(found.conninfo, metrics_port, metrics_host)
        logging.getLogger("loyverse_sync").info("metrics on http://%s:%s/metrics", metrics_host, metrics_port)
    logging.getLogger("loyverse_sync").info("worker starting on %s", found.describe())
    failure = _SideTaskFailure()
    logging.getLogger("procrastinate.worker").addHandler(failure)
    app.run_worker(
        queues=["price_sync"],
        concurrency=concurrency,
        shutdown_graceful_timeout=graceful_timeout,
        wait=not one_shot,
        listen_notify=not no_listen,
        delete_jobs="successful",
        update_heartbeat_interval=tasks.heartbeat_seconds(),
        stalled_worker_timeout=tasks.stalled_after_seconds(),
    )
    if failure.reason is not None:
        # procrastinate stops cleanly when a side task (LISTEN, heartbeat) dies, e.g. when the
        # database restarts; exit non-zero so systemd (Restart=on-failure) or compose restarts us.
        raise click.ClickException(f"worker stopped: {failure.reason}; restart it (systemd and compose do)")


class _SideTaskFailure(logging.Handler):
    """Remembers why procrastinate stopped the worker on its own (not on a signal)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.reason: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "action", None) in ("side_task_failed", "side_task_monitor_failed"):
            self.reason = f"lost a background task ({getattr(record, 'task_name', '?')}: {getattr(record, 'exception', '')})"
