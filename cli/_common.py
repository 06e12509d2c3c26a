"""What every command shares: finding the database, one-line errors, tables and JSON."""

from __future__ import annotations

import contextlib
import datetime
import decimal
import json
import logging
import sys
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import click
import psycopg

from loyverse_sync import accounts, config, crypto, db


class UsageProblem(click.ClickException):
    """A one-line error for bad input or an unusable environment: exit code 2."""

    exit_code = 2


EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    config.DatabaseNotFound,
    crypto.KeyError_,
    accounts.NotFound,
)


def usage_error(exc: BaseException) -> click.ClickException:
    if isinstance(exc, psycopg.OperationalError):
        reason = " ".join(str(exc).split()) or type(exc).__name__
        where = _current_db_description()
        return UsageProblem(f"cannot connect to the database ({where}): {reason}")
    return UsageProblem(str(exc))


_CURRENT: dict[str, str] = {}


def _current_db_description() -> str:
    return _CURRENT.get("description", "no database resolved yet")


def database(*, discover: bool = True) -> config.Database:
    """The database, found in the documented order."""
    found = config.find_database(discover=discover)
    _CURRENT["description"] = config.describe_conninfo(found.conninfo)
    return found


@contextlib.contextmanager
def connection(*, require_schema: bool = True) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    """An autocommit connection (dict rows) to the database, which must be migrated."""
    found = database()
    with db.connect(found.conninfo, autocommit=True) as conn:
        if require_schema:
            row = conn.execute(
                "select to_regclass('loyverse.accounts') is not null as ok"
            ).fetchone()
            if not row or not row["ok"]:
                raise UsageProblem(
                    f"the database {config.describe_conninfo(found.conninfo)} is not migrated: "
                    "run `loyverse-sync db migrate`"
                )
        yield conn


def to_jsonable(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return "<binary>"
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def echo_json(value: Any) -> None:
    click.echo(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def echo_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, *, empty: str = "(none)"
) -> None:
    """A plain aligned table for people (rich would be nicer, but this pipes cleanly)."""
    if not rows:
        click.echo(empty)
        return
    cols = list(columns or rows[0].keys())
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            payload.update(to_jsonable(extra))
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


def configure_logging(level: int, *, json_format: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonFormatter()
        if json_format
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger("loyverse_sync")
    root.handlers[:] = [handler]
    root.setLevel(max(level, logging.DEBUG))
    root.propagate = False
