"""`loyverse-sync db ...`: migrate, status, rollback."""

from __future__ import annotations

import click

from loyverse_sync import config
from loyverse_sync import db as db_module
from loyverse_sync.cli import _common


@click.group("db")
def db() -> None:
    """Create and upgrade the database schema (ours and procrastinate's)."""


@db.command()
def migrate() -> None:
    """Apply every pending migration (idempotent: a second run does nothing)."""
    found = _common.database()
    applied = db_module.migrate(found.conninfo)
    if applied:
        for name in applied:
            click.echo(f"applied {name}")
        click.echo(f"{len(applied)} migration(s) applied to {found.describe()}")
    else:
        click.echo(f"nothing to do: {found.describe()} is up to date")


@db.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """List migrations as applied or pending."""
    found = _common.database()
    rows = [
        {"migration": m.id, "status": "applied" if m.applied else "pending"}
        for m in db_module.status(found.conninfo)
    ]
    pending = sum(r["status"] == "pending" for r in rows)
    if as_json:
        _common.echo_json(
            {
                "database": config.describe_conninfo(found.conninfo),
                "source": found.source,
                "procrastinate": db_module.procrastinate_version(),
                "migrations": rows,
                "pending": pending,
            }
        )
        return
    click.echo(f"database: {found.describe()}")
    click.echo(f"procrastinate: {db_module.procrastinate_version()}")
    _common.echo_table(rows)
    click.echo(
        "up to date" if pending == 0 else f"{pending} pending: run `loyverse-sync db migrate`"
    )


@db.command()
@click.option(
    "--to", "to", required=True, help="Keep migrations up to this one (id or number, e.g. 1)."
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def rollback(to: str, yes: bool) -> None:
    """Roll back the migrations applied after --to (each has a .rollback.sql)."""
    found = _common.database()
    if not yes:
        click.confirm(f"Roll back every migration after {to} on {found.describe()}?", abort=True)
    try:
        undone = db_module.rollback(found.conninfo, to)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--to") from None
    for name in undone:
        click.echo(f"rolled back {name}")
    click.echo(f"{len(undone)} migration(s) rolled back")
