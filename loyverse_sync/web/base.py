"""What every route of `loyverse-sync serve` shares: the one database pool (``Database``),
errors the client can act on (``ApiError``, named field and allowed values, also from the SQL
API's errors) and rows as JSON. app.py builds the app from these; api.py and console.py use
them (kept apart from app.py so that nothing imports the module that imports it).
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg

from loyverse_sync import db, queries

logger = logging.getLogger("loyverse_sync.web")

# SQLSTATE of the SQL API's errors -> HTTP status (the CLI maps the same classes to exit 2)
_STATUS_BY_CLASS = {"22": 422, "23": 422, "55": 409}


class ApiError(Exception):
    """An error the client can act on: HTTP status, the field at fault, its allowed values."""

    def __init__(self, status: int, field: str | None, message: str, allowed: list[Any] | None = None):
        super().__init__(message)
        self.status = status
        self.field = field
        self.message = message
        self.allowed = allowed


def error_body(field: str | None, message: str, allowed: list[Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"field": field, "message": message}
    if allowed is not None:
        body["allowed"] = allowed
    return {"error": body}


def from_sql_error(exc: psycopg.Error) -> ApiError:
    """A validation error raised by an SQL function as an ApiError naming the field."""
    state = exc.sqlstate or ""
    message = ((exc.diag.message_primary if exc.diag else None) or str(exc)).splitlines()[0]
    field = exc.diag.column_name if exc.diag else None
    if not field and ": " in message:
        field = message.split(": ", 1)[0]
    if state == "P0002":
        return ApiError(404, field, message)
    status = _STATUS_BY_CLASS.get(state[:2])
    if status is None:
        raise exc
    return ApiError(status, field, message)


def jsonable(value: Any) -> Any:
    """Rows as JSON: decimals as strings (exact prices), intervals as seconds."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return round(value.total_seconds(), 3)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


class Database:
    """The way every route reaches the database: the server's connector (the importer's
    managers, preview and undo, take it as it is)."""

    def __init__(self, connector: db.Connector):
        self.connector = connector

    def wait(self) -> None:
        """Until the pool holds its first connection (the app's start-up)."""
        self.connector.pool.wait(timeout=30)

    @contextlib.contextmanager
    def transaction(self, actor: str | None) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """One transaction acting as `actor` (None: autocommit reads); SQL API errors become ApiError."""
        with self.connector.connection() as conn:
            try:
                if actor is None:  # reads: each statement on its own (no BEGIN/COMMIT round trips)
                    yield conn
                    return
                with conn.transaction():
                    queries.execute(conn, "api", "set_actor", {"actor": actor})
                    yield conn
            except psycopg.Error as exc:
                if isinstance(exc, psycopg.OperationalError):
                    raise
                raise from_sql_error(exc) from None

    def all(self, actor: str | None, name: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        with self.transaction(actor) as conn:
            return [dict(r) for r in queries.execute(conn, "api", name, params)]

    def one(self, actor: str | None, name: str, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        found = self.all(actor, name, params)
        return found[0] if found else None

    def value(self, actor: str | None, name: str, params: dict[str, Any] | None = None) -> Any:
        row = self.one(actor, name, params)
        return None if row is None else next(iter(row.values()))
