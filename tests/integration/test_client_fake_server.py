"""Client behaviour the emulator cannot produce: a misbehaving server, scripted here.

A tiny local http.server (a different fake from the emulator, used only for these cases)
repeats cursors, sends non-JSON bodies and wrong shapes, and pins exact error bodies.
"""

from __future__ import annotations

import http.server
import json
import logging
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from loyverse_sync.loyverse import client as lv_client
from loyverse_sync.loyverse import errors

TOKEN = "sekret-token-3f9a1c77"

Reply = tuple[int, dict[str, str], bytes]
Handler = Callable[[str, str, dict[str, list[str]], bytes], Reply]


class FakeServer:
    """Serves whatever ``handler`` returns; records (method, path, query) of each request."""

    def __init__(self) -> None:
        self.handler: Handler = lambda *_: (404, {}, b"")
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        fake = self

        class _Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fake.requests.append((self.command, url.path, query))
                status, headers, payload = fake.handler(self.command, url.path, query, body)
                self.send_response_only(status)
                if "Date" not in headers:
                    self.send_header("Date", self.date_time_string())
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1.0"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def _json(status: int, doc: Any, headers: dict[str, str] | None = None) -> Reply:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(doc).encode()


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = FakeServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def lv(fake: FakeServer) -> Iterator[lv_client.LoyverseClient]:
    with lv_client.LoyverseClient(
        fake.base_url, TOKEN, max_attempts=3, backoff_base=0.001, backoff_max=0.01
    ) as c:
        yield c


def test_repeated_cursor_raises_instead_of_looping(
    fake: FakeServer, lv: lv_client.LoyverseClient
) -> None:
    def handler(method: str, path: str, query: dict[str, list[str]], body: bytes) -> Reply:
        cursor = query.get("cursor", [None])[0]
        # page 1 -> A, page A -> B, page B -> A again: a loop.
        nxt = {None: "A", "A": "B", "B": "A"}[cursor]
        return _json(200, {"items": [{"id": f"item-{cursor}"}], "cursor": nxt})

    fake.handler = handler
    seen = []
    with pytest.raises(errors.RepeatedCursor) as info:
        for item in lv.iter_items():
            seen.append(item["id"])
    assert seen == ["item-None", "item-A", "item-B"]
    assert info.value.cursor == "A"
    assert "REPEATED_CURSOR" in str(info.value)
    assert len(fake.requests) == 3


def test_empty_pages_with_a_cursor_continue_but_are_bounded(
    fake: FakeServer, lv: lv_client.LoyverseClient
) -> None:
    def handler(method: str, path: str, query: dict[str, list[str]], body: bytes) -> Reply:
        n = int(query.get("cursor", ["0"])[0])
        if n == 2:
            return _json(200, {"items": [{"id": "late"}], "cursor": "3"})
        return _json(200, {"items": [], "cursor": str(n + 1)})

    fake.handler = handler
    # Empty pages before the data are followed; an endless run of them is not.
    with pytest.raises(errors.MalformedResponse) as info:
        ids = [item["id"] for item in lv.iter_items()]
    assert info.value.code == "TOO_MANY_EMPTY_PAGES"
    assert len(fake.requests) == 3 + lv_client.MAX_EMPTY_PAGES + 1

    fake.requests.clear()
    fake.handler = lambda m, p, q, b: (
        _json(200, {"items": [], "cursor": "x"})
        if "cursor" not in q
        else _json(200, {"items": [{"id": "z"}]})
    )
    ids = [item["id"] for item in lv.iter_items()]
    assert ids == ["z"]


def test_last_page_is_the_one_without_a_cursor(
    fake: FakeServer, lv: lv_client.LoyverseClient
) -> None:
    fake.handler = lambda m, p, q, b: (
        _json(200, {"categories": [{"id": "1"}], "cursor": "next"})
        if "cursor" not in q
        else _json(200, {"categories": [{"id": "2"}], "cursor": None})
    )
    assert [c["id"] for c in lv.iter_categories()] == ["1", "2"]
    assert fake.requests[0][2]["limit"] == ["250"]
    assert fake.requests[1][2]["cursor"] == ["next"]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ((200, {"Content-Type": "text/html"}, b"<html>Bad gateway page</html>"), "a JSON body"),
        (_json(200, {"data": []}), '"items" array'),
        (_json(200, ["not", "an", "object"]), '"items" array'),
        (_json(200, {"items": [1, 2]}), '"items" array'),
        (_json(200, {"items": [], "cursor": 42}), '"cursor"'),
    ],
)
def test_malformed_pages_name_the_endpoint_and_what_was_expected(
    fake: FakeServer, lv: lv_client.LoyverseClient, reply: Reply, expected: str
) -> None:
    fake.handler = lambda *_: reply
    with pytest.raises(errors.MalformedResponse) as info:
        list(lv.iter_items())
    message = str(info.value)
    assert message.startswith("GET /items -> 200 MALFORMED_RESPONSE")
    assert expected in message
    assert not info.value.retryable
    assert len(fake.requests) == 1  # not retried


@pytest.mark.parametrize(
    ("status", "code", "exc_type", "retryable"),
    [
        (400, "INVALID_VALUE", errors.ValidationError, False),
        (400, "MISSING_REQUIRED_PARAMETER", errors.ValidationError, False),
        (400, "INVALID_CURSOR", errors.InvalidCursor, False),
        (401, "UNAUTHORIZED", errors.Unauthorized, False),
        (402, "PAYMENT_REQUIRED", errors.PaymentRequired, False),
        (403, "FORBIDDEN", errors.Forbidden, False),
        (404, "NOT_FOUND", errors.NotFound, False),
        (429, "RATE_LIMITED", errors.RateLimited, True),
        (500, "INTERNAL_SERVER_ERROR", errors.ServerError, True),
        (503, None, errors.ServerError, True),
    ],
)
def test_error_bodies_become_typed_exceptions(
    fake: FakeServer,
    lv: lv_client.LoyverseClient,
    status: int,
    code: str | None,
    exc_type: type[errors.LoyverseError],
    retryable: bool,
) -> None:
    if code is None:
        fake.handler = lambda *_: (status, {"Content-Type": "text/plain"}, b"upstream unavailable")
    else:
        fake.handler = lambda *_: _json(
            status, {"errors": [{"code": code, "details": "why", "field": "object.x"}]}
        )
    with pytest.raises(exc_type) as info:
        lv.get_item("abc")
    exc = info.value
    assert exc.status == status
    assert exc.retryable is retryable
    assert exc.method == "GET" and exc.path == "/items/abc"
    if code:
        assert (exc.code, exc.details, exc.field) == (code, "why", "object.x")
        assert str(exc) == f"GET /items/abc -> {status} {code}: why (field object.x)"
    else:
        assert "upstream unavailable" in str(exc)
    assert len(fake.requests) == (3 if retryable else 1)


def test_retry_after_http_date_and_seconds_are_honoured(fake: FakeServer) -> None:
    slept: list[float] = []
    replies = iter(
        [
            _json(429, {"errors": [{"code": "RATE_LIMITED"}]}, {"Retry-After": "2"}),
            _json(
                429,
                {"errors": [{"code": "RATE_LIMITED"}]},
                {"Retry-After": "Thu, 01 Jan 1970 00:00:00 GMT"},
            ),
            _json(200, {"id": "m"}),
        ]
    )
    fake.handler = lambda *_: next(replies)
    with lv_client.LoyverseClient(
        fake.base_url, TOKEN, backoff_base=0.001, backoff_max=0.01, sleep=slept.append
    ) as lv:
        assert lv.get_merchant() == {"id": "m"}
    assert slept[0] >= 2.0  # at least Retry-After
    assert slept[1] < 0.02  # a date in the past: just the jittered backoff


def test_token_never_appears_in_logs_errors_or_records(
    fake: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    records: list[lv_client.RequestRecord] = []
    fake.handler = lambda *_: _json(
        401, {"errors": [{"code": "UNAUTHORIZED", "details": "bad token"}]}
    )
    caplog.set_level(logging.DEBUG, logger="loyverse_sync")
    with lv_client.LoyverseClient(fake.base_url, TOKEN, on_request=records.append) as lv:
        assert TOKEN not in repr(lv)
        with pytest.raises(errors.Unauthorized) as info:
            lv.list_stores()
    texts = [str(info.value), repr(info.value), repr(vars(info.value)), *map(repr, records)]
    texts += [r.getMessage() for r in caplog.records]
    assert caplog.records, "the attempt is logged"
    assert all(TOKEN not in t for t in texts)
    assert str(info.value) == "GET /stores -> 401 UNAUTHORIZED: bad token"


def test_get_items_chunks_ids_and_keeps_the_requested_order(
    fake: FakeServer, lv: lv_client.LoyverseClient
) -> None:
    def handler(method: str, path: str, query: dict[str, list[str]], body: bytes) -> Reply:
        ids = query["items_ids"][0].split(",")
        if len(ids) > 120:
            return _json(414, {"errors": [{"code": "BAD_REQUEST", "details": "URI too long"}]})
        return _json(200, {"items": [{"id": i} for i in reversed(ids) if not i.endswith("7")]})

    fake.handler = handler
    wanted = [f"id-{n}" for n in range(600)]
    got = lv.get_items([*wanted, "id-0"])
    assert [i["id"] for i in got] == [i for i in wanted if not i.endswith("7")]
    sizes = [len(q["items_ids"][0].split(",")) for _, _, q in fake.requests]
    assert max(sizes) <= 250
    assert sum(s for s in sizes if s <= 120) == 600  # refused chunks were split, none lost


def test_read_items_splits_refused_chunks_too_and_notes_a_refused_single_id(
    fake: FakeServer, lv: lv_client.LoyverseClient
) -> None:
    def handler(method: str, path: str, query: dict[str, list[str]], body: bytes) -> Reply:
        ids = query["items_ids"][0].split(",")
        if len(ids) > 120 or "id-long" in ids:
            return _json(414, {"errors": [{"code": "BAD_REQUEST", "details": "URI too long"}]})
        return _json(200, {"items": [{"id": i} for i in ids if not i.endswith("7")]})

    fake.handler = handler
    wanted = [f"id-{n}" for n in range(600)]
    read = lv.read_items([*wanted, "id-long"], chunk_size=250)
    assert sorted(read.items) == sorted(i for i in wanted if not i.endswith("7"))
    assert not read.conflicts
    assert len(read.notes) == 1 and "414" in read.notes[0]  # the single id it cannot split
    assert max(len(q["items_ids"][0].split(",")) for _, _, q in fake.requests) <= 250
    assert [q["items_ids"][0] for _, _, q in fake.requests][-1] == "id-long"  # split down to itself


def test_safe_create_uses_the_servers_clock_to_skip_older_namesakes(fake: FakeServer) -> None:
    # The server's clock is 2 hours ahead of ours; an older "Latte" (no SKUs to tell them
    # apart) was created a minute before our POST by the server's clock.
    import datetime as dt
    import email.utils

    skew = dt.timedelta(hours=2)
    created: list[dict[str, Any]] = []

    def server_now() -> dt.datetime:
        return dt.datetime.now(dt.UTC) + skew

    def stamp(t: dt.datetime) -> str:
        return lv_client.format_timestamp(t)

    older = {
        "id": "old",
        "item_name": "Latte",
        "created_at": stamp(server_now() - dt.timedelta(minutes=1)),
        "variants": [],
    }

    def handler(method: str, path: str, query: dict[str, list[str]], body: bytes) -> Reply:
        date = {"Date": email.utils.format_datetime(server_now(), usegmt=True)}
        if method == "POST":
            created.append(
                {**json.loads(body), "id": "new", "created_at": stamp(server_now()), "variants": []}
            )
            return _json(500, {"errors": [{"code": "INTERNAL_SERVER_ERROR"}]}, date)
        since = lv_client.parse_timestamp(query["updated_at_min"][0])
        assert since is not None
        items = [i for i in [older, *created] if str(i["created_at"]) >= stamp(since)]
        return _json(200, {"items": items}, date)

    fake.handler = handler
    with lv_client.LoyverseClient(fake.base_url, TOKEN, backoff_base=0.001, backoff_max=0.01) as lv:
        item = lv.create_safely("/items", {"item_name": "Latte"}, find_existing=lambda since: next(
            (i for i in lv.iter_items(updated_at_min=since) if i["item_name"] == "Latte"), None))
    assert item["id"] == "new"
    assert [m for m, _, _ in fake.requests] == ["POST", "GET"]
    lookup_since = lv_client.parse_timestamp(fake.requests[1][2]["updated_at_min"][0])
    assert lookup_since is not None
    assert dt.timedelta(0) < server_now() - lookup_since < dt.timedelta(seconds=10)


def test_exceptions_survive_pickling_for_worker_processes() -> None:
    import pickle

    exc = errors.RateLimited(
        status=429, code="RATE_LIMITED", method="get", path="/items", retry_after=2.5
    )
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is errors.RateLimited
    assert (copy.retry_after, copy.method, str(copy)) == (2.5, "GET", str(exc))
    drop = errors.TransportFailure(method="POST", path="/items", code="TIMEOUT", sent=True)
    assert pickle.loads(pickle.dumps(drop)).ambiguous
