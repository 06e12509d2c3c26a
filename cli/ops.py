"""`loyverse-sync metrics` and `loyverse-sync health`."""

from __future__ import annotations

import sys
import time

import click
import psycopg

from loyverse_sync import health as health_mod
from loyverse_sync import metrics as metrics_mod
from loyverse_sync.cli import _common


@click.command("metrics")
@click.option(
    "--serve",
    "port",
    type=_common.PORT,
    help="Serve /metrics on this port instead of printing once.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on.")
def metrics(port: int | None, host: str) -> None:
    """Print (or serve) Prometheus metrics read from the database's views."""
    connector = _common.connector()  # connects now: one clear error rather than at the first scrape
    if port is None:
        click.echo(metrics_mod.render_metrics(connector), nl=False)
        return
    metrics_mod.serve_metrics(connector, port, host)
    click.echo(f"serving Prometheus metrics on http://{host}:{port}/metrics (Ctrl-C to stop)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


@click.command("health")
@click.option(
    "--heartbeat",
    "heartbeat_seconds",
    type=_common.seconds(low=1),
    default=60,
    show_default=True,
    help="Seconds since the last worker heartbeat before the worker counts as down.",
)
@click.option(
    "--token-ttl",
    type=_common.seconds(),
    default=300,
    show_default=True,
    help="Seconds a token check is cached.",
)
@click.option(
    "--no-token-check", is_flag=True, help="Skip checking each account's token with Loyverse."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def health(heartbeat_seconds: float, token_ttl: float, no_token_check: bool, as_json: bool) -> None:
    """Exit 0 when healthy, 1 when not, with a reason per check (for systemd and load balancers)."""
    try:
        connector = _common.connector()
    except psycopg.OperationalError as exc:  # the connector's probe: the database does not answer
        checks = [health_mod.unreachable(exc)]
    else:
        checks = health_mod.run_checks(
            connector,
            heartbeat_seconds=heartbeat_seconds,
            token_ttl_seconds=token_ttl,
            check_tokens=not no_token_check,
        )
    healthy = all(c.ok for c in checks)
    if as_json:
        _common.echo_json({"healthy": healthy, "checks": [c.__dict__ for c in checks]})
    else:
        for c in checks:
            click.echo(f"{'ok  ' if c.ok else 'FAIL'}  {c.name}: {c.detail}")
        click.echo("healthy" if healthy else "UNHEALTHY")
    sys.exit(0 if healthy else 1)
