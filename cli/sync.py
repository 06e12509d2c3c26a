"""`loyverse-sync sync ...`: price sync status, triggers, retries, settings, pause/resume, conflicts.

Every command is one call of the SQL API (loyverse.trigger_price_sync, retry_price_sync,
update_price_sync_settings, ...) or one view; errors raised there name the field and are
shown as one line with exit code 2.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from collections.abc import Callable
from typing import Any

import click
import psycopg

from loyverse_sync import accounts, limits, queries
from loyverse_sync.cli import _common

# SQLSTATE classes of the SQL API's validation errors: data (22), integrity (23),
# prerequisite state (55), no data found (P0002).
_BAD_INPUT_CLASSES = ("22", "23", "55")


def _call(conn: psycopg.Connection[Any], name: str, params: dict[str, Any]) -> Any:
    try:
        row = queries.execute(conn, "pricesync", name, params).fetchone()
    except psycopg.Error as exc:
        state = exc.sqlstate or ""
        if state[:2] in _BAD_INPUT_CLASSES or state == "P0002":
            message = exc.diag.message_primary or str(exc)
            raise _common.UsageProblem(message.splitlines()[0]) from None
        raise
    return None if row is None else next(iter(row.values()))


def _plain(value: Any) -> Any:
    """Intervals as seconds (JSON has no duration type); the rest as _common renders it."""
    if isinstance(value, datetime.timedelta):
        return round(value.total_seconds(), 3)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _restaurant(conn: psycopg.Connection[Any], ref: str | None) -> str | None:
    return None if ref is None else accounts.resolve_restaurant_id(conn, ref)


def _product(conn: psycopg.Connection[Any], restaurant_id: str | None, ref: str | None) -> str | None:
    if ref is None:
        return None
    if restaurant_id is None:
        raise click.UsageError("--product needs --restaurant")
    rows = queries.execute(conn, "pricesync", "resolve_product", {"restaurant_id": restaurant_id, "ref": ref}).fetchall()
    if not rows:
        raise _common.UsageProblem(f"no product {ref!r} in this restaurant (give its id, SKU or name)")
    if len(rows) > 1 and str(rows[0]["id"]) != ref:
        raise _common.UsageProblem(f"several products match {ref!r}: give the id or SKU")
    return str(rows[0]["id"])


restaurant_option = click.option("--restaurant", "-r", "restaurant", metavar="R",
                                 help="Restaurant id or name.")
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.group()
def sync() -> None:
    """Price sync to Loyverse: status, triggers, retries, settings, pause/resume, conflicts."""


@sync.command()
@restaurant_option
@json_option
def status(restaurant: str | None, as_json: bool) -> None:
    """Queue and success figures per restaurant (the price_sync_status view)."""
    with _common.connection() as conn:
        rid = _restaurant(conn, restaurant)
        rows = queries.execute(conn, "pricesync", "status", {"restaurant_id": rid}).fetchall()
    if as_json:
        _common.echo_json(_plain(rows))
        return
    # the dashboard's units: ages as 3m05s, times local, rates as percentages (--json: raw)
    _common.echo_table([{
        "restaurant": r["restaurant_name"],
        "sync": "PAUSED" if r["paused"] else (r["sync_frequency"] if r["enabled"] else "off"),
        "pending": r["pending"], "due": r["due"], "in flight": r["processing"], "failed": r["failed"],
        "dead": r["dead"], "conflicts": r["conflicts"], "held": r["held"],
        "oldest": _common.age(r["oldest_pending_age"]),
        "last ok": _local(r["last_success_at"]), "synced 1h": r["synced_last_hour"],
        "ok 1h": _common.percent(r["success_rate_last_hour"]),
    } for r in rows], empty="(no restaurant is linked to Loyverse)")


def _local(value: datetime.datetime | None) -> str:
    return "-" if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


@sync.command()
@restaurant_option
@click.option("--full", is_flag=True, help="Also queue every mapped product not known to be in sync.")
@json_option
def trigger(restaurant: str | None, full: bool, as_json: bool) -> None:
    """Sync a restaurant now (its pending changes jump the queue)."""
    if restaurant is None:
        raise click.UsageError("--restaurant is required")
    with _common.connection() as conn:
        rid = _restaurant(conn, restaurant)
        due = _call(conn, "trigger", {"restaurant_id": rid, "full": full})
    if as_json:
        _common.echo_json({"restaurant_id": rid, "due": due})
    else:
        click.echo(f"{due} change(s) due now; a worker is on it.")


@sync.command()
@restaurant_option
@click.option("--limit", type=_common.IntBetween(1, limits.PAGE_SIZE_MAX), default=20, show_default=True)
@click.option("--page", type=_common.IntBetween(1, limits.PAGE_MAX), default=1, show_default=True)
@json_option
def history(restaurant: str | None, limit: int, page: int, as_json: bool) -> None:
    """Sync batches, manual triggers and retries, newest first.

    With --restaurant, a batch shared with other restaurants of the account counts that
    restaurant's items only (requests stay the batch's: one request serves every store);
    `*` marks a batch whose rows were pruned, shown whole.
    """
    with _common.connection() as conn:
        rid = _restaurant(conn, restaurant)
        rows = queries.execute(conn, "pricesync", "history",
                               {"restaurant_id": rid, "limit": limit, "offset": (page - 1) * limit}).fetchall()
    if as_json:
        _common.echo_json(_plain(rows))
        return
    _common.echo_table([{
        "log": r["log_id"], "started": _local(r["started_at"]), "type": r["sync_type"], "status": r["status"],
        "items": f"{r['items_total']}{'*' if r.get('whole_batch') else ''}", "ok": r["items_succeeded"],
        "failed": r["items_failed"], "skipped": r["items_skipped"], "requests": r["requests_made"],
        "took": _common.duration(r["duration"]),
    } for r in rows])


@sync.command()
@restaurant_option
@click.option("--product", "-p", metavar="P", help="One product (id, SKU or name); needs --restaurant.")
@click.option("--failed", "which", flag_value="failed", help="Only failed changes.")
@click.option("--dead", "which", flag_value="dead", help="Only dead-lettered changes.")
@json_option
def retry(restaurant: str | None, product: str | None, which: str | None, as_json: bool) -> None:
    """Retry failed and dead-lettered changes (all, one restaurant, or one product)."""
    with _common.connection() as conn:
        rid = _restaurant(conn, restaurant)
        pid = _product(conn, rid, product)
        queued = _call(conn, "retry", {"restaurant_id": rid, "product_id": pid, "status": which})
    if as_json:
        _common.echo_json({"queued": queued})
    else:
        click.echo(f"{queued} change(s) queued again.")


@sync.group()
def settings() -> None:
    """Show or change a restaurant's price-sync settings."""


@settings.command("show")
@restaurant_option
@json_option
def settings_show(restaurant: str | None, as_json: bool) -> None:
    """Show the settings."""
    if restaurant is None:
        raise click.UsageError("--restaurant is required")
    with _common.connection() as conn:
        values = _call(conn, "settings", {"restaurant_id": _restaurant(conn, restaurant)})
    _print_settings(values, as_json)


def _parse_assignment(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise click.BadParameter(f"{text!r}: expected key=value", param_hint="SETTINGS")
    if key.endswith("_ids"):
        return key, [part.strip() for part in raw.split(",") if part.strip()]
    # `null` (or nothing) clears a value; `NONE` is a value (price_rounding_rule=NONE)
    if raw.strip().lower() in ("null", ""):
        return key, None

    def finite_only(constant: str) -> Any:
        raise click.BadParameter(f"{key}={raw}: not a finite number", param_hint="SETTINGS")

    try:
        value = json.loads(raw, parse_constant=finite_only)
    except ValueError:
        return key, raw
    if isinstance(value, float) and not math.isfinite(value):  # 1e999 parses as infinity
        finite_only(raw)
    return key, value if not isinstance(value, dict | list) else raw


def _update_settings(conn: psycopg.Connection[Any], restaurant_id: str | None, changes: dict[str, Any]) -> Any:
    """update_price_sync_settings; a refused value is one line naming the setting, the value
    given and what is allowed (read from the settings table's type and CHECK, so the list
    is the database's own)."""
    try:
        row = queries.execute(conn, "pricesync", "update_settings",
                              {"restaurant_id": restaurant_id, "changes": json.dumps(changes)}).fetchone()
    except psycopg.Error as exc:
        state = exc.sqlstate or ""
        if state[:2] not in _BAD_INPUT_CLASSES:
            raise
        message = (exc.diag.message_primary or str(exc)).splitlines()[0]
        column = exc.diag.column_name
        if column in changes:
            allowed = _allowed_setting(conn, column, exc.diag.constraint_name)
            if allowed is None:  # a check over several settings: its name says what is wrong,
                # the database's message what would do
                tail = message.partition("; allowed: ")[2]
                message = f"{column}: {str(exc.diag.constraint_name).replace('_', ' ')}" + (
                    f" (allowed: {tail})" if tail else "")
            elif allowed:
                given = "null" if changes[column] is None else json.dumps(changes[column])
                message = f"{column}: invalid value {given} (allowed: {allowed})"
        raise _common.UsageProblem(message) from None
    return None if row is None else next(iter(row.values()))


_TYPE_WORDS = {"boolean": "true or false", "integer": "an integer", "double precision": "a number",
               "uuid[]": "comma-separated category ids of this restaurant"}
#: where the CHECK does not read well (a regular expression)
_SETTING_WORDS = {"notification_email": "an e-mail address, or null"}


def _allowed_setting(conn: psycopg.Connection[Any], column: str, constraint: str | None) -> str | None:
    """What the settings table allows in ``column``; None when the refusing check spans
    several settings."""
    if column in _SETTING_WORDS:
        return _SETTING_WORDS[column]
    row = queries.execute(conn, "pricesync", "setting_allowed", {"column": column}).fetchone()
    if row is None or row["type"] is None:
        return ""
    checks = [c for c in row["checks"] or [] if constraint in (None, c["name"])]
    if constraint is not None and not checks:
        return None
    parts = [] if row["type"] == "text" else [_TYPE_WORDS.get(row["type"], row["type"])]
    for check in checks:
        text = check["definition"]
        literals = re.findall(r"'((?:[^']|'')*)'::text", text)
        if literals and " ANY " in text:
            parts.append("one of " + ", ".join(v.replace("''", "'") for v in literals))
        else:
            # '-100'::integer -> -100, 0::double precision -> 0
            text = re.sub(r"::(double precision|integer|numeric)", "", re.sub(r"'(-?[0-9.]+)'::", r"\1::", text))
            parts.append(re.sub(r"^CHECK |[()]", "", text).replace(" AND ", " and "))
    return "; ".join(parts)


@settings.command("set")
@restaurant_option
@click.argument("assignments", nargs=-1, required=True, metavar="KEY=VALUE...")
@json_option
def settings_set(restaurant: str | None, assignments: tuple[str, ...], as_json: bool) -> None:
    """Change settings, e.g. `sync settings set -r Nord sync_frequency=BATCH_5MIN price_rounding_rule=UP`.

    Keys: enabled, sync_direction (TO_LOYVERSE|FROM_LOYVERSE|BIDIRECTIONAL), sync_frequency
    (REALTIME|BATCH_5MIN|BATCH_HOURLY|MANUAL), price_rounding_rule (NONE|NEAREST_0.05|
    NEAREST_0.10|UP|DOWN), include_category_ids / exclude_category_ids (comma-separated),
    notify_on_error, notification_email, max_attempts, backoff_base_seconds / backoff_cap_seconds
    (a failed write's wait before its retry), priority, prices_include_tax, alert_*,
    conflict_policy (hold|ours|theirs|latest), catalog_changes (report|apply), sync_stock,
    hold_change_percent, hold_change_amount, hold_below_price (guardrails; null = off).
    """
    if restaurant is None:
        raise click.UsageError("--restaurant is required")
    changes = dict(_parse_assignment(a) for a in assignments)
    with _common.connection() as conn:
        restaurant_id = _restaurant(conn, restaurant)
        before = _pending(conn, restaurant_id)
        values = _update_settings(conn, restaurant_id, changes)
        after = _pending(conn, restaurant_id)
    _print_settings(values, as_json)
    if not as_json and after != before:
        # enabling, widening the filters or a new rounding rule queues what Loyverse may lack;
        # disabling or narrowing cancels pending changes: say so, the settings alone do not
        click.echo(f"pending price changes: {before} -> {after}")


def _pending(conn: psycopg.Connection[Any], restaurant_id: str | None) -> int:
    row = queries.execute(conn, "pricesync", "status", {"restaurant_id": restaurant_id}).fetchone()
    return int(row["pending"]) if row else 0


def _print_settings(values: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _common.echo_json(values)
        return
    width = max(len(k) for k in values)
    for key in sorted(values):
        click.echo(f"{key.ljust(width)}  {_common._cell(values[key])}")


def _toggle(name: str, verb: str, done: str, already: str) -> Callable[..., None]:
    @restaurant_option
    @json_option
    def command(restaurant: str | None, as_json: bool) -> None:
        if restaurant is None:
            raise click.UsageError("--restaurant is required")
        with _common.connection() as conn:
            changed = _call(conn, name, {"restaurant_id": _restaurant(conn, restaurant)})
        if as_json:
            _common.echo_json({"changed": changed})
        else:
            click.echo(done if changed else already)

    command.__doc__ = verb
    return command


sync.command("pause")(_toggle("pause", "Pause a restaurant's price sync (changes are queued, none is sent).",
                              "Paused: changes are queued, none is sent.", "Already paused."))
sync.command("resume")(_toggle("resume", "Resume a paused restaurant; what is due is sent at once.",
                               "Resumed.", "Was not paused."))


@sync.command()
@restaurant_option
@click.option("--product", "-p", metavar="P", help="One product (id, SKU or name).")
@click.option("--all", "all_", is_flag=True, help="Every held conflict of the restaurant.")
@click.option("--keep", type=click.Choice(["ours", "theirs"]), required=True,
              help="ours: push our price over Loyverse's; theirs: take Loyverse's price.")
@json_option
def resolve(restaurant: str | None, product: str | None, all_: bool, keep: str, as_json: bool) -> None:
    """Decide conflicts held for BIDIRECTIONAL restaurants (prices edited in Loyverse)."""
    if restaurant is None:
        raise click.UsageError("--restaurant is required")
    if bool(product) == all_:
        raise click.UsageError("give exactly one of --product P or --all")
    with _common.connection() as conn:
        rid = _restaurant(conn, restaurant)
        pid = _product(conn, rid, product)
        resolved = _call(conn, "resolve", {"restaurant_id": rid, "keep": keep, "product_id": pid})
    if as_json:
        _common.echo_json({"resolved": resolved})
    else:
        click.echo(f"{resolved} conflict(s) resolved: kept {keep}.")


def _held_command(verb: str, query: str, summary: str) -> Callable[..., None]:
    def command(restaurant: str | None, product: str | None, all_: bool, as_json: bool) -> None:
        if restaurant is None:
            raise click.UsageError("--restaurant is required")
        if bool(product) == all_:
            raise click.UsageError("give exactly one of --product P or --all")
        with _common.connection() as conn:
            rid = _restaurant(conn, restaurant)
            pid = _product(conn, rid, product)
            count = _call(conn, query, {"restaurant_id": rid, "product_id": pid})
        if as_json:
            _common.echo_json({verb: count})
        else:
            click.echo(summary.format(count))

    return command


def _held_options(command: Callable[..., None]) -> Callable[..., None]:
    for decorator in reversed([
        restaurant_option,
        click.option("--product", "-p", metavar="P", help="One product (id, SKU or name)."),
        click.option("--all", "all_", is_flag=True, help="Every held change of the restaurant."),
        json_option,
    ]):
        command = decorator(command)
    return command


@sync.command()
@restaurant_option
@json_option
def held(restaurant: str | None, as_json: bool) -> None:
    """Changes held by the guardrails (hold_change_percent, hold_change_amount, hold_below_price)."""
    with _common.connection() as conn:
        rid = _restaurant(conn, restaurant)
        rows = queries.execute(conn, "pricesync", "held", {"restaurant_id": rid}).fetchall()
    if as_json:
        _common.echo_json(_plain(rows))
        return
    _common.echo_table(rows, ["restaurant_name", "product_name", "loyverse_price", "price_to_send", "reason_code",
                              "held_at"], empty="(no change is held)")


sync.command(name="approve", help="Send held changes as they are (past the guardrails); a held change "
             "with a newer change queued is dropped instead.")(
    _held_options(_held_command("approved", "approve", "{} held change(s) approved: sending.")))
sync.command(name="reject", help="Refuse held changes: never sent. Correct the product's price to send "
             "another.")(
    _held_options(_held_command("rejected", "reject", "{} held change(s) rejected.")))


@sync.command(name="make-fixed")
@restaurant_option
@click.option("--product", "-p", metavar="P", required=True, help="The product (id, SKU or name).")
@json_option
def make_fixed(restaurant: str | None, product: str, as_json: bool) -> None:
    """Turn a VARIABLE Loyverse price (entered at the counter) into our fixed price, on purpose.

    Set the product's price first; this queues it, approved, as the store's FIXED price.
    """
    if restaurant is None:
        raise click.UsageError("--restaurant is required")
    with _common.connection() as conn:
        rid = _restaurant(conn, restaurant)
        pid = _product(conn, rid, product)
        queued = _call(conn, "make_fixed", {"restaurant_id": rid, "product_id": pid})
    if as_json:
        _common.echo_json({"queued": queued})
    else:
        click.echo(f"Price made fixed; {queued} change(s) queued." if queued
                   else "Price made fixed; it is sent when price sync to Loyverse is on.")


# Reconciliation with Loyverse (cli/inbound.py).
from loyverse_sync.cli import inbound as _inbound  # noqa: E402

sync.add_command(_inbound.reconcile)
