"""OAuth accounts: an access token that expires, refreshed with a refresh token.

An account connected through a Loyverse OAuth app holds an access token that expires (12 h,
``expires_in`` 43200) and a refresh token that gets a new pair from
``POST https://api.loyverse.com/oauth/token`` (form: ``grant_type=refresh_token``,
``refresh_token``, ``client_id``, ``client_secret``). Loyverse may invalidate a refresh token
once it has been used (the emulator does, the strict reading), so a refresh token must be
spent at most once, by one process, and its successor stored before anything else happens.

``StoredTokens`` is the client's token provider (``LoyverseClient(token_provider=...)``). It
keeps only the access token in memory; the refresh token is read, spent and replaced inside
one transaction that holds the account's row lock (``for no key update``):

1. lock the row and read the stored pair;
2. if the stored access token is not the one this process holds, another process refreshed
   meanwhile: take it (refresh no further unless it too is about to expire);
3. else spend the refresh token, and write the new pair (encrypted) in the same transaction,
   committed at once: between the answer and the COMMIT there are only two encryptions and
   one UPDATE of a row we already hold.

Crash windows (a process dying, SIGKILL included, or losing its connection):

* before the token request leaves: the transaction rolls back and the lock goes with the
  connection; the stored pair is untouched and still valid; the next user refreshes.
* after Loyverse answered and before the COMMIT (about a millisecond): Loyverse has issued
  a pair we never stored. Under refresh-token rotation the stored refresh token is now dead.
  The stored access token still works until it expires (we refresh ahead of expiry, so
  normally minutes), then the next refresh is refused (``invalid_grant``): the account is
  marked ``token_valid = false``, its rows retry and then dead-letter with
  ``REFRESH_REJECTED``, ``loyverse-sync health`` names it, and an operator connects it again
  (``account add --oauth`` under a new name, or with the new tokens). No protocol can close
  this window without the server's help (a grace period for the old refresh token). A
  request that times out after it was sent is the same case. If only our COMMIT failed (the
  database went away) the new pair is still in memory: it is written once more on a new
  connection, over the spent pair only.
* after the COMMIT: the new pair is durable; every process reads it when its own access
  token is refused or about to expire (step 2). An access token issued before stays valid
  until its own expiry.

Only the two refresh outcomes that prove the grant is gone (``invalid_grant``,
``invalid_client``/``unauthorized_client``) mark the account: a 5xx, a 429 or a timeout
leaves it as it was and is retried like any other request.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
import time
import urllib.parse
from typing import Any

import httpx
import psycopg

from loyverse_sync import accounts, crypto, db, queries
from loyverse_sync.loyverse import client as client_mod
from loyverse_sync.loyverse import errors

logger = logging.getLogger("loyverse_sync.oauth")

TOKEN_PATH = "/oauth/token"
#: Refresh this long before the access token expires (at most a quarter of its lifetime).
REFRESH_AHEAD_SECONDS = 300.0
#: OAuth error codes (RFC 6749 5.2) that mean the grant or the app is no longer accepted.
REJECTING_ERRORS = frozenset({"invalid_grant", "invalid_client", "unauthorized_client"})


class RefreshRejected(errors.Unauthorized):
    """The token endpoint refused the refresh token or the app: the account must be connected
    again (a new authorisation). Nothing sent with it was applied."""


def token_url_for(base_url: str) -> str:
    """The token endpoint beside an API base URL: ``https://api.loyverse.com/v1.0`` ->
    ``https://api.loyverse.com/oauth/token`` (the emulator's likewise)."""
    parts = urllib.parse.urlsplit(base_url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, TOKEN_PATH, "", ""))


@dataclasses.dataclass(frozen=True)
class TokenPair:
    """What the token endpoint answered. ``expires_in`` is None when it did not say."""

    access_token: str
    refresh_token: str
    expires_in: float | None
    scope: str | None = None

    def __repr__(self) -> str:  # never the tokens
        return f"TokenPair(expires_in={self.expires_in!r}, scope={self.scope!r})"


def request_refresh(
    token_url: str,
    *,
    client_id: str,
    client_secret: str,
    refresh_token: str,
    timeout: float = 15.0,
    transport: httpx.BaseTransport | None = None,
) -> TokenPair:
    """Spend ``refresh_token`` at the token endpoint (one attempt, never retried: a second try
    could spend a refresh token the first one already replaced)."""
    path = urllib.parse.urlsplit(token_url).path or TOKEN_PATH
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": client_id,
        "client_secret": client_secret,
    }
    try:
        with httpx.Client(
            timeout=httpx.Timeout(timeout, connect=5.0), transport=transport, follow_redirects=False
        ) as http:
            response = http.post(token_url, data=form, headers={"Accept": "application/json"})
    except httpx.TransportError as exc:
        raise client_mod._transport_failure(exc, "POST", path) from None
    try:
        body = response.json()
    except ValueError:
        body = None
    status = response.status_code
    if status == 200 and isinstance(body, dict):
        access, refresh = body.get("access_token"), body.get("refresh_token")
        expires = body.get("expires_in")
        expires_in = (
            float(expires)
            if isinstance(expires, int | float) and not isinstance(expires, bool) and expires > 0
            else None
        )
        if isinstance(access, str) and access and isinstance(refresh, str) and refresh:
            scope = body.get("scope")
            return TokenPair(access, refresh, expires_in, scope if isinstance(scope, str) else None)
    if status == 200:
        keys = sorted(body) if isinstance(body, dict) else type(body).__name__
        raise errors.MalformedResponse(
            method="POST",
            path=path,
            status=status,
            expected="access_token and refresh_token",
            excerpt=f"keys {keys}",
        )
    code = body.get("error") if isinstance(body, dict) else None
    detail = body.get("error_description") if isinstance(body, dict) else None
    common: dict[str, Any] = {
        "status": status,
        "method": "POST",
        "path": path,
        "code": str(code) if code else None,
        "details": errors.excerpt(str(detail)) if detail else None,
    }
    if status in (400, 401) and code in REJECTING_ERRORS:
        common["code"] = "REFRESH_REJECTED"
        common["details"] = (
            f"{code}: {common['details'] or 'the refresh token is no longer accepted'}"
        )
        raise RefreshRejected(**common)
    if status == 429:
        raise errors.RateLimited(**common)
    if status >= 500:
        raise errors.ServerError(**common)
    raise errors.LoyverseError(**common)


def client_for(
    account: accounts.Account,
    connector: db.Connector,
    *,
    connection: psycopg.Connection[Any] | None = None,
    **kwargs: Any,
) -> client_mod.LoyverseClient:
    """A client for ``account``: its personal token, or for an OAuth account the stored
    access token, refreshed ahead of expiry and after a 401 (``kwargs`` go to the client)."""
    if account.auth_kind != "oauth":
        return client_mod.LoyverseClient(account.base_url, account.token, **kwargs)
    provider = StoredTokens(
        connector,
        account.id,
        connection=connection,
        http_timeout=float(kwargs.get("timeout", 15.0)),
    )
    return client_mod.LoyverseClient(account.base_url, token_provider=provider, **kwargs)


def _seal(
    keys: list[bytes], access_token: str, client_secret: str, refresh_token: str
) -> dict[str, Any]:
    token_ct, key_id = crypto.encrypt(access_token, keys)
    secret_ct, _ = crypto.encrypt(
        json.dumps({"client_secret": client_secret, "refresh_token": refresh_token}), keys
    )
    return {"token_ciphertext": token_ct, "oauth_ciphertext": secret_ct, "token_key_id": key_id}


def _require_filled(**values: str) -> None:
    """What an OAuth connection cannot do without: ValueError naming the first one empty."""
    for label, value in values.items():
        if not value or not value.strip():
            raise ValueError(f"the {label.replace('_', ' ')} is empty")


def _open_secrets(row: dict[str, Any], keys: list[bytes]) -> tuple[str, str]:
    doc = json.loads(
        crypto.decrypt(row["oauth_ciphertext"], row["token_key_id"], keys, account=row["name"])
    )
    return str(doc["client_secret"]), str(doc["refresh_token"])


def add_oauth_account(
    conn: psycopg.Connection[Any],
    *,
    name: str,
    client_id: str,
    client_secret: str,
    refresh_token: str,
    access_token: str | None = None,
    expires_in: float | None = None,
    base_url: str = "https://api.loyverse.com/v1.0",
    token_url: str | None = None,
    rate_limit_requests: int = 300,
    rate_limit_window_seconds: float = 300.0,
    keys: list[bytes] | None = None,
) -> int:
    """Store an OAuth account (all secrets encrypted); returns its id. Without an access
    token the first use refreshes; with one whose expiry is unknown, a 401 does."""
    _require_filled(client_id=client_id, client_secret=client_secret, refresh_token=refresh_token)
    access = (access_token or "").strip()
    sealed = _seal(
        keys or crypto.load_keys(create=True), access, client_secret.strip(), refresh_token.strip()
    )
    row = queries.execute(
        conn,
        "accounts",
        "insert_oauth_account",
        {
            "name": name,
            "base_url": base_url.rstrip("/"),
            "client_id": client_id.strip(),
            "token_url": token_url or token_url_for(base_url),
            "rate_limit_requests": rate_limit_requests,
            "rate_limit_window_seconds": rate_limit_window_seconds,
            "expires_in": (expires_in if access else 0.0),
            **sealed,
        },
    ).fetchone()
    assert row is not None
    return int(row["id"])


def connect_account(
    conn: psycopg.Connection[Any],
    account_id: int,
    *,
    client_id: str,
    client_secret: str,
    refresh_token: str,
    access_token: str | None = None,
    expires_in: float | None = None,
    token_url: str | None = None,
    keys: list[bytes] | None = None,
) -> None:
    """Connect an existing account through an OAuth app (a personal one switching over, or an
    OAuth one whose refresh token was refused): its queue, links and history stay."""
    _require_filled(client_id=client_id, client_secret=client_secret, refresh_token=refresh_token)
    with conn.transaction():
        row = queries.execute(conn, "accounts", "get_account", {"id": int(account_id)}).fetchone()
        if row is None:
            raise accounts.NotFound(f"no Loyverse account {account_id!r}")
        access = (access_token or "").strip()
        sealed = _seal(
            keys or crypto.load_keys(create=True),
            access,
            client_secret.strip(),
            refresh_token.strip(),
        )
        queries.execute(
            conn,
            "accounts",
            "connect_oauth",
            {
                "id": int(account_id),
                "client_id": client_id.strip(),
                "token_url": token_url or token_url_for(row["base_url"]),
                "expires_in": (expires_in if access else 0.0),
                **sealed,
            },
        )


class StoredTokens:
    """The access token of one OAuth account, refreshed ahead of expiry and after a 401.

    ``connection``: an autocommit connection to run on (the drain's own); else ``connector``
    lends one for each read or refresh (and always for storing a refreshed pair again after
    the first connection failed). ``clock`` is epoch seconds (tests inject it).
    Thread-safe; meant for one client (see the module docstring for the locking).
    """

    def __init__(
        self,
        connector: db.Connector,
        account_id: int,
        *,
        connection: psycopg.Connection[Any] | None = None,
        http_timeout: float = 15.0,
        clock: Any = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if connection is not None and not connection.autocommit:
            raise ValueError(
                "StoredTokens needs an autocommit connection (the refresh commits at once)"
            )
        self.connector = connector
        self.account_id = int(account_id)
        self.connection = connection
        self.http_timeout = http_timeout
        self.clock = clock
        self.transport = transport
        self.refreshes = 0  # by this provider
        self._access: str | None = None
        self._ciphertext: bytes | None = None
        self._expires_at: float | None = None
        self._lifetime: float | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"StoredTokens(account_id={self.account_id})"

    # -- the client's hook -------------------------------------------------------------------

    def token(self) -> str:
        """An access token to send now: refreshed first when it is about to expire."""
        with self._lock:
            if self._access is None:
                with self._conn() as conn:
                    row = self._tokens_row(conn, "oauth_tokens")
                self._adopt(row, crypto.load_keys())
            if self._due():
                self._refresh(force=False)
            assert self._access is not None
            return self._access

    def refresh(self) -> bool:
        """The token last handed out was refused (401): get a newer one, from the database if
        another process already refreshed, else from Loyverse. True when there is one."""
        with self._lock:
            before = self._access
            self._refresh(force=True)
            return self._access != before

    # -- internals ---------------------------------------------------------------------------

    def _due(self) -> bool:
        if not self._access:
            return True
        if self._expires_at is None:
            return False
        ahead = REFRESH_AHEAD_SECONDS
        if self._lifetime and self._lifetime > 0:
            ahead = min(ahead, self._lifetime / 4)
        return bool(self.clock() >= self._expires_at - ahead)

    def _adopt(self, row: dict[str, Any], keys: list[bytes]) -> None:
        self._access = crypto.decrypt(
            row["token_ciphertext"], row["token_key_id"], keys, account=row["name"]
        )
        self._ciphertext = bytes(row["token_ciphertext"])
        self._expires_at = row["expires_at"]
        self._lifetime = row["lifetime"]

    def _conn(self) -> contextlib.AbstractContextManager[psycopg.Connection[Any]]:
        if self.connection is not None:
            return contextlib.nullcontext(self.connection)
        return self.connector.connection()

    def _tokens_row(self, conn: psycopg.Connection[Any], query: str) -> dict[str, Any]:
        """The account's stored tokens (``query``: read, or lock for a refresh)."""
        row = queries.execute(conn, "accounts", query, {"id": self.account_id}).fetchone()
        if row is None:
            raise errors.Unauthorized(
                code="NOT_OAUTH",
                method="POST",
                path=TOKEN_PATH,
                details=f"account {self.account_id} is not an OAuth account",
            )
        return dict(row)

    def _refresh(self, *, force: bool) -> None:
        spent: bytes | None = None
        pair: TokenPair | None = None
        sealed: dict[str, Any] = {}
        rejected = False
        try:
            with self._conn() as conn, conn.transaction():
                row = self._tokens_row(conn, "oauth_tokens_for_refresh")
                keys = crypto.load_keys()  # after the lock: a key rotation that held it is visible
                if bytes(row["token_ciphertext"]) != self._ciphertext:
                    held = self._access
                    self._adopt(row, keys)  # refreshed by another process meanwhile
                    # (or only re-encrypted by a key rotation: the same token, which was refused)
                    if not self._due() and not (force and self._access == held):
                        return
                elif not force and not self._due_row(row):
                    return
                client_secret, refresh_token = _open_secrets(row, keys)
                try:
                    pair = request_refresh(
                        row["oauth_token_url"],
                        client_id=row["oauth_client_id"],
                        client_secret=client_secret,
                        refresh_token=refresh_token,
                        timeout=self.http_timeout,
                        transport=self.transport,
                    )
                except RefreshRejected:
                    # committed with the transaction (raising here would roll it back)
                    queries.execute(conn, "accounts", "refresh_rejected", {"id": self.account_id})
                    logger.error(
                        "account %s: Loyverse refused its refresh token; connect the account again",
                        row["name"],
                    )
                    rejected = True
                    return
                spent = bytes(row["oauth_ciphertext"])
                sealed = _seal(keys, pair.access_token, client_secret, pair.refresh_token)
                stored = queries.execute(
                    conn,
                    "accounts",
                    "store_refreshed_tokens",
                    {"id": self.account_id, "expires_in": pair.expires_in, **sealed},
                ).fetchone()
                assert stored is not None
            # committed
        except psycopg.Error:
            if pair is None or spent is None:
                raise
            stored = self._store_again(spent, pair, sealed)
        finally:
            if rejected:
                raise RefreshRejected(
                    code="REFRESH_REJECTED",
                    status=400,
                    method="POST",
                    path=TOKEN_PATH,
                    details="the refresh token was refused: connect the account again",
                )
        self.refreshes += 1
        self._access = pair.access_token
        self._ciphertext = bytes(sealed["token_ciphertext"])
        self._expires_at = stored["expires_at"]
        self._lifetime = stored["lifetime"]
        logger.info(
            "account %s: access token refreshed (expires in %s s)",
            self.account_id,
            "?" if pair.expires_in is None else f"{pair.expires_in:g}",
        )

    def _due_row(self, row: dict[str, Any]) -> bool:
        self._expires_at, self._lifetime = row["expires_at"], row["lifetime"]
        return self._due()

    def _store_again(self, spent: bytes, pair: TokenPair, sealed: dict[str, Any]) -> dict[str, Any]:
        """The refresh transaction's commit failed with the new pair in hand: write it on a new
        connection, but only over the pair we spent."""
        logger.warning(
            "account %s: storing the refreshed tokens failed; trying once more", self.account_id
        )
        with self.connector.connection() as conn:
            row = queries.execute(
                conn,
                "accounts",
                "store_refreshed_tokens_if_unchanged",
                {"id": self.account_id, "expires_in": pair.expires_in, "spent": spent, **sealed},
            ).fetchone()
        if row is None:
            raise errors.Unauthorized(
                code="REFRESH_LOST",
                method="POST",
                path=TOKEN_PATH,
                details="the refreshed tokens could not be stored",
            )
        return dict(row)
