"""What every command shares: finding the database, one-line errors, tables and JSON."""

from __future__ import annotations

import contextlib
import datetime
import decimal
import json
import logging
import math
import re
import sys
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import click
import psycopg

from loyverse_sync import accounts, config, crypto, db, limits


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


# -- bounded parameter types ------------------------------------------------------------
# Every number the CLI takes has both bounds (loyverse_sync/limits.py names the shared ones):
# a value outside them, NaN or an infinity is one `Error:` line naming the range, exit 2,
# before anything runs. tests/acceptance/test_cli_ranges.py feeds every numeric option of
# every command hostile values, and fails for a numeric option whose type is not one of these.


def _number(value: float) -> str:
    """A bound as people write it: 86400, not 86400.0; 0.001, not 1e-03."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class _Bounded:
    """Marks a parameter type whose every accepted value is within a finite, stated range."""

    min: Any
    max: Any
    min_open: bool
    max_open: bool

    def allowed(self) -> str:
        if not (self.min_open or self.max_open):
            return f"from {_number(self.min)} to {_number(self.max)}"
        low = f"{'above' if self.min_open else 'from'} {_number(self.min)}"
        high = f"{'below' if self.max_open else 'up to'} {_number(self.max)}"
        return f"{low}, {high}"

    def _describe_range(self) -> str:  # click's help: [1<=x<=86400], not 1.0<=x<=86400.0
        lop = "<" if self.min_open else "<="
        rop = "<" if self.max_open else "<="
        return f"{_number(self.min)}{lop}x{rop}{_number(self.max)}"


class IntBetween(_Bounded, click.IntRange):
    """An integer within [low, high]; anything else names the range."""

    name = "integer"

    def __init__(self, low: int, high: int) -> None:
        super().__init__(min=low, max=high)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            text = str(value).strip()
            if not re.fullmatch(r"[+-]?[0-9]+", text):
                self.fail(f"{value!r} is not an integer (allowed: {self.allowed()})", param, ctx)
            number = int(text)
        if not self.min <= number <= self.max:
            self.fail(f"{value} is out of range (allowed: an integer {self.allowed()})", param, ctx)
        return number


class FloatBetween(_Bounded, click.FloatRange):
    """A finite number within the range (NaN and infinities are refused: every comparison
    with NaN is false, so click's own FloatRange lets it through)."""

    name = "number"

    def __init__(
        self, low: float, high: float, *, min_open: bool = False, max_open: bool = False
    ) -> None:
        super().__init__(min=low, max=high, min_open=min_open, max_open=max_open)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            self.fail(f"{value!r} is not a number (allowed: {self.allowed()})", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value} is not a finite number (allowed: {self.allowed()})", param, ctx)
        below = number <= self.min if self.min_open else number < self.min
        above = number >= self.max if self.max_open else number > self.max
        if below or above:
            self.fail(f"{value} is out of range (allowed: a number {self.allowed()})", param, ctx)
        return number


def seconds(high: float = limits.SECONDS_MAX, *, low: float = 0.0, low_open: bool = False) -> FloatBetween:
    """A duration in seconds, at most a day unless said otherwise."""
    return FloatBetween(low, high, min_open=low_open)


ID = IntBetween(limits.ID_MIN, limits.ID_MAX)
PORT = IntBetween(1, 65_535)
SEED = IntBetween(0, limits.SEED_MAX)


class AccountRef(click.ParamType):
    """A Loyverse account by id (1..bigint max) or by name. A number outside the id range is
    refused here rather than overflowing bigint in the query."""

    name = "account"
    #: digits are read as an id: tests/acceptance/test_cli_ranges.py feeds it hostile numbers
    takes_numbers = True

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value).strip()
        if re.fullmatch(r"[+-]?[0-9]+", text) and not limits.ID_MIN <= int(text) <= limits.ID_MAX:
            self.fail(
                f"{text} is not an account id (ids are from {limits.ID_MIN} to {limits.ID_MAX}; "
                "or give the account's name)",
                param,
                ctx,
            )
        if not text:
            self.fail("give an account id or name (see `loyverse-sync account list`)", param, ctx)
        return text


class Name(click.ParamType):
    """A name people give: not blank, at most ``limits.NAME_MAX`` characters."""

    name = "text"

    def __init__(self, max_length: int = limits.NAME_MAX) -> None:
        self.max_length = max_length

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value)
        if not text.strip() or len(text) > self.max_length:
            self.fail(
                f"{shorten(text, 40)!r} has {len(text)} characters: give 1 to {self.max_length}"
                " (not only spaces)",
                param,
                ctx,
            )
        return text


def shorten(text: Any, width: int = limits.DISPLAY_TEXT_MAX) -> str:
    """``text`` for a human-readable listing: at most ``width`` characters, an ellipsis when
    cut (the value itself is not changed; --json shows it whole)."""
    value = "" if text is None else str(text)
    return value if len(value) <= width else value[: width - 1] + "…"


def age(value: datetime.timedelta | None) -> str:
    """An interval as the dashboard shows it: 42s, 3m05s, 2h07m."""
    if value is None:
        return "-"
    s = int(value.total_seconds())
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def duration(value: datetime.timedelta | None) -> str:
    """A short duration with its unit: 0.42s, 12.3s, 3m05s."""
    if value is None:
        return "-"
    s = value.total_seconds()
    if s < 10:
        return f"{s:.2f}s"
    return f"{s:.1f}s" if s < 60 else age(value)


def percent(value: Any) -> str:
    """A fraction (0..1) as a percentage, as the dashboard shows it."""
    return "-" if value is None else f"{float(value):.0%}"


_CURRENT: dict[str, str] = {}


def _current_db_description() -> str:
    return _CURRENT.get("description", "no database resolved yet")


def database(*, discover: bool = True) -> config.Database:
    """The database, found in the documented order."""
    found = config.find_database(discover=discover)
    _CURRENT["description"] = config.describe_conninfo(found.conninfo)
    return found


_CONNECTOR_KEY = "loyverse_sync.connector"


def connector() -> db.Connector:
    """The command's one database handle: built on first use, closed when the command ends.

    Outside a click command (a helper called by a test) the caller gets a connector of its
    own and closes it."""
    found = database()
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return db.Connector(found.conninfo, role="cli")
    root = ctx.find_root()
    existing: db.Connector | None = root.meta.get(_CONNECTOR_KEY)
    if existing is not None and existing.conninfo == found.conninfo:
        return existing
    made = db.Connector(found.conninfo, role="cli")
    root.meta[_CONNECTOR_KEY] = made
    root.call_on_close(made.close)
    return made


@contextlib.contextmanager
def connection(*, require_schema: bool = True) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    """An autocommit connection (dict rows) of the command's connector; the database must be migrated."""
    handle = connector()
    owned = click.get_current_context(silent=True) is None
    with contextlib.ExitStack() as stack:
        if owned:
            stack.callback(handle.close)
        conn = stack.enter_context(handle.connection())
        if require_schema:
            row = conn.execute(
                "select to_regclass('loyverse.loyverse_accounts') is not null as ok"
            ).fetchone()
            if not row or not row["ok"]:
                raise UsageProblem(
                    f"the database {handle.database} is not migrated: "
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
    return shorten(value)


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
