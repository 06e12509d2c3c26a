"""`loyverse-sync apikey ...`: keys of the HTTP API and console (create, list, revoke)."""

from __future__ import annotations

import click
import psycopg

from loyverse_sync import accounts, apikeys
from loyverse_sync.cli import _common


@click.group("apikey")
def apikey() -> None:
    """API keys of `loyverse-sync serve`: a restaurant key reaches one restaurant, an admin key all."""


def _sql_error(exc: psycopg.Error) -> _common.UsageProblem:
    return _common.UsageProblem((exc.diag.message_primary or str(exc)).splitlines()[0])


@apikey.command("create")
@click.option("--name", help="A name for the key (shown in the audit trail); default: from the scope.")
@click.option("--restaurant", "-r", metavar="R", help="The restaurant (id or name) the key may reach.")
@click.option("--admin", is_flag=True, help="A key that reaches every restaurant.")
def create(name: str | None, restaurant: str | None, admin: bool) -> None:
    """Make a key and print it once (only its SHA-256 is stored: keep it now)."""
    if bool(restaurant) == admin:
        raise click.UsageError("give exactly one of --restaurant R or --admin")
    with _common.connection() as conn:
        rid = None if admin else accounts.resolve_restaurant_id(conn, restaurant or "")
        if not name:
            label = "admin" if admin else next(
                r["name"] for r in accounts.list_restaurants(conn) if str(r["id"]) == rid)
            name = f"{label}-{apikeys.new_key()[4:10]}"
        try:
            key = apikeys.create(conn, name, restaurant_id=rid, admin=admin)
        except psycopg.Error as exc:
            raise _sql_error(exc) from None
    click.echo(f"API key {name!r} ({'admin' if admin else 'restaurant ' + str(rid)}) created. "
               "It is shown only now:", err=True)
    click.echo(key)


@apikey.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_(as_json: bool) -> None:
    """Keys with their scope and status (never the key)."""
    with _common.connection() as conn:
        rows = apikeys.list_keys(conn)
    if as_json:
        _common.echo_json(rows)
    else:
        _common.echo_table(rows, ["name", "scope", "restaurant_name", "status", "created_at", "created_by",
                                  "last_used_at", "revoked_at"], empty="(no API keys)")


@apikey.command("revoke")
@click.argument("name")
def revoke(name: str) -> None:
    """Revoke a key by name: it stops working at once (console sessions included)."""
    with _common.connection() as conn:
        try:
            changed = apikeys.revoke(conn, name)
        except psycopg.Error as exc:
            raise _sql_error(exc) from None
    click.echo(f"API key {name!r} revoked." if changed else f"API key {name!r} was already revoked.")
