"""`loyverse-sync import ...`: fetch, preview, run, status, resume, undo, list, wizard."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any

import click

from loyverse_sync import accounts, db, limits
from loyverse_sync.importer import runs, snapshot
from loyverse_sync.loyverse import errors as lv_errors

from . import _common


class _Failed(click.ClickException):
    """Failed work: exit code 1."""

    exit_code = 1


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """Expected failures as one line: bad input exit 2, failed work exit 1."""
    try:
        yield
    except runs.ImportProblem as exc:
        for row in exc.rows[:50]:
            click.echo("  " + _describe_row(row), err=True)
        if len(exc.rows) > 50:
            click.echo(f"  ... and {len(exc.rows) - 50} more", err=True)
        raise (_common.UsageProblem if exc.usage else _Failed)(str(exc)) from None
    except snapshot.NotLinked as exc:
        raise _common.UsageProblem(str(exc)) from None
    except lv_errors.LoyverseError as exc:
        raise _Failed(f"Loyverse: {exc}") from None
    except _common.EXPECTED_ERRORS as exc:
        raise _common.usage_error(exc) from None


def _describe_row(row: dict[str, Any]) -> str:
    if "variant_id" in row:
        match = (f" {row.get('match_rule')} match with \"{_short(row.get('matched_name'))}\""
                 if row.get("match_rule") else "")
        return f"{row.get('variant_id')}  {_short(row.get('name'))}{match}"
    return f"{row.get('table')} {row.get('key')}: {_short(row.get('reason'))}" + (
        f" ({_short(row['name'])})" if row.get("name") else ""
    )


def _short(text: Any, width: int = limits.DISPLAY_TEXT_MAX) -> str:
    """Names as shown (Loyverse sends names of any length; --json shows them whole)."""
    return _common.shorten(text, width)


def _restaurant(conn: Any, ref: str) -> str:
    try:
        return accounts.resolve_restaurant_id(conn, ref)
    except accounts.NotFound as exc:
        raise _common.UsageProblem(str(exc)) from None


def _snapshot(connector: db.Connector, restaurant_id: str, *, max_age: float, refresh: bool, with_inventory: bool) -> snapshot.Snapshot:
    bar_cm = click.progressbar(length=0, label="Fetching items", file=sys.stderr, show_pos=True)
    with bar_cm as bar:

        def on_page(_kind: str, n: int) -> None:
            bar.length = n
            bar.update(n - bar.pos)

        snap = snapshot.get_or_fetch(
            connector, restaurant_id, max_age=max_age, refresh=refresh, with_inventory=with_inventory, on_page=on_page
        )
    if snap.reused:
        click.echo(f"Using snapshot {snap.id} fetched {snap.fetched_at:%Y-%m-%d %H:%M:%S} (use --refresh to fetch again).", err=True)
    else:
        click.echo(
            f"Fetched snapshot {snap.id}: {snap.counts.get('item', 0)} items, "
            f"{snap.counts.get('category', 0)} categories, {snap.counts.get('modifier', 0)} modifiers "
            f"in {snap.requests_made} requests, {snap.fetch_seconds or 0:.1f} s.",
            err=True,
        )
    return snap


def _options(
    conflict: str,
    decisions: str | None,
    maps: tuple[str, ...],
    categories: tuple[str, ...],
    items: tuple[str, ...],
    exclude: tuple[str, ...],
    unknown_category: str,
    missing: str,
    batch_size: int | None,
    with_inventory: bool,
    connector: db.Connector,
) -> runs.Options:
    try:
        mapping = runs.parse_map(list(maps))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--map") from None
    problems = runs.field_map_problems(connector, mapping)
    if problems:
        raise click.BadParameter("; ".join(problems), param_hint="--map")
    chosen: dict[str, str] = {}
    if decisions:
        try:
            chosen = runs.parse_decisions(decisions)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--decisions") from None
    elif conflict == "manual":
        raise click.BadParameter("--conflict manual needs --decisions FILE", param_hint="--decisions")
    return runs.Options(
        conflict=conflict,
        decisions=chosen,
        map=mapping,
        categories=list(categories),
        items=list(items),
        exclude=list(exclude),
        unknown_category=unknown_category,
        missing=missing,
        batch_size=batch_size,
        with_inventory=with_inventory,
    )


def _selection_options(f: Any) -> Any:
    decorators = [
        click.option("--restaurant", "-r", required=True, help="Restaurant id or name."),
        click.option("--conflict", type=click.Choice(runs.CONFLICT_CHOICES), default="skip", show_default=True,
                     help="What to do with a variant that matches an unmapped product by SKU or name."),
        click.option("--decisions", type=click.Path(dir_okay=False), help="CSV or JSON: variant id -> skip|update|duplicate."),
        click.option("--map", "maps", multiple=True, metavar="LOYVERSE_FIELD=COLUMN", help="Import a Loyverse field into a products column."),
        click.option("--category", "categories", multiple=True, help="Only these categories (id or name); repeatable."),
        click.option("--item", "items", multiple=True, help="Only these items (id or name); repeatable."),
        click.option("--exclude", multiple=True, help="Leave out these items or categories (id or name)."),
        click.option("--unknown-category", type=click.Choice(runs.UNKNOWN_CATEGORY_CHOICES), default="fallback", show_default=True,
                     help="Items in a category Loyverse did not list: under \"Uncategorised\", or rejected."),
        click.option("--missing", type=click.Choice(runs.MISSING_CHOICES), default="deactivate", show_default=True,
                     help="Mapped products whose Loyverse variant was deleted."),
        click.option("--with-inventory", is_flag=True, help="Also fetch stock levels."),
        click.option("--max-age", type=_common.seconds(limits.MAX_AGE_SECONDS_MAX), default=600.0, show_default=True,
                     help="Reuse a snapshot younger than this many seconds."),
        click.option("--refresh", is_flag=True, help="Fetch again even if a recent snapshot exists."),
    ]
    for d in reversed(decorators):
        f = d(f)
    return f


import_group = click.Group("import", help="Import the menu from Loyverse: fetch, preview, run, resume, undo.")


@import_group.command("fetch")
@click.option("--restaurant", "-r", required=True, help="Restaurant id or name.")
@click.option("--with-inventory", is_flag=True, help="Also fetch stock levels.")
def fetch_cmd(restaurant: str, with_inventory: bool) -> None:
    """Fetch the whole menu of the restaurant's Loyverse account into a new snapshot."""
    with _errors(), _common.connection() as conn:
        restaurant_id = _restaurant(conn, restaurant)
    with _errors():
        _snapshot(_connector(), restaurant_id, max_age=0, refresh=True, with_inventory=with_inventory)


def _connector() -> db.Connector:
    return _common.connector()


def _print_tree(report: dict[str, Any]) -> None:
    current_cat: object = object()
    current_item: object = object()
    for row in report["rows"]:
        if row["category"] != current_cat:
            current_cat = row["category"]
            click.echo(f"{_short(current_cat) or '(no category)'}")
            current_item = object()
        if row["item_id"] != current_item:
            current_item = row["item_id"]
            click.echo(f"  {_short(row['item_name'])}")
        price = "-" if row["price"] is None else str(row["price"])
        match = f" [{row['match_rule']}: {_short(row['matched_name'])}]" if row["match_rule"] in ("sku", "name") else ""
        decision = row["decision"] or "UNDECIDED"
        click.echo(f"    {_short(row['name'])}  sku={_short(row['sku']) or '-'}  {price}  -> {decision}{match}")


def _print_issues(issues: list[dict[str, Any]], limit: int = 50) -> None:
    if not issues:
        return
    click.echo("Fidelity report and problems:")
    for issue in issues[:limit]:
        click.echo(f"  {issue['severity']:<8} {issue['code']:<22} {_short(issue['name'] or issue['item_id'])}: "
                   f"{_short(issue['message'], 400)}")
    if len(issues) > limit:
        click.echo(f"  ... and {len(issues) - limit} more (see --json)")


def _print_summary(summary: dict[str, Any]) -> None:
    click.echo(
        f"Plan: create {summary.get('create', 0)}, update {summary.get('update', 0)}, "
        f"skip {summary.get('skip', 0)}, duplicate {summary.get('duplicate', 0)}, "
        f"fail {summary.get('fail', 0)}, undecided {summary.get('undecided', 0)} "
        f"(matches: {json.dumps(summary.get('matched', {}))})"
    )


@import_group.command("preview")
@_selection_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def preview_cmd(as_json: bool, restaurant: str, max_age: float, refresh: bool, with_inventory: bool, **kw: Any) -> None:
    """Show the category -> item -> variant tree with prices, what would change, every
    conflict and the fidelity report. Writes nothing (but may fetch a snapshot)."""
    with _errors():
        connector = _connector()
        with _common.connection() as conn:
            restaurant_id = _restaurant(conn, restaurant)
        options = _options(batch_size=None, with_inventory=with_inventory, connector=connector, **kw)
        snap = _snapshot(connector, restaurant_id, max_age=max_age, refresh=refresh, with_inventory=with_inventory)
        report = runs.preview(connector, restaurant_id, snap.id, options)
    if as_json:
        report["snapshot_id"] = snap.id
        _common.echo_json(report)
        return
    _print_tree(report)
    _print_summary(report["summary"])
    if report["conflicts"]:
        click.echo("Conflicts:")
        for c in report["conflicts"]:
            click.echo(f"  {c['variant_id']}  {_short(c['name'])}: same {c['match_rule']} as "
                       f"\"{_short(c['matched_name'])}\" -> {c['decision'] or 'UNDECIDED'}")
    _print_issues(report["issues"])


def _progress_run(fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    bar_holder: dict[str, Any] = {}

    def on_planned(run_id: int, summary: dict[str, Any]) -> None:
        if run_id:
            click.echo(f"Import run {run_id}: {summary.get('variants', 0)} variants planned.", err=True)
        bar = click.progressbar(length=max(1, int(summary.get("variants", 0))), label="Importing",
                                file=sys.stderr, show_pos=True)
        bar.__enter__()
        bar_holder["bar"] = bar

    def on_progress(done: int, total: int) -> None:
        bar = bar_holder.get("bar")
        if bar is not None:
            bar.length = max(1, total)
            bar.update(done - bar.pos)

    try:
        return fn(*args, on_planned=on_planned, on_progress=on_progress, **kwargs)  # type: ignore[no-any-return]
    finally:
        if "bar" in bar_holder:
            bar_holder["bar"].__exit__(None, None, None)


def _print_result(result: dict[str, Any]) -> None:
    label = "Dry run (nothing written)" if result.get("dry_run") else f"Import run {result.get('run_id')}"
    click.echo(
        f"{label}: {result.get('status')}. created {result.get('created', 0)}, updated {result.get('updated', 0)}, "
        f"unchanged {result.get('unchanged', 0)}, skipped {result.get('skipped', 0)}, "
        f"duplicated {result.get('duplicated', 0)}, failed {result.get('failed', 0)}"
        + (f", {result['missing_action']} {result['missing']} missing" if result.get("missing") else "")
    )
    failed = [i for i in result.get("issues", []) if i["severity"] == "error"]
    for issue in failed[:50]:
        click.echo(f"  failed: {_short(issue['name'] or issue['item_id'])} ({issue['variant_id']}): "
                   f"{_short(issue['message'], 400)}")
    others = [i for i in result.get("issues", []) if i["severity"] != "error"]
    if others:
        click.echo(f"  {len(others)} fidelity notes/warnings: see `loyverse-sync import status {result.get('run_id')}`"
                   if result.get("run_id") else f"  {len(others)} fidelity notes/warnings")


@import_group.command("run")
@_selection_options
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--batch-size", type=_common.IntBetween(1, limits.BATCH_SIZE_MAX), help="Commit every N items (default: one transaction).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def run_cmd(dry_run: bool, batch_size: int | None, as_json: bool, restaurant: str, max_age: float, refresh: bool,
            with_inventory: bool, **kw: Any) -> None:
    """Import the menu into the restaurant (atomic unless --batch-size)."""
    with _errors():
        connector = _connector()
        with _common.connection() as conn:
            restaurant_id = _restaurant(conn, restaurant)
        options = _options(batch_size=batch_size, with_inventory=with_inventory, connector=connector, **kw)
        snap = _snapshot(connector, restaurant_id, max_age=max_age, refresh=refresh, with_inventory=with_inventory)
        result = _progress_run(runs.run, connector, restaurant_id, snap.id, options, dry_run=dry_run)
    if as_json:
        _common.echo_json({k: v for k, v in result.items() if k != "rows"})
    else:
        if dry_run:
            _print_tree(result)
        _print_result(result)


@import_group.command("resume")
@click.argument("run_id", type=_common.ID)
def resume_cmd(run_id: int) -> None:
    """Continue an interrupted import run without duplicating anything."""
    with _errors():
        result = _progress_run(runs.resume, _connector(), run_id)
    _print_result(result)


@import_group.command("status")
@click.argument("run_id", type=_common.ID)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status_cmd(run_id: int, as_json: bool) -> None:
    """Progress and outcome of an import run (live while it runs)."""
    with _errors():
        row = runs.status(_connector(), run_id)
    if as_json:
        _common.echo_json(row)
        return
    click.echo(
        f"Run {row['run_id']} ({row['restaurant_name']}): {row['status']}"
        f"{' (dry run)' if row['dry_run'] else ''}, {row['items_done']}/{row['items_total']} variants"
    )
    click.echo(
        f"created {row['created_count']}, updated {row['updated_count']}, skipped {row['skipped_count']}, "
        f"duplicated {row['duplicated_count']}, failed {row['failed_count']}"
    )
    if row.get("error"):
        click.echo(f"error: {row['error']}")
    _print_issues(row["issues"])


@import_group.command("undo")
@click.argument("run_id", type=_common.ID)
@click.option("--force", is_flag=True, help="Undo even rows changed since the run.")
def undo_cmd(run_id: int, force: bool) -> None:
    """Restore every row the run touched and remove what it created (mappings included)."""
    with _errors():
        result = runs.undo(_connector(), run_id, force=force)
    click.echo(
        f"Run {run_id} undone: {result['deleted']} rows removed, {result['restored']} restored, "
        f"{result['reinserted']} put back."
    )
    if result.get("forced_over"):
        click.echo(f"  (forced over {len(result['forced_over'])} row(s) changed since the run)")


@import_group.command("list")
@click.option("--restaurant", "-r", help="Only this restaurant (id or name).")
@click.option("--limit", type=_common.IntBetween(1, limits.PAGE_SIZE_MAX), default=20, show_default=True)
def list_cmd(restaurant: str | None, limit: int) -> None:
    """Recent import runs."""
    with _errors():
        restaurant_id = None
        if restaurant:
            with _common.connection() as conn:
                restaurant_id = _restaurant(conn, restaurant)
        rows = runs.list_runs(_connector(), restaurant_id, limit)
    _common.echo_table(rows, ["run_id", "restaurant_name", "status", "items_done", "items_total", "created_count",
                              "updated_count", "skipped_count", "duplicated_count", "failed_count", "started_at"],
                       empty="(no import runs)")


@import_group.command("wizard")
@click.option("--restaurant", "-r", required=True, help="Restaurant id or name.")
def wizard_cmd(restaurant: str) -> None:
    """Interactive import in seven steps: fetch & display, select, conflicts, resolution,
    field mapping, execution with progress, results. Answers can be piped on stdin."""
    with _errors():
        connector = _connector()
        with _common.connection() as conn:
            restaurant_id = _restaurant(conn, restaurant)
        click.echo("Step 1/7: fetch and display")
        refresh = click.confirm("Fetch the menu again (ignore a recent snapshot)?", default=False)
        snap = _snapshot(connector, restaurant_id, max_age=600.0, refresh=refresh, with_inventory=False)
        options = runs.Options()
        report = runs.preview(connector, restaurant_id, snap.id, options)
        _print_tree(report)
        _print_summary(report["summary"])

        click.echo("Step 2/7: select")
        while True:
            cats = click.prompt("Categories to import (comma-separated ids or names, empty = all)", default="", show_default=False)
            items = click.prompt("Items to import (comma-separated, empty = all)", default="", show_default=False)
            excl = click.prompt("Items or categories to exclude (comma-separated, empty = none)", default="", show_default=False)
            options.categories = [x.strip() for x in cats.split(",") if x.strip()]
            options.items = [x.strip() for x in items.split(",") if x.strip()]
            options.exclude = [x.strip() for x in excl.split(",") if x.strip()]
            try:
                report = runs.preview(connector, restaurant_id, snap.id, options)
            except runs.ImportProblem as exc:
                if not exc.usage:
                    raise
                click.echo(f"  {exc}: select again")  # a typo: ask again, not end the wizard
                continue
            break

        click.echo("Step 3/7: conflicts")
        conflicts = report["conflicts"]
        for c in conflicts:
            click.echo(f"  {c['variant_id']}  {_short(c['name'])}: same {c['match_rule']} as \"{_short(c['matched_name'])}\"")
        if not conflicts:
            click.echo("  (no conflicts)")

        click.echo("Step 4/7: resolution")
        strategy = click.prompt("Resolve conflicts by", type=click.Choice(runs.CONFLICT_CHOICES), default="skip")
        options.conflict = strategy
        if strategy == "manual":
            for c in conflicts:
                options.decisions[c["variant_id"]] = click.prompt(
                    f"  {_short(c['name'])} (same {c['match_rule']} as \"{_short(c['matched_name'])}\")",
                    type=click.Choice(runs.DECISION_CHOICES), default="skip")

        click.echo("Step 5/7: field mapping")
        while True:
            pair = click.prompt("Map a Loyverse field (loyverse_field=column, empty = done)", default="", show_default=False)
            if not pair.strip():
                break
            try:
                mapping = runs.parse_map([pair])
            except ValueError as exc:
                click.echo(f"  {exc}")
                continue
            problems = runs.field_map_problems(connector, {**options.map, **mapping})
            if problems:
                click.echo("  " + "; ".join(problems))
                continue
            options.map.update(mapping)

        click.echo("Step 6/7: execution")
        report = runs.preview(connector, restaurant_id, snap.id, options)
        _print_summary(report["summary"])
        if not click.confirm("Import now?", default=True):
            click.echo("Nothing imported.")
            return
        result = _progress_run(runs.run, connector, restaurant_id, snap.id, options)

        click.echo("Step 7/7: results")
        _print_result(result)
