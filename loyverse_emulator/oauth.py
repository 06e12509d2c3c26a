"""The emulator's OAuth apps: expiring access tokens and a token endpoint (``POST /oauth/token``).

An app belongs to one merchant and has a client id and secret. Creating it (admin API) stands
for the merchant approving the app: it comes with a first access + refresh token pair, as the
authorization-code exchange would give. ``grant_type=refresh_token`` then returns a new pair.

* Access tokens expire ``ttl_seconds`` (43200, Loyverse's 12 h) of *emulated* time after issue;
  emulated time runs ``time_scale`` times faster than the wall clock, so ``expires_in`` says
  ``ttl_seconds / time_scale`` real seconds (time_scale 4320: 10 s). ``advance`` moves the
  emulated clock forward at once (a test's deterministic expiry). An expired token gets 401
  ``UNAUTHORIZED`` like any unknown token. Issuing a new pair leaves older access tokens valid
  until their own expiry (RFC 6749's usual reading; the reference does not say).
* Refresh tokens never expire, and with ``rotation`` "strict" (the default) each is valid for
  ONE use: a used one gets 400 ``invalid_grant`` (counted as ``reused``). "keep" returns the
  same refresh token again, which stays valid.
* ``lose_next`` N: the next N refreshes are applied (the old refresh token is spent, the new
  pair issued) but answered with a 500: the crash window between Loyverse's answer and our
  commit, made reproducible.

Errors follow RFC 6749 5.2: ``{"error": ..., "error_description": ...}``; 400
``invalid_request``/``unsupported_grant_type``/``invalid_grant``, 401 ``invalid_client``.
Nothing here is saved in a state file; tokens never go into the request log.
"""

from __future__ import annotations

import secrets
import threading
import time
import urllib.parse
from typing import Any

DEFAULT_TTL_SECONDS = 43200.0
ROTATIONS = ("strict", "keep")


class Registry:
    """OAuth apps, the tokens they issued, and what happened at the token endpoint."""

    def __init__(self, state: Any) -> None:
        self.state = state  # the emulator's State (add_token, time_scale, lock)
        self.lock: threading.RLock = state.lock
        self.ttl_seconds = DEFAULT_TTL_SECONDS
        self.rotation = "strict"
        self.lose_next = 0
        self.offset = 0.0  # real seconds added by advance()
        self.apps: dict[str, dict[str, Any]] = {}  # client_id -> {secret, merchant_id, stats}
        self.refresh_tokens: dict[str, str] = {}  # live refresh token -> client_id
        self.spent: set[str] = set()
        self.expiry: dict[str, float] = {}  # access token -> expiry (monotonic + offset)
        self.counters = {
            "refreshes": 0,
            "rejected": 0,
            "reused": 0,
            "expired_401": 0,
            "lost": 0,
            "issued": 0,
        }

    # -- clock ---------------------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic() + self.offset

    def ttl_real(self) -> float:
        return float(self.ttl_seconds) / float(self.state.time_scale)

    def advance(self, seconds: float) -> None:
        """Move the emulated clock forward by ``seconds`` (emulated)."""
        with self.lock:
            self.offset += float(seconds) / float(self.state.time_scale)

    # -- apps and tokens -----------------------------------------------------------------

    def create_app(
        self, merchant_id: str, client_id: str | None = None, client_secret: str | None = None
    ) -> dict[str, Any]:
        """A new app of ``merchant_id`` (approved by the merchant) and its first token pair."""
        with self.lock:
            client_id = client_id or "app-" + secrets.token_hex(8)
            if client_id in self.apps:
                raise ValueError(f"client_id {client_id!r} exists")
            self.apps[client_id] = {
                "client_secret": client_secret or secrets.token_urlsafe(24),
                "merchant_id": merchant_id,
                "refreshes": 0,
            }
            pair = self._issue(client_id, None)
            return {
                "client_id": client_id,
                "client_secret": self.apps[client_id]["client_secret"],
                "merchant_id": merchant_id,
                **pair,
            }

    def _issue(self, client_id: str, spent_refresh: str | None) -> dict[str, Any]:
        app = self.apps[client_id]
        access = secrets.token_hex(20)
        self.state.add_token(app["merchant_id"], access, client_secret=app["client_secret"])
        self.expiry[access] = self.now() + self.ttl_real()
        if spent_refresh is not None and self.rotation == "keep":
            refresh = spent_refresh
        else:
            refresh = secrets.token_urlsafe(30)
            if spent_refresh is not None:
                self.refresh_tokens.pop(spent_refresh, None)
                self.spent.add(spent_refresh)
            self.refresh_tokens[refresh] = client_id
        self.counters["issued"] += 1
        ttl = self.ttl_real()
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": int(ttl) if ttl == int(ttl) else round(ttl, 3),
            "refresh_token": refresh,
            "scope": "ITEMS_READ ITEMS_WRITE MERCHANT_READ STORES_READ TAXES_READ",
        }

    def expired(self, token: str) -> bool:
        """True (and counted) for an access token past its expiry."""
        with self.lock:
            at = self.expiry.get(token)
            if at is None or self.now() < at:
                return False
            self.counters["expired_401"] += 1
            return True

    def live(self, refresh_token: str) -> bool:
        """Whether ``refresh_token`` would be accepted now (a test's "not locked out")."""
        with self.lock:
            return refresh_token in self.refresh_tokens

    # -- the token endpoint ----------------------------------------------------------------

    def token_request(
        self, method: str, content_type: str, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        """Answer ``POST /oauth/token``: (status, JSON body)."""
        if method != "POST":
            return 405, _error("invalid_request", "use POST")
        if "application/x-www-form-urlencoded" not in (content_type or ""):
            return 400, _error(
                "invalid_request", "the body must be application/x-www-form-urlencoded"
            )
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace")).items()}
        grant = form.get("grant_type")
        if not grant:
            return 400, _error("invalid_request", "grant_type is required")
        if grant != "refresh_token":
            return 400, _error(
                "unsupported_grant_type", f"grant_type {grant!r} is not supported here"
            )
        with self.lock:
            app = self.apps.get(form.get("client_id", ""))
            if app is None or not secrets.compare_digest(
                app["client_secret"], form.get("client_secret", "")
            ):
                self.counters["rejected"] += 1
                return 401, _error("invalid_client", "unknown client or wrong client_secret")
            token = form.get("refresh_token")
            if not token:
                return 400, _error("invalid_request", "refresh_token is required")
            if self.refresh_tokens.get(token) != form["client_id"]:
                self.counters["rejected"] += 1
                if token in self.spent:
                    self.counters["reused"] += 1
                return 400, _error(
                    "invalid_grant", "the refresh token is invalid or was already used"
                )
            pair = self._issue(form["client_id"], token)
            self.counters["refreshes"] += 1
            app["refreshes"] += 1
            if self.lose_next > 0:
                self.lose_next -= 1
                self.counters["lost"] += 1
                return 500, _error("server_error", "injected: the pair was issued, the answer lost")
            return 200, pair

    # -- admin -----------------------------------------------------------------------------

    def configure(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Set ``ttl_seconds``, ``rotation``, ``lose_next``; raises ValueError naming the field."""
        with self.lock:
            for key, value in doc.items():
                if key == "ttl_seconds":
                    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                        raise ValueError("ttl_seconds must be a positive number (emulated seconds)")
                    self.ttl_seconds = float(value)
                elif key == "rotation":
                    if value not in ROTATIONS:
                        raise ValueError(f"rotation must be one of {', '.join(ROTATIONS)}")
                    self.rotation = value
                elif key == "lose_next":
                    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                        raise ValueError("lose_next must be an integer >= 0")
                    self.lose_next = value
                else:
                    raise ValueError(
                        f"unknown OAuth setting {key!r}; known: ttl_seconds, rotation, lose_next"
                    )
            return self.summary()

    def summary(self) -> dict[str, Any]:
        """Settings, counters and apps (client ids and counts, never secrets or tokens)."""
        with self.lock:
            return {
                "ttl_seconds": self.ttl_seconds,
                "expires_in": self.ttl_real(),
                "rotation": self.rotation,
                "lose_next": self.lose_next,
                "counters": dict(self.counters),
                "apps": {
                    cid: {
                        "merchant_id": a["merchant_id"],
                        "refreshes": a["refreshes"],
                        "live_refresh_tokens": sum(
                            1 for c in self.refresh_tokens.values() if c == cid
                        ),
                    }
                    for cid, a in self.apps.items()
                },
            }


def _error(code: str, description: str) -> dict[str, Any]:
    return {"error": code, "error_description": description}


def admin(
    registry: Registry, method: str, route: str, doc: dict[str, Any], merchant_id: str | None
) -> Any:
    """``/_emulator/oauth...``: GET oauth (summary), POST oauth (settings), POST oauth/apps
    (a new app + first pair), POST oauth/advance {"seconds"}. Raises KeyError for others."""
    if route == "oauth" and method == "GET":
        return registry.summary()
    if route == "oauth" and method == "POST":
        return registry.configure(doc)
    if route == "oauth/apps" and method == "POST":
        mid = merchant_id or registry.state.merchant().id
        cid, secret = doc.get("client_id"), doc.get("client_secret")
        for name, value in (("client_id", cid), ("client_secret", secret)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ValueError(f"{name} must be a non-empty string")
        return registry.create_app(mid, cid, secret)
    if route == "oauth/advance" and method == "POST":
        seconds = doc.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            raise ValueError("seconds must be a positive number (emulated seconds)")
        registry.advance(seconds)
        return registry.summary()
    raise KeyError(f"admin route {method} /{route}")
