"""`account subscribe|unsubscribe|webhooks` and `sync reconcile`: hearing Loyverse.

Attached to the `account` and `sync` groups (see the end of cli/account.py and cli/sync.py).
"""

from __future__ import annotations

import contextlib
import os
import urllib.parse
from typing import Any

import click
import psycopg

from loyverse_sync import accounts, crypto, queries
from loyverse_sync.cli import _common
from loyverse_sync.inbound import jobs, receiver
from loyverse_sync.loyverse import client as client_mod
from loyverse_sync.loyverse import errors as errors_mod

WEBHOOK_TYPES = ("items.update", "inventory_levels.update")


def _client(conn: psycopg.Connection[Any], account_ref: str) -> tuple[accounts.Account, client_mod.LoyverseClient]:
    """A client for the account, its governor on ``conn`` (the command's autocommit connection)."""
    account = accounts.get_account(conn, account_ref)
    return account, jobs.make_client(_common.connector(), account, connection=conn)


def _receiver_url(base: str, url_secret: str) -> str:
    return base.rstrip("/") + receiver.PATH.replace("{secret}", url_secret)


def _check_url(url: str, allow_http: bool) -> str:
    parts = urllib.parse.urlsplit(url)
    allowed = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in allowed or not parts.netloc:
        raise click.BadParameter(
            f"{url!r}: must be an {' or '.join(allowed)} URL with a host"
            + ("" if allow_http else " (Loyverse delivers over HTTPS only; --allow-http for local testing)"),
            param_hint="--url")
    if parts.query or parts.fragment:
        raise click.BadParameter(f"{url!r}: no query or fragment, only the server's base URL", param_hint="--url")
    return url


@click.command("subscribe")
@click.argument("account_ref", metavar="ACCOUNT")
@click.option("--url", required=True, help="The public base URL of `loyverse-sync serve` (https://host[:port]).")
@click.option("--type", "types", multiple=True, type=click.Choice(WEBHOOK_TYPES),
              help="Webhook types (default: both).")
@click.option("--client-secret-env", metavar="VAR",
              help="OAuth app's client secret from this environment variable: deliveries must then be signed.")
@click.option("--allow-http", is_flag=True, help="Accept an http:// URL (local testing with the emulator).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def subscribe(account_ref: str, url: str, types: tuple[str, ...], client_secret_env: str | None,
              allow_http: bool, as_json: bool) -> None:
    """Register the account's webhooks at URL (each type once, whatever is run twice)."""
    _check_url(url, allow_http)
    secret: str | None = None
    if client_secret_env:
        secret = (os.environ.get(client_secret_env) or "").strip()
        if not secret:
            raise click.BadParameter(f"the environment variable {client_secret_env} is not set or empty",
                                     param_hint="--client-secret-env")
    with _common.connection() as conn:
        account_id = accounts.resolve_account_id(conn, account_ref)
        row = queries.execute(conn, "inbound", "inbound_settings", {"account_id": account_id}).fetchone()
        assert row is not None
        hook_url = _receiver_url(url, row["url_secret"])
        ciphertext, key_id = (None, None)
        if secret is not None:
            ciphertext, key_id = crypto.encrypt(secret, crypto.load_keys())
        _account, client = _client(conn, str(account_id))
        done = []
        with client:
            existing = {(h.get("type"), h.get("url")): h for h in client.list_webhooks()}
            for hook_type in types or WEBHOOK_TYPES:
                hook = existing.get((hook_type, hook_url))
                created = hook is None
                if hook is None:
                    hook = client.create_webhook_safely({"url": hook_url, "type": hook_type, "status": "ENABLED"})
                elif hook.get("status") != "ENABLED":
                    hook = client.post_webhook({"id": hook["id"], "url": hook_url, "type": hook_type,
                                                "status": "ENABLED"})
                done.append({"type": hook_type, "id": hook.get("id"), "created": created})
        queries.execute(conn, "inbound", "set_subscription", {
            "account_id": account_id, "webhook_url": hook_url, "ciphertext": ciphertext, "key_id": key_id})
    if as_json:
        _common.echo_json({"account_id": account_id, "url": hook_url, "webhooks": done})
        return
    for d in done:
        click.echo(f"{d['type']}: {'subscribed' if d['created'] else 'already subscribed'} ({d['id']})")
    click.echo(f"deliveries go to {hook_url}" + (" (signed)" if secret or row["signed"] else ""))


@click.command("unsubscribe")
@click.argument("account_ref", metavar="ACCOUNT")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def unsubscribe(account_ref: str, as_json: bool) -> None:
    """Delete the account's webhooks that point at this installation (its URL secret)."""
    with _common.connection() as conn:
        account_id = accounts.resolve_account_id(conn, account_ref)
        row = queries.execute(conn, "inbound", "inbound_settings", {"account_id": account_id}).fetchone()
        assert row is not None
        mine = receiver.PATH.replace("{secret}", row["url_secret"])
        _account, client = _client(conn, str(account_id))
        deleted = []
        with client:
            for hook in client.list_webhooks():
                if str(hook.get("url", "")).endswith(mine):
                    with contextlib.suppress(errors_mod.NotFound):  # deleted meanwhile
                        client.delete_webhook(hook["id"])
                    deleted.append({"type": hook.get("type"), "id": hook.get("id")})
        queries.execute(conn, "inbound", "set_subscription", {
            "account_id": account_id, "webhook_url": None, "ciphertext": None, "key_id": None})
    if as_json:
        _common.echo_json({"account_id": account_id, "deleted": deleted})
    else:
        click.echo(f"{len(deleted)} webhook(s) deleted")


@click.command("webhooks")
@click.argument("account_ref", metavar="ACCOUNT")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def webhooks(account_ref: str, as_json: bool) -> None:
    """List the account's webhooks in Loyverse (ours are marked)."""
    with _common.connection() as conn:
        account_id = accounts.resolve_account_id(conn, account_ref)
        row = queries.execute(conn, "inbound", "inbound_settings", {"account_id": account_id}).fetchone()
        assert row is not None
        mine = receiver.PATH.replace("{secret}", row["url_secret"])
        _account, client = _client(conn, str(account_id))
        with client:
            hooks = client.list_webhooks()
    rows = [{"id": h.get("id"), "type": h.get("type"), "status": h.get("status"),
             "ours": str(h.get("url", "")).endswith(mine), "url": h.get("url")} for h in hooks]
    if as_json:
        _common.echo_json(rows)
        return
    _common.echo_table(rows, ["id", "type", "status", "ours", "url"], empty="no webhooks")


@click.command("reconcile")
@click.argument("restaurant")
@click.option("--repair", is_flag=True, help="Fix the drift in the restaurant's direction.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def reconcile(restaurant: str, repair: bool, as_json: bool) -> None:
    """Compare every mapped price and availability with Loyverse (drift: view loyverse.price_drift).

    Reads Loyverse in bulk (250 items a request). With --repair, TO_LOYVERSE and BIDIRECTIONAL
    restaurants push our prices through the queue; FROM_LOYVERSE ones take Loyverse's prices and
    availability. Exit code 1 when drift remains.
    """
    with _common.connection() as conn:
        restaurant_id = accounts.resolve_restaurant_id(conn, restaurant)
        result = jobs.reconcile(_common.connector(), restaurant_id, repair=repair)
        drift = queries.execute(conn, "inbound", "drift", {"restaurant_id": restaurant_id}).fetchall()
    unrepaired = [d for d in drift if d["repaired_at"] is None]
    if as_json:
        _common.echo_json({**result.as_dict(), "rows": drift})
    else:
        click.echo(f"{result.products} mapped products, {result.items} items read in {result.requests} "
                   f"request(s): {result.drift} drifted")
        if drift:
            _common.echo_table(drift, ["kind", "product_name", "our_price", "loyverse_price", "our_available",
                                       "loyverse_available", "repair"])
        if result.repair is not None:
            click.echo(f"repaired ({result.repair['direction']}): {result.repair['queued']} queued, "
                       f"{result.repair['pulled']} pulled, {result.repair['unrepaired']} left")
    if unrepaired:
        raise SystemExit(1)


@click.command("polling")
@click.argument("account_ref", metavar="ACCOUNT")
@click.option("--enable/--disable", "enabled", default=None, help="Poll Loyverse for changes (default: on).")
@click.option("--interval", type=_common.IntBetween(10, 86400), help="Seconds between polls (10-86400; default 300).")
@click.option("--overlap", type=_common.IntBetween(0, 86400),
              help="Seconds read again before the cursor on each poll (0-86400; default 120).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def polling(account_ref: str, enabled: bool | None, interval: int | None, overlap: int | None,
            as_json: bool) -> None:
    """Show or change how an account is polled (GET /items?updated_at_min=, the safety net under webhooks)."""
    with _common.connection() as conn:
        account_id = accounts.resolve_account_id(conn, account_ref)
        queries.execute(conn, "inbound", "inbound_settings", {"account_id": account_id}).fetchone()
        if enabled is not None or interval is not None or overlap is not None:
            queries.execute(conn, "inbound", "set_polling", {"account_id": account_id, "enabled": enabled,
                                                             "interval": interval, "overlap": overlap})
        row = queries.execute(conn, "inbound", "inbound_settings", {"account_id": account_id}).fetchone()
    assert row is not None
    shown = {k: row[k] for k in ("account_id", "poll_enabled", "poll_interval_seconds", "poll_overlap_seconds",
                                 "polled_until", "last_polled_at", "webhook_url", "signed",
                                 "loyverse_clock_offset_ms")}
    if as_json:
        _common.echo_json(shown)
        return
    for key, value in shown.items():
        click.echo(f"{key.ljust(24)}  {_common._cell(value)}")
