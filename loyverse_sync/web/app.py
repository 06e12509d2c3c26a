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
import logging
import os
import secrets
from collections.abc import AsyncIterator

import fastapi
from fastapi import exceptions as fastapi_exceptions
from fastapi import responses

from loyverse_sync import db
from loyverse_sync.web import base

logger = logging.getLogger("loyverse_sync.web")

# (the shared pieces live in base.py; names kept here for existing callers)
ApiError = base.ApiError
Database = base.Database
error_body = base.error_body
from_sql_error = base.from_sql_error
jsonable = base.jsonable


def create_app(connector: db.Connector | None, *, session_secret: str | None = None) -> fastapi.FastAPI:
    """The ASGI app of `loyverse-sync serve` on the process's connector (its owner closes it);
    None: an app for its OpenAPI document only (`serve --openapi`), nothing behind its routes."""
    from loyverse_sync import __version__
    from loyverse_sync.inbound import receiver as receiver_mod
    from loyverse_sync.web import api, console

    database = Database(connector) if connector is not None else None
    # Loyverse's webhook deliveries (issue #16): stored as received, in one INSERT, on the
    # receiver's own small async pool, so a slow API request never delays a delivery's answer.
    receiver = receiver_mod.Receiver(connector) if connector is not None else None

    @contextlib.asynccontextmanager
    async def lifespan(_app: fastapi.FastAPI) -> AsyncIterator[None]:
        if database is None or receiver is None:
            yield
            return
        database.wait()
        async with receiver.lifespan():
            yield

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
    if receiver is not None:
        app.router.routes.extend(receiver.routes)

    @app.get("/healthz", include_in_schema=False)
    def healthz(request: fastapi.Request) -> dict[str, str]:
        request.app.state.db.value(None, "restaurant_exists", {"restaurant_id": None})
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    def root() -> responses.RedirectResponse:
        return responses.RedirectResponse("/console/", status_code=303)

    return app
