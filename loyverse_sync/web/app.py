"""`loyverse-sync serve`: one ASGI app with the JSON API (/api/integrations/loyverse/) and
the managers' console (/console/).

A thin layer: every route validates its input, calls one SQL function or view through the
named queries of loyverse_sync/queries/api.sql (or the import pipeline of
loyverse_sync/importer/), and renders. One psycopg pool per process; each request runs in
one short transaction that first sets ``loyverse.actor`` (who is acting), which the SQL
functions write into the audit trail.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import logging
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import fastapi
import psycopg
import psycopg_pool
from fastapi import exceptions as fastapi_exceptions
from fastapi import responses
from psycopg import conninfo as pg_conninfo
from psycopg import rows

from loyverse_sync import queries

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
    """The server's one pool, and the way every route reaches the database."""

    def __init__(self, conninfo: str, *, max_size: int = 8):
        self.conninfo = conninfo
        # Short queries only: JIT compiling a status query over a large queue cost 210 ms of
        # its 313 ms (bench/api_latency.py), so the server's own connections go without it.
        params = pg_conninfo.conninfo_to_dict(conninfo) if conninfo else {}
        params["options"] = f"{params.get('options') or ''} -c jit=off".strip()
        self.pool: psycopg_pool.ConnectionPool[psycopg.Connection[dict[str, Any]]] = psycopg_pool.ConnectionPool(
            pg_conninfo.make_conninfo(**params),  # type: ignore[arg-type]
            min_size=1,
            max_size=max_size,
            kwargs={"autocommit": True, "row_factory": rows.dict_row, "application_name": "loyverse-sync serve"},
            open=False,
            connection_class=psycopg.Connection[dict[str, Any]],  # type: ignore[arg-type]
        )

    def open(self) -> None:
        self.pool.open(wait=True, timeout=30)

    def close(self) -> None:
        self.pool.close()

    @contextlib.contextmanager
    def transaction(self, actor: str | None) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """One transaction acting as `actor` (None: autocommit reads); SQL API errors become ApiError."""
        with self.pool.connection() as conn:
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


def create_app(conninfo: str, *, session_secret: str | None = None) -> fastapi.FastAPI:
    """The ASGI app of `loyverse-sync serve` on the database `conninfo`."""
    from loyverse_sync import __version__
    from loyverse_sync.web import api, console

    from loyverse_sync.inbound import receiver as receiver_mod

    database = Database(conninfo)
    # Loyverse's webhook deliveries (issue #16): stored as received, in one INSERT, on the
    # receiver's own small async pool, so a slow API request never delays a delivery's answer.
    receiver = receiver_mod.Receiver(conninfo)

    @contextlib.asynccontextmanager
    async def lifespan(_app: fastapi.FastAPI) -> AsyncIterator[None]:
        database.open()
        try:
            async with receiver.lifespan():
                yield
        finally:
            database.close()

    app = fastapi.FastAPI(
        title="loyverse-sync",
        version=__version__,
        summary="Menu import from and price sync to the Loyverse POS: the plan's endpoints.",
        description=(
            "Authenticate with `Authorization: Bearer <key>` (`loyverse-sync apikey create`). A restaurant "
            "key reaches only its restaurant. Errors: `{\"error\": {\"field\", \"message\", \"allowed\"?}}`."
        ),
        lifespan=lifespan,
        # FastAPI's /docs and /redoc pages load their scripts from a CDN: nothing here may need
        # the internet, so only the document itself is served (/openapi.json).
        docs_url=None,
        redoc_url=None,
    )
    app.state.db = database

    @app.exception_handler(ApiError)
    async def _api_error(request: fastapi.Request, exc: ApiError) -> responses.Response:
        if request.url.path.startswith("/console") and exc.status in (401, 403):
            return console.refused(request, exc)
        return responses.JSONResponse(error_body(exc.field, exc.message, exc.allowed), status_code=exc.status)

    @app.exception_handler(fastapi_exceptions.RequestValidationError)
    async def _invalid(request: fastapi.Request, exc: fastapi_exceptions.RequestValidationError) -> responses.Response:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
        ctx = first.get("ctx") or {}
        allowed = None
        if isinstance(ctx.get("expected"), str):
            allowed = [a.strip().strip("'") for a in ctx["expected"].replace(" or ", ",").split(",") if a.strip()]
        message = str(first.get("msg") or "invalid request")
        body = error_body(".".join(loc) or "body", message, allowed)
        body["error"]["problems"] = [
            {"field": ".".join(str(p) for p in e.get("loc", ())[1:]) or "body", "message": str(e.get("msg"))}
            for e in exc.errors()[:20]
        ]
        return responses.JSONResponse(body, status_code=422)

    app.include_router(api.router)
    app.include_router(console.router)
    console.install(app, session_secret or os.environ.get("LOYVERSE_SYNC_SESSION_SECRET") or secrets.token_hex(32))

    # POST /loyverse/webhooks/{secret}: the URL `account subscribe --url` registers
    app.router.routes.extend(receiver.routes)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        database.value(None, "restaurant_exists", {"restaurant_id": None})
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    def root() -> responses.RedirectResponse:
        return responses.RedirectResponse("/console/", status_code=303)

    return app
