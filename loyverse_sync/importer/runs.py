"""Import runs: plan, write (atomic or in batches), resume, undo — thin calls of the SQL
functions in sql/06NN_function_import_*.sql.

Atomic (default): plan, objects, every batch and finish in one transaction; the run row is
written first on a separate connection, so `import status` shows live progress, and a
crash leaves the catalogue untouched (`import resume` then runs it again). With
`batch_size`, the plan and each batch commit on their own; `import resume` continues with
the batches not done (product ids are chosen when planning, so nothing is duplicated).
The process running a run holds advisory lock (7301, run id): a RUNNING run without it was
interrupted.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import psycopg

from loyverse_sync import db, queries

ProgressCallback = Callable[[int, int], None]

CONFLICT_CHOICES = ("skip", "update", "duplicate", "manual")
DECISION_CHOICES = ("skip", "update", "duplicate")
MISSING_CHOICES = ("deactivate", "delete", "keep")
UNKNOWN_CATEGORY_CHOICES = ("fallback", "reject")


class ImportProblem(Exception):
    """An import that cannot go on; `rows` lists what to fix (undecided conflicts, changed rows)."""

    def __init__(self, message: str, rows: list[dict[str, Any]] | None = None, usage: bool = False):
        super().__init__(message)
        self.rows = rows or []
        self.usage = usage


@dataclasses.dataclass
class Options:
    """What `import run` was asked to do (stored in loyverse_import_runs.options)."""

    conflict: str = "skip"
    decisions: dict[str, str] = dataclasses.field(default_factory=dict)
    map: dict[str, str] = dataclasses.field(default_factory=dict)
    categories: list[str] = dataclasses.field(default_factory=list)
    items: list[str] = dataclasses.field(default_factory=list)
    exclude: list[str] = dataclasses.field(default_factory=list)
    unknown_category: str = "fallback"
    missing: str = "deactivate"
    batch_size: int | None = None
    with_inventory: bool = False

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Options:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _one(conn: psycopg.Connection[Any], name: str, params: dict[str, Any]) -> Any:
    row = queries.execute(conn, "importer", name, params).fetchone()
    assert row is not None
    return next(iter(row.values()))


# -- input parsing ---------------------------------------------------------------------------


def parse_decisions(path: str | pathlib.Path) -> dict[str, str]:
    """A decisions file: JSON ({"variant id": "skip"} or [{"variant_id", "decision"}]) or CSV
    (columns variant_id,decision; a header row is optional). Raises ValueError."""
    p = pathlib.Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {p}: {exc.strerror or exc}") from None
    pairs: list[tuple[str, Any]] = []  # decisions are checked below, whatever JSON gave
    stripped = text.lstrip()
    if p.suffix.lower() == ".json" or stripped.startswith(("{", "[")):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{p}: not valid JSON ({exc})") from None
        if isinstance(data, dict):
            pairs = [(str(k), v) for k, v in data.items()]
        elif isinstance(data, list):
            for entry in data:
                if not isinstance(entry, dict):
                    raise ValueError(f"{p}: each entry must be an object with variant_id and decision")
                pairs.append((str(entry.get("variant_id") or entry.get("id") or ""), entry.get("decision")))
        else:
            raise ValueError(f"{p}: expected an object or a list")
    else:
        for row in csv.reader(io.StringIO(text)):
            if not row or not "".join(row).strip() or row[0].strip().startswith("#"):
                continue
            if len(row) < 2:
                raise ValueError(f"{p}: each line needs variant_id,decision (got {','.join(row)!r})")
            if row[0].strip().lower() in ("variant_id", "id", "loyverse_variant_id"):
                continue
            pairs.append((row[0].strip(), row[1].strip()))
    out: dict[str, str] = {}
    for key, decision in pairs:
        value = str(decision).strip().lower() if isinstance(decision, str) else decision
        if not key:
            raise ValueError(f"{p}: an entry has no variant id")
        if value not in DECISION_CHOICES:
            raise ValueError(f"{p}: decision for {key} must be one of {', '.join(DECISION_CHOICES)}, got {decision!r}")
        out[key] = value
    return out


def parse_map(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """`loyverse_field=our_column` pairs. Raises ValueError on a malformed pair."""
    out: dict[str, str] = {}
    for pair in pairs:
        field, sep, column = pair.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise ValueError(f"--map takes loyverse_field=our_column, got {pair!r}")
        out[field.strip()] = column.strip()
    return out


def field_map_problems(connector: db.Connector, mapping: dict[str, str]) -> list[str]:
    """Problems of a field mapping against both schemas (empty: valid)."""
    if not mapping:
        return []
    with connector.connection() as conn:
        found = queries.execute(conn, "importer", "field_map_problems", {"map": json.dumps(mapping)}).fetchall()
    return [f"{r['loyverse_field']}={r['our_column']}: {r['problem']}" for r in found]


# -- planning and preview --------------------------------------------------------------------


def _check_selection(conn: psycopg.Connection[Any], snapshot_id: int, options: Options) -> None:
    """A --category, --item or --exclude that names nothing in the snapshot is an error naming
    it (a typo would otherwise select nothing and report an empty success)."""
    selection = [{"option": "--category", "ref": r} for r in options.categories]
    selection += [{"option": "--item", "ref": r} for r in options.items]
    selection += [{"option": "--exclude", "ref": r} for r in options.exclude]
    if not selection:
        return
    unknown = queries.execute(
        conn, "importer", "unknown_selection", {"snapshot_id": snapshot_id, "selection": json.dumps(selection)}
    ).fetchall()
    if not unknown:
        return
    what = {"--category": "category", "--item": "item", "--exclude": "item or category"}
    names = "; ".join(f"{r['option']} {r['ref']!r} names no {what[r['option']]} in Loyverse" for r in unknown)
    categories = unknown[0]["categories"] or []
    shown = ", ".join(categories[:30]) + (f" and {len(categories) - 30} more" if len(categories) > 30 else "")
    raise ImportProblem(
        f"{names} (categories: {shown or 'none'}; items: see `loyverse-sync import preview`)", usage=True
    )


def _create_run(
    conn: psycopg.Connection[Any], restaurant_id: str, account_id: int, snapshot_id: int, options: Options, *, dry_run: bool
) -> int:
    _check_selection(conn, snapshot_id, options)
    return int(
        _one(
            conn,
            "insert_run",
            {
                "restaurant_id": restaurant_id,
                "account_id": account_id,
                "snapshot_id": snapshot_id,
                "dry_run": dry_run,
                "options": json.dumps(options.to_json()),
            },
        )
    )


def _plan(
    conn: psycopg.Connection[Any], run_id: int, options: Options, side: psycopg.Connection[Any] | None = None
) -> dict[str, Any]:
    """Plan the run on `conn`. With `side` (autocommit), the run row shows how far planning is
    while it runs: import_plan sends a progress NOTICE per 1,000 items and per step, which
    arrives before the statement returns, and each is written through `side`."""

    def on_notice(diag: psycopg.errors.Diagnostic) -> None:
        if side is None or not (diag.message_primary or "").startswith("import_plan progress:"):
            return
        try:
            p = json.loads(diag.message_detail or "{}")
            queries.execute(side, "importer", "set_plan_progress", {
                "id": run_id, "stage": p["stage"], "done": p["done"], "total": p["total"], "at": p["at"]})
        except (ValueError, KeyError, psycopg.Error):
            pass  # progress is a courtesy: the plan goes on without it

    conn.add_notice_handler(on_notice)
    try:
        summary: dict[str, Any] = _one(conn, "plan", {"id": run_id})
    finally:
        conn.remove_notice_handler(on_notice)
    if summary.get("undecided"):
        undecided = [dict(r) for r in queries.execute(conn, "importer", "undecided", {"id": run_id})]
        raise ImportProblem(
            f"{len(undecided)} conflict(s) have no decision: add them to the decisions file "
            "(variant_id,skip|update|duplicate)",
            undecided,
        )
    return summary


def report(conn: psycopg.Connection[Any], run_id: int, *, with_rows: bool = True) -> dict[str, Any]:
    """The plan of a run as data: summary (counted in SQL), rows (the tree; only
    `with_rows`: a 10,000-item plan is 20,000 rows), conflicts and issues."""
    out = {
        "summary": _one(conn, "plan_summary", {"id": run_id}),
        "conflicts": [dict(r) for r in queries.execute(conn, "importer", "conflicts", {"id": run_id})],
        "issues": [dict(r) for r in queries.execute(conn, "importer", "issues", {"id": run_id})],
    }
    if with_rows:
        out["rows"] = [dict(r) for r in queries.execute(conn, "importer", "plan_rows", {"id": run_id})]
    return out


def preview(connector: db.Connector, restaurant_id: str, snapshot_id: int, options: Options) -> dict[str, Any]:
    """What a run would do (plan only, rolled back: nothing is written). Undecided
    conflicts are listed, not refused."""
    with connector.connection(autocommit=False) as conn:
        try:
            account_id = _account_of(conn, restaurant_id)
            run_id = _create_run(conn, restaurant_id, account_id, snapshot_id, options, dry_run=True)
            _one(conn, "plan", {"id": run_id})
            out = report(conn, run_id)
            out["undecided"] = [dict(r) for r in queries.execute(conn, "importer", "undecided", {"id": run_id})]
            return out
        finally:
            conn.rollback()


def _account_of(conn: psycopg.Connection[Any], restaurant_id: str) -> int:
    row = queries.execute(conn, "importer", "restaurant_link", {"restaurant_id": restaurant_id}).fetchone()
    if row is None:
        raise ImportProblem("the restaurant is not linked to a Loyverse store", usage=True)
    return int(row["account_id"])


# -- running ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _run_lock(conn: psycopg.Connection[Any], run_id: int) -> Iterator[None]:
    """Hold advisory lock (7301, run) on `conn` (a session lock: outlives transactions)."""
    if not _one(conn, "try_lock_run", {"id": run_id}):
        raise ImportProblem(f"import run {run_id} is running in another process")
    if not conn.autocommit:
        conn.commit()
    try:
        yield
    finally:
        if not conn.closed and not conn.broken:
            with contextlib.suppress(psycopg.Error):
                conn.rollback()
                _one(conn, "unlock_run", {"id": run_id})
                conn.commit()


def _apply(
    conn: psycopg.Connection[Any],
    side: psycopg.Connection[Any] | None,
    run_id: int,
    *,
    batched: bool,
    on_progress: ProgressCallback | None,
) -> dict[str, Any]:
    """Objects, every pending batch, finish. `batched`: commit each step on `conn`; else
    everything stays in the caller's transaction and progress goes through `side`."""
    total_row = queries.execute(conn, "importer", "plan_exists", {"id": run_id}).fetchone()
    assert total_row is not None
    total, pending = int(total_row["n"]), int(total_row["pending"])
    if not batched:
        # Atomic: the plan is this transaction's own (a real atomic run's plan rows come
        # done: import_plan writes their outcome with them), so every row is pending.
        pending = total
    done = total - pending
    progress_conn = conn if batched else side
    if progress_conn is not None:
        queries.execute(progress_conn, "importer", "set_total", {"id": run_id, "total": total, "done": done})
    _one(conn, "apply_objects", {"id": run_id})
    if batched:
        conn.commit()
        batches = [dict(b) for b in queries.execute(conn, "importer", "batches", {"id": run_id})]
    else:
        # Atomic: one set-based pass over every row (batch null), not one per batch.
        batches = [{"batch_no": None, "n": pending}] if pending else []
    for batch in batches:
        _one(conn, "apply_batch", {"id": run_id, "batch_no": batch["batch_no"]})
        done += int(batch["n"])
        if batched:
            queries.execute(conn, "importer", "set_progress", {"id": run_id, "done": done})
            conn.commit()
        elif side is not None:
            queries.execute(side, "importer", "set_progress", {"id": run_id, "done": done})
        if on_progress:
            on_progress(done, total)
    result: dict[str, Any] = _one(conn, "finish", {"id": run_id})
    return result


def run(
    connector: db.Connector,
    restaurant_id: str,
    snapshot_id: int,
    options: Options,
    *,
    dry_run: bool = False,
    on_planned: Callable[[int, dict[str, Any]], None] | None = None,
    on_progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Import a snapshot into the restaurant. Returns {run_id, status, counts..., issues}.

    Raises ImportProblem when conflicts are undecided (manual mode): nothing is written.
    """
    if dry_run:
        with connector.connection(autocommit=False) as conn:
            try:
                account_id = _account_of(conn, restaurant_id)
                run_id = _create_run(conn, restaurant_id, account_id, snapshot_id, options, dry_run=True)
                summary = _plan(conn, run_id, options)
                if on_planned:
                    on_planned(run_id, summary)
                result = _apply(conn, None, run_id, batched=False, on_progress=on_progress)
                out = report(conn, run_id)
                out.update(result, run_id=None, dry_run=True)
                return out
            finally:
                conn.rollback()

    with connector.connection() as side:
        account_id = _account_of(side, restaurant_id)
        run_id = _create_run(side, restaurant_id, account_id, snapshot_id, options, dry_run=False)
    return _execute(connector, run_id, options, on_planned=on_planned, on_progress=on_progress)


def _execute(
    connector: db.Connector,
    run_id: int,
    options: Options,
    *,
    on_planned: Callable[[int, dict[str, Any]], None] | None = None,
    on_progress: ProgressCallback | None = None,
    replan: bool = True,
) -> dict[str, Any]:
    batched = options.batch_size is not None
    with connector.connection(autocommit=False) as conn, connector.connection() as side, _run_lock(conn, run_id):
        try:
            queries.execute(side, "importer", "set_running", {"id": run_id})
            if replan:
                summary = _plan(conn, run_id, options, side)
                if batched:
                    conn.commit()
            else:
                summary = _one(conn, "plan_summary", {"id": run_id})
            if on_planned:
                on_planned(run_id, summary)
            result = _apply(conn, side, run_id, batched=batched, on_progress=on_progress)
            conn.commit()
        except ImportProblem as exc:
            conn.rollback()
            queries.execute(side, "importer", "set_failed", {"id": run_id, "error": str(exc)})
            raise
        except psycopg.Error as exc:
            conn.rollback()
            constraint = getattr(exc.diag, "constraint_name", None)
            message = " ".join(str(exc).split())
            if constraint:
                message = f"{message} (constraint {constraint})"
            queries.execute(side, "importer", "set_failed", {"id": run_id, "error": message[:2000]})
            raise ImportProblem(f"import run {run_id} failed and was rolled back: {message}") from exc
        out = report(conn, run_id, with_rows=False)
        conn.rollback()
    out.update(result, run_id=run_id, dry_run=False)
    return out


def resume(
    connector: db.Connector,
    run_id: int,
    *,
    on_planned: Callable[[int, dict[str, Any]], None] | None = None,
    on_progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Continue an interrupted run: the batches not done (batched), or the whole run again
    (atomic: an interrupted atomic run wrote nothing)."""
    with connector.connection() as conn:
        row = queries.execute(conn, "importer", "get_run", {"id": run_id}).fetchone()
        if row is None:
            raise ImportProblem(f"no import run {run_id}", usage=True)
        if row["locked"]:
            raise ImportProblem(f"import run {run_id} is still running in another process")
        if row["dry_run"]:
            raise ImportProblem(f"import run {run_id} was a dry run: nothing to resume", usage=True)
        if row["status"] in ("SUCCESS", "PARTIAL", "UNDONE"):
            raise ImportProblem(f"import run {run_id} is {row['status']}: nothing to resume", usage=True)
        planned = queries.execute(conn, "importer", "plan_exists", {"id": run_id}).fetchone()
    options = Options.from_json(row["options"])
    has_plan = bool(planned and planned["n"])
    return _execute(
        connector, run_id, options, on_planned=on_planned, on_progress=on_progress, replan=not has_plan
    )


def undo(connector: db.Connector, run_id: int, *, force: bool = False) -> dict[str, Any]:
    """Undo a run. Raises ImportProblem listing the rows changed since, unless `force`."""
    with connector.connection(autocommit=False) as conn:
        row = queries.execute(conn, "importer", "get_run", {"id": run_id}).fetchone()
        if row is None:
            raise ImportProblem(f"no import run {run_id}", usage=True)
        if row["locked"]:
            raise ImportProblem(f"import run {run_id} is still running")
        try:
            result: dict[str, Any] = _one(conn, "undo", {"id": run_id, "force": force})
        except psycopg.errors.InvalidParameterValue as exc:
            conn.rollback()
            raise ImportProblem(exc.diag.message_primary or str(exc), usage=True) from None
        if result.get("refused"):
            conn.rollback()
            changed = result.get("changed") or []
            raise ImportProblem(
                f"{len(changed)} row(s) the run touched changed since; use --force to undo anyway",
                changed,
            )
        conn.commit()
    return result


def status(connector: db.Connector, run_id: int) -> dict[str, Any]:
    """A run's row from loyverse.import_runs; status INTERRUPTED when RUNNING without its process."""
    with connector.connection() as conn:
        row = queries.execute(conn, "importer", "run_view", {"id": run_id}).fetchone()
        if row is None:
            raise ImportProblem(f"no import run {run_id}", usage=True)
        out = dict(row)
        if out["status"] == "RUNNING" and not out.pop("locked"):
            out["status"] = "INTERRUPTED"
        out.pop("locked", None)
        out["issues"] = [dict(r) for r in queries.execute(conn, "importer", "issues", {"id": run_id})]
    return out


def list_runs(connector: db.Connector, restaurant_id: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """Recent runs, newest first."""
    with connector.connection() as conn:
        return [
            dict(r)
            for r in queries.execute(
                conn, "importer", "list_runs", {"restaurant_id": restaurant_id, "limit": limit}
            )
        ]


def execute_requested(connector: db.Connector, run_id: int) -> dict[str, Any]:
    """Run an import requested with loyverse.request_menu_import (the worker's
    import_loyverse_menu job): fetch the menu (or reuse a snapshot younger than the
    request's max_age, default 600 s), then plan and write exactly as `import run` does.
    A run that is no longer PENDING is left alone; a failure marks it FAILED."""
    from loyverse_sync.importer import snapshot

    with connector.connection() as conn:
        row = queries.execute(conn, "importer", "get_run", {"id": run_id}).fetchone()
    if row is None:
        raise ImportProblem(f"no import run {run_id}", usage=True)
    if row["status"] != "PENDING":
        return {"run_id": run_id, "status": row["status"], "skipped": "the run is not PENDING"}
    request = row["options"] or {}
    options = Options.from_json(request)
    try:
        with connector.connection() as progress:

            def on_page(_kind: str, n: int) -> None:  # menu/status shows the fetch moving too
                queries.execute(progress, "importer", "set_fetch_progress", {"id": run_id, "n": n})

            snap = snapshot.get_or_fetch(
                connector, str(row["restaurant_id"]), max_age=float(request.get("max_age", 600.0)),
                refresh=bool(request.get("refresh", False)), with_inventory=options.with_inventory, on_page=on_page,
            )
    except Exception as exc:
        with connector.connection() as side:
            message = " ".join(f"fetching the menu failed: {exc}".split())[:2000]
            queries.execute(side, "importer", "set_failed", {"id": run_id, "error": message})
        raise
    with connector.connection() as side:
        queries.execute(side, "importer", "set_snapshot", {"id": run_id, "snapshot_id": snap.id})
    result = _execute(connector, run_id, options)
    return {k: v for k, v in result.items() if k not in ("issues", "conflicts", "rows")}
