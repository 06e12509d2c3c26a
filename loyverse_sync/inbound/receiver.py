"""The webhook receiver: one Starlette route that stores Loyverse deliveries as received.

    receiver = Receiver(connector)             # the process's db.Connector
    app.router.routes.extend(receiver.routes)  # POST /loyverse/webhooks/{url_secret}
    # in the app's lifespan: `async with receiver.lifespan(): ...` (closes its pool; optional:
    # the pool also opens on the first request)
    # or standalone: uvicorn.run(receiver.app())

Deliveries are stored on an asyncio pool of the receiver's own (``connector.async_pool``, on
the connector's database, opened in the server's event loop): an answer never waits for a
connection that a slow API request holds.

Each delivery is authenticated by the unguessable URL secret of its account
(``loyverse_inbound_settings.url_secret``) and, when the account has an OAuth client secret,
by ``X-Loyverse-Signature``: HMAC-SHA1 of the raw body keyed by that secret, lowercase hex
(base64 is accepted too, API.md section 8). It is then stored as received with one call of
``loyverse.receive_loyverse_delivery`` (one INSERT; a redelivery of the same bytes is a no-op)
which also defers the apply job, and answered at once. Refusals are 4xx with a JSON error and
an audit row (``DELIVERY_REJECTED``); a database outage is 503 (Loyverse retries for 48 h).
Nothing is parsed before it is stored; a stored body that is not a JSON object still gets 400
(the apply job records it as failed).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import psycopg_pool
from psycopg.types import json as pg_json
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from loyverse_sync import crypto, db, queries

logger = logging.getLogger("loyverse_sync.receiver")

PATH = "/loyverse/webhooks/{secret}"
SIGNATURE_HEADER = "x-loyverse-signature"
MAX_BODY = 10 * 1024 * 1024  # 100 full items are far below this
# headers worth keeping with a delivery (no cookies, no proxies' internals)
KEPT_HEADERS = ("content-type", "content-length", "user-agent", "x-loyverse-signature", "x-loyverse-api-version",
                "x-forwarded-for")


def signature_ok(body: bytes, secret: str, header: str | None) -> bool:
    """Whether ``header`` is HMAC-SHA1(secret, body) as lowercase hex (or base64)."""
    if not header:
        return False
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha1).digest()
    given = header.strip()
    if hmac.compare_digest(given.lower().encode(), digest.hex().encode()):
        return True
    try:
        decoded = base64.b64decode(given, validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(decoded, digest)


class Receiver:
    """The receiver's route and its asyncio connection pool (made from ``connector``)."""

    def __init__(self, connector: db.Connector, *, keys: list[bytes] | None = None, path: str = PATH,
                 max_body: int = MAX_BODY) -> None:
        self.connector = connector
        self._pool: psycopg_pool.AsyncConnectionPool[Any] | None = None
        self._keys = keys
        self._secrets: dict[tuple[bytes, str], str] = {}  # ciphertext, key id -> client secret
        self._lock = threading.Lock()
        self.path = path
        self.max_body = max_body
        self.routes = [Route(path, self.handle, methods=["POST"], name="loyverse_webhook")]

    async def _get_pool(self) -> psycopg_pool.AsyncConnectionPool[Any]:
        if self._pool is None:
            pool = self.connector.async_pool(role="receiver", max_size=4)
            if self._pool is None:
                self._pool = pool
                await pool.open()
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any = None) -> AsyncIterator[None]:
        """Open the pool with the app, close it on shutdown."""
        await self._get_pool()
        try:
            yield
        finally:
            await self.close()

    def app(self) -> Starlette:
        """A standalone ASGI app serving only the receiver."""
        return Starlette(routes=self.routes, lifespan=self.lifespan)

    def _client_secret(self, ciphertext: bytes, key_id: str) -> str:
        cache_key = (bytes(ciphertext), key_id)
        with self._lock:
            secret = self._secrets.get(cache_key)
        if secret is None:
            keys = self._keys if self._keys is not None else crypto.load_keys()
            secret = crypto.decrypt(ciphertext, key_id, keys, account="(webhook signing secret)")
            with self._lock:
                self._secrets[cache_key] = secret
        return secret

    async def _reject(self, conn: Any, account_id: int | None, status: int, reason: str,
                      details: dict[str, Any]) -> JSONResponse:
        try:
            await conn.execute(queries.get("inbound", "record_rejected"),
                               {"account_id": account_id, "reason": reason, "details": pg_json.Jsonb(details)})
        except psycopg.Error:
            logger.exception("could not audit a rejected delivery (%s)", reason)
        return JSONResponse({"error": reason}, status_code=status)

    async def handle(self, request: Request) -> JSONResponse:
        """POST /loyverse/webhooks/{secret}: authenticate, store as received, answer."""
        secret = request.path_params.get("secret", "")
        client = request.client.host if request.client else None
        body = bytearray()
        too_large = False
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > self.max_body:
                too_large = True
                break
        try:
            pool = await self._get_pool()
            async with pool.connection() as conn:
                cur = await conn.execute(queries.get("inbound", "account_for_secret"), {"secret": secret})
                row = await cur.fetchone()
                details = {"client": client, "bytes": len(body)}
                if row is None:
                    return await self._reject(conn, None, 404, "unknown webhook URL", details)
                account_id = int(row["account_id"])
                if too_large:
                    return await self._reject(conn, account_id, 413,
                                              f"body larger than {self.max_body} bytes", details)
                if not body:
                    return await self._reject(conn, account_id, 400, "empty body", details)
                if row["client_secret_ciphertext"] is not None:
                    try:
                        client_secret = self._client_secret(row["client_secret_ciphertext"],
                                                            row["client_secret_key_id"])
                    except crypto.KeyError_ as exc:
                        logger.error("account %s: %s", account_id, exc)
                        return JSONResponse({"error": "signing secret unavailable"}, status_code=503)
                    if not signature_ok(bytes(body), client_secret, request.headers.get(SIGNATURE_HEADER)):
                        reason = ("missing X-Loyverse-Signature" if SIGNATURE_HEADER not in request.headers
                                  else "bad X-Loyverse-Signature")
                        return await self._reject(conn, account_id, 401, reason, details)
                headers = {k: v for k, v in request.headers.items() if k.lower() in KEPT_HEADERS}
                cur = await conn.execute(queries.get("inbound", "receive"), {
                    "account_id": account_id, "source": "webhook", "headers": pg_json.Jsonb(headers),
                    "body": bytes(body)})
                stored = await cur.fetchone()
        except (psycopg.Error, psycopg_pool.PoolTimeout, OSError):
            logger.exception("webhook delivery not stored")
            return JSONResponse({"error": "temporarily unavailable"}, status_code=503)
        inbox_id = stored["id"] if stored else None
        # Stored as received; a body that is not a JSON object is still refused (4xx), and the
        # apply job marks its row failed with an audit row.
        try:
            doc = json.loads(bytes(body))
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            return JSONResponse({"error": "body is not a JSON object", "inbox_id": inbox_id}, status_code=400)
        return JSONResponse({"received": True, "inbox_id": inbox_id, "duplicate": inbox_id is None})
