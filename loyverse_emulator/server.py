"""The emulator's HTTP server: Loyverse's /v1.0 API plus the /_emulator admin endpoints.

Standard library only (`http.server.ThreadingHTTPServer`, HTTP/1.1 keep-alive): owning the
socket is what lets a fault close a connection without a response or hang on it, and each
response goes out in one `sendall` with TCP_NODELAY so keep-alive clients never wait on
Nagle/delayed-ACK. See docs/emulator.md and bench/emulator_throughput.py.
"""

from __future__ import annotations

import contextlib
import http
import http.server
import json
import os
import random
import secrets
import socket
import sys
import threading
import time
import traceback
import urllib.parse
from typing import Any

from loyverse_emulator import loader, menu, resources, webhooks
from loyverse_emulator import state as st

API_PREFIX = "/v1.0"
ADMIN_PREFIX = "/_emulator"
OAUTH_TOKEN_PATH = "/oauth/token"

# code, decimals, country, business name
_MERCHANTS = [
    ("EUR", 2, "FR", "Café Nord"),
    ("JPY", 0, "JP", "Ramen Yokochō 横丁"),
    ("GBP", 2, "GB", "The Crown Kitchen"),
    ("USD", 2, "US", "Route 66 Diner"),
]
DEMO_ITEMS = 40
DEMO_ITEMS_OTHER = 15


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def build_state(
    *,
    menu_spec: str | int = "demo",
    seed: int = 0,
    time_scale: float = 1.0,
    token: str | None = None,
    merchants: int = 2,
    stores: int = 2,
    state_from: str | None = None,
    rich_menu: bool = False,
) -> st.State:
    """A fresh state: `merchants` accounts with generated stores, tokens and menus
    (`rich_menu`: with composite items, suppliers, purchase costs, ...; menu.generate)."""
    if merchants < 1:
        raise ValueError("merchants must be >= 1")
    if stores < 1:
        raise ValueError("stores must be >= 1")
    if isinstance(menu_spec, str) and menu_spec not in ("demo", "empty"):
        try:
            menu_spec = int(menu_spec)
        except ValueError:
            raise ValueError(
                f"menu must be 'demo', 'empty' or a number of items, not {menu_spec!r}"
            ) from None
    if isinstance(menu_spec, int) and not 0 <= menu_spec <= 100_000:
        raise ValueError("menu size must be between 0 and 100000")
    state = st.State(time_scale=time_scale)
    rng = random.Random(f"merchants-{seed}")
    for index in range(merchants):
        code, decimals, country, name = _MERCHANTS[index % len(_MERCHANTS)]
        if index >= len(_MERCHANTS):
            name = f"{name} {index + 1}"
        created = menu.BASE_MS - 400 * 86_400_000 + index * 86_400_000
        profile = {
            "id": menu._uuid(rng),
            "business_name": name,
            "email": f"owner{index + 1}@example.com",
            "country": country,
            "currency": {"code": code, "decimal_places": decimals},
            "created_at": st.iso_from_ms(created),
        }
        merchant = st.Merchant(profile, time_scale=time_scale)
        merchant.tokens.append(token if (index == 0 and token) else secrets.token_hex(16))
        store_objs = menu.make_stores(
            stores if index == 0 else 1, seed=seed * 100 + index, country_code=country
        )
        menu.load_into(merchant, {"stores": store_objs})
        if menu_spec != "empty":
            n_items = (
                (DEMO_ITEMS if menu_spec == "demo" else int(menu_spec))
                if index == 0
                else DEMO_ITEMS_OTHER
            )
            generated = menu.generate(
                n_items,
                [s["id"] for s in store_objs],
                seed=seed * 100 + index,
                decimal_places=decimals,
                rich=rich_menu,
            )
            menu.load_into(merchant, generated)
        if index == 0 and state_from:
            loader.load_into(merchant, state_from)
        state.add_merchant(merchant)
    return state


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], emulator: EmulatorServer) -> None:
        self.emulator = emulator
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that resets or closes a keep-alive connection (a worker stopping, a
        # timed-out request) is normal traffic for a server, not a traceback on stderr.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LoyverseEmulator/1.0"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log is at /_emulator/requests

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    # -- plumbing ----------------------------------------------------------------------------

    def _send(
        self,
        status: int,
        payload: bytes,
        headers: list[tuple[str, str]] | None = None,
        content_type: str | None = None,
    ) -> None:
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        lines = [
            f"HTTP/1.1 {status} {reason}",
            f"Content-Type: {content_type or 'application/json; charset=utf-8'}",
            f"Content-Length: {len(payload)}",
        ]
        lines.extend(f"{k}: {v}" for k, v in headers or ())
        if self.close_connection:
            lines.append("Connection: close")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)

    def _drop(self) -> None:
        """Close the connection without sending anything."""
        self.close_connection = True

    def _handle(self, method: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        body = self.rfile.read(length) if length > 0 else b""
        split = urllib.parse.urlsplit(self.path)
        path = split.path
        try:
            if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
                self._api(method, path, split.query, body)
            elif path.rstrip("/") == OAUTH_TOKEN_PATH:
                status, doc = self.server.emulator.state.oauth.token_request(
                    method, self.headers.get("Content-Type") or "", body
                )
                self._send(status, _dumps(doc), [("Cache-Control", "no-store")])
            elif path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
                self._admin(method, path[len(ADMIN_PREFIX) :].strip("/"), split.query, body)
            else:
                self._send(404, _dumps(st.error_body("NOT_FOUND", f"Path '{path}' not found")))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # -- /v1.0 ---------------------------------------------------------------------------------

    def _api(self, method: str, path: str, query_string: str, body: bytes) -> None:
        emu = self.server.emulator
        state = emu.state
        started = time.perf_counter()
        rel = path[len(API_PREFIX) :] or "/"
        entry: dict[str, Any] = {
            "time": st.iso_from_ms(time.time_ns() // 1_000_000),
            "method": method,
            "path": path,
            "query": query_string,
            "status": None,
            "merchant_id": None,
            "fault": None,
        }
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            try:
                entry["body"] = json.loads(body) if body else None
            except ValueError:
                entry["body"] = body.decode("utf-8", "replace")
        auth = state.authenticate(self.headers.get("Authorization"))
        if auth is None:
            self._finish_api(
                entry,
                started,
                None,
                401,
                st.error_body("UNAUTHORIZED", "Authorization is missing or the token is invalid"),
            )
            return
        merchant, token = auth
        entry["merchant_id"] = merchant.id
        with state.lock:
            merchant.counters["requests"] += 1
            fault = merchant.faults.before(method, rel)
            hang = merchant.faults.hang_seconds
            delay = merchant.faults.delay_seconds
            retry_after = merchant.modes.get("retry_after")
        entry["fault"] = fault
        extra_headers = [("Retry-After", _retry_after(retry_after))] if retry_after else []
        if fault == "slow":
            emu.stopping.wait(delay)
        elif fault in ("timeout", "drop"):
            if fault == "timeout":
                emu.stopping.wait(hang)
            self._finish_api(entry, started, merchant, None, None)
            return
        elif fault == "500":
            self._finish_api(
                entry,
                started,
                merchant,
                500,
                st.error_body("INTERNAL_SERVER_ERROR", "Injected fault"),
            )
            return
        elif fault == "429":
            self._finish_api(
                entry,
                started,
                merchant,
                429,
                st.error_body("RATE_LIMITED", "Rate limit exceeded"),
                extra_headers,
            )
            return
        with state.lock:
            admitted = merchant.take_rate_budget(time.monotonic())
        if not admitted:
            self._finish_api(
                entry,
                started,
                merchant,
                429,
                st.error_body("RATE_LIMITED", "Rate limit exceeded"),
                extra_headers,
            )
            return
        query = {
            k: v[-1] for k, v in urllib.parse.parse_qs(query_string, keep_blank_values=True).items()
        }
        ctx = resources.Context(state=state, merchant=merchant, token=token)
        headers: list[tuple[str, str]] = []
        after: str | None = None
        try:
            with state.lock:
                result = resources.route(ctx, method, rel, query, body)
                payload = _dumps(result)
                status = 200
                if ctx.wrote:
                    merchant.counters["writes"] += 1
                    after = merchant.faults.after_write(method, rel)
                if ctx.events:
                    now = state.now_ms(merchant)
                    for hook_type, arrays in ctx.events:
                        emu.dispatcher.emit(merchant, hook_type, arrays, now)
        except st.ApiError as exc:
            status, payload = exc.status, _dumps(exc.body())
            if status == 405:
                headers.append(("Allow", "GET, POST, DELETE"))
        except Exception:  # an emulator bug must still answer like a server would
            traceback.print_exc(file=sys.stderr)
            status, payload = 500, _dumps(st.error_body("INTERNAL_SERVER_ERROR", "Emulator error"))
        if after is not None:
            entry["fault"] = f"after_write:{after}"
            if after == "drop":
                self._finish_api(entry, started, merchant, None, None)
            else:
                self._finish_api(
                    entry,
                    started,
                    merchant,
                    500,
                    st.error_body(
                        "INTERNAL_SERVER_ERROR", "Injected fault after the write was applied"
                    ),
                )
            return
        if status == 200:
            with state.lock:
                mangled = merchant.faults.rewrite(method, rel, status, result)
            if mangled is not None:
                entry["fault"] = "mangle"
                status, payload, content_type = mangled
                self._finish_api(entry, started, merchant, status, payload, headers, content_type)
                return
        self._finish_api(entry, started, merchant, status, payload, headers)

    def _finish_api(
        self,
        entry: dict[str, Any],
        started: float,
        merchant: st.Merchant | None,
        status: int | None,
        payload: Any,
        headers: list[tuple[str, str]] | None = None,
        content_type: str | None = None,
    ) -> None:
        """Log and count the response, then send it (or withhold it, when status is None).

        Logging first means a client that has its answer always finds it in the log."""
        state = self.server.emulator.state
        entry["status"] = status
        entry["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
        with state.lock:
            if merchant is not None:
                key = str(status) if status is not None else (entry["fault"] or "no_response")
                by_status = merchant.counters["by_status"]
                by_status[key] = by_status.get(key, 0) + 1
                if status == 429:
                    merchant.counters["rate_limited"] += 1
            state.log_request(entry)
        if status is None:
            self._drop()
        else:
            self._send(
                status,
                payload if isinstance(payload, bytes) else _dumps(payload),
                headers,
                content_type,
            )

    # -- /_emulator ----------------------------------------------------------------------------

    def _admin(self, method: str, route: str, query_string: str, body: bytes) -> None:
        emu = self.server.emulator
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(query_string).items()}
        try:
            doc: dict[str, Any] = {}
            if method == "POST" and body:
                doc = json.loads(body)
                if not isinstance(doc, dict):
                    raise ValueError("body must be a JSON object")
            status, result = 200, emu.admin_call(method, route, query, doc)
        except KeyError as exc:
            status, result = 404, {"error": f"unknown {exc.args[0] if exc.args else 'resource'}"}
        except (ValueError, TypeError) as exc:
            status, result = 400, {"error": str(exc)}
        self._send(status, _dumps(result))


def _retry_after(value: Any) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else str(number)


class EmulatorServer:
    """A stateful Loyverse emulator on a real socket.

    `menu` is "demo", "empty" or a number of items for the first merchant; `time_scale` X
    divides the rate-limit window (X=100: 300 requests per 3 s); `token` fixes the first
    merchant's first token. `stores_merge`, `default_price_moves_stores`, `retry_after`,
    `post_semantics` ("merge" or "whole"), `webhooks_list` ("object" or "array") and
    `webhook_https_only` set the [UNKNOWN] modes for every merchant (docs/emulator.md).
    `rich_menu` fills the generated menus' composite items, suppliers, purchase costs, ...
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        menu: str | int = "demo",
        seed: int = 0,
        time_scale: float = 1.0,
        token: str | None = None,
        merchants: int = 2,
        stores: int = 2,
        state_file: str | None = None,
        state_from: str | None = None,
        *,
        stores_merge: str = "merge",
        default_price_moves_stores: bool = False,
        retry_after: float | None = None,
        webhook_attempts: int = 3,
        oauth_apps: bool = False,
        post_semantics: str = "merge",
        webhooks_list: str = "object",
        webhook_https_only: bool = False,
        rich_menu: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.state_file = state_file
        if state_file and os.path.exists(state_file):
            try:
                with open(state_file, encoding="utf-8") as fh:
                    self.state = st.State.from_json(json.load(fh), time_scale=time_scale)
            except ValueError as exc:  # not JSON, or not a state `--state` saved
                raise ValueError(f"--state {state_file}: {exc}") from None
            if token and token not in self.state.tokens:
                self.state.add_token(self.state.merchant().id, token)
        else:
            self.state = build_state(
                menu_spec=menu, seed=seed, time_scale=time_scale, token=token,
                merchants=merchants, stores=stores, state_from=state_from, rich_menu=rich_menu,
            )  # fmt: skip
        for merchant in self.state.merchants.values():
            self.state.set_modes(
                merchant.id,
                stores_merge=stores_merge,
                default_price_moves_stores=default_price_moves_stores,
                retry_after=retry_after,
                post_semantics=post_semantics,
                webhooks_list=webhooks_list,
                webhook_https_only=webhook_https_only,
            )
            merchant.faults.update(seed=seed)
        #: with ``oauth_apps``: one OAuth app per merchant, with its first token pair
        #: (``[{"client_id", "client_secret", "merchant_id", "access_token", "refresh_token", ...}]``)
        self.oauth_apps: list[dict[str, Any]] = (
            [self.state.oauth.create_app(m) for m in self.state.merchants] if oauth_apps else []
        )
        self.dispatcher = webhooks.Dispatcher(self.state, attempts=webhook_attempts)
        self.stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> EmulatorServer:
        """Bind and serve in a background thread; port=0 picks a free port."""
        if self._httpd is not None:
            return self
        self.stopping.clear()
        self._httpd = _HTTPServer((self.host, self.port), self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="emulator-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections, flush webhooks, save the state file."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self.stopping.set()
        httpd.shutdown()
        with httpd.connections_lock:
            conns = list(httpd.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self.dispatcher.close()
        if self.state_file:
            self.state.save(self.state_file)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Start and block until `stop()` is called (from a signal handler, say)."""
        self.start()
        self.stopping.wait()

    # -- addresses and merchants -------------------------------------------------------------

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + API_PREFIX

    @property
    def admin_url(self) -> str:
        return self.url + ADMIN_PREFIX

    @property
    def token_url(self) -> str:
        """The OAuth token endpoint (``POST``, form-encoded)."""
        return self.url + OAUTH_TOKEN_PATH

    @property
    def merchants(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return [m.summary() for m in self.state.merchants.values()]

    @property
    def token(self) -> str:
        """The first merchant's first token."""
        return str(self.merchants[0]["tokens"][0])

    def admin(self) -> Any:
        """An `admin.AdminClient` for this server (close it, or use it as a context manager)."""
        from loyverse_emulator import admin

        return admin.AdminClient(self.admin_url)

    # -- admin API (also used in-process) ----------------------------------------------------

    def admin_call(
        self, method: str, route: str, query: dict[str, str], doc: dict[str, Any]
    ) -> Any:
        """Serve one /_emulator request; raises KeyError (404) or ValueError (400)."""
        state = self.state
        merchant_id = doc.pop("merchant_id", None) or query.get("merchant_id") or None
        if merchant_id is not None and merchant_id not in state.merchants:
            raise KeyError(f"merchant {merchant_id}")
        if route == "oauth" or route.startswith("oauth/"):
            from loyverse_emulator import oauth

            return oauth.admin(state.oauth, method, route, doc, merchant_id)
        if method == "GET":
            if route == "health":
                return {"status": "ok", "merchants": len(state.merchants)}
            if route == "merchants":
                return {"merchants": self.merchants}
            if route == "requests":
                since = int(query.get("since") or 0)
                limit = int(query["limit"]) if query.get("limit") else None
                rows = state.requests_since(since, merchant_id, limit)
                return {"requests": rows, "last_id": rows[-1]["id"] if rows else since}
            if route == "counters":
                counters = state.counters()
                return {
                    "merchants": {merchant_id: counters[merchant_id]} if merchant_id else counters
                }
            if route == "state":
                return {"merchants": state.dump(merchant_id)}
            if route == "price-changes":
                rows = state.price_changes_since(int(query.get("since") or 0), merchant_id)
                return {"price_changes": rows}
            if route == "webhook-deliveries":
                with state.lock:
                    rows = [dict(d) for d in state.webhook_deliveries]
                return {"deliveries": rows}
            if route == "faults":
                with state.lock:
                    return {
                        "merchants": {
                            m.id: m.faults.to_dict()
                            for m in state.merchants.values()
                            if merchant_id in (None, m.id)
                        }
                    }
            if route == "modes":
                with state.lock:
                    return {
                        "merchants": {
                            m.id: dict(m.modes)
                            for m in state.merchants.values()
                            if merchant_id in (None, m.id)
                        }
                    }
        if method == "POST":
            if route == "faults":
                clear = bool(doc.pop("clear", False))
                return {
                    "merchant_id": state.merchant(merchant_id).id,
                    "faults": state.set_faults(merchant_id, clear=clear, **doc),
                }
            if route == "modes":
                return {
                    "merchant_id": state.merchant(merchant_id).id,
                    "modes": state.set_modes(merchant_id, **doc),
                }
            if route == "reset":
                flags = {
                    k: bool(doc.get(k, True))
                    for k in ("log", "counters", "rate_limit", "price_changes")
                }
                state.reset(**flags)
                return {"reset": flags}
            if route == "revoke-token":
                token = doc.get("token")
                if not isinstance(token, str):
                    raise ValueError("token is required")
                if not state.revoke_token(token):
                    raise KeyError("token")
                return {"revoked": token}
            if route == "tokens":
                token = state.add_token(
                    state.merchant(merchant_id).id,
                    doc.get("token"),
                    client_secret=doc.get("client_secret"),
                )
                return {
                    "merchant_id": state.tokens[token],
                    "token": token,
                    "oauth": doc.get("client_secret") is not None,
                }
            if route == "oauth-app":
                token, secret = doc.get("token"), doc.get("client_secret")
                if not isinstance(token, str) or not isinstance(secret, str):
                    raise ValueError("token and client_secret are required")
                state.mark_oauth(token, secret)
                return {"token": token, "oauth": True}
            if route == "backoffice":  # a person in Loyverse's back office (backoffice.py)
                from loyverse_emulator import backoffice

                merchant = state.merchant(merchant_id)
                answer, events = backoffice.run(state, merchant, doc)
                with state.lock:
                    for hook_type, arrays in events:
                        self.dispatcher.emit(merchant, hook_type, arrays, state.now_ms(merchant))
                return answer
            if route == "webhook-faults":
                flush = bool(doc.pop("flush", False))
                faults = self.dispatcher.set_faults(**doc)
                return {"faults": faults, "flushed": self.dispatcher.flush_held() if flush else False}
            if route == "save":
                path = doc.get("path") or self.state_file
                if not path:
                    raise ValueError("no state file configured; pass a path")
                state.save(path)
                return {"saved": path}
        raise KeyError(f"admin route {method} /{route}")
