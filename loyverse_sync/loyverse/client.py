"""A synchronous client for the Loyverse REST API v1.0 (the endpoints we use).

One ``httpx.Client`` per ``LoyverseClient`` (connection reuse). Every HTTP attempt first
asks the rate governor for a slot. Retries (tenacity, exponential backoff with full
jitter, at least ``Retry-After``) are limited to requests that are safe to repeat: GET,
DELETE, and POSTs that carry the object's id (an upsert). A POST without an id creates
an object, and Loyverse has no idempotency keys, so it is sent again only when the failure
proves it was not applied (429, connection refused); after an ambiguous failure (timeout,
dropped connection, 5xx) ``create_safely`` looks the object up first. See docs/client.md.

The token only ever lives in the ``Authorization`` header of the underlying httpx client:
it is never logged, stored on this object, or put in an exception. An expiring token (an
OAuth account) comes from a ``TokenProvider`` instead, asked before every attempt; after a
401 the provider refreshes once and the request is sent once more (a 401 was not applied).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import email.utils
import json
import logging
import random
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import httpx
import tenacity

from loyverse_sync.loyverse import errors
from loyverse_sync.loyverse import governor as governor_mod

logger = logging.getLogger("loyverse_sync.loyverse")

#: Loyverse rejects ``limit`` outside 1..250 with 400 INVALID_VALUE.
MAX_LIMIT = 250
#: Ids per request for the ``items_ids``-style filters (one comma-separated parameter).
IDS_PER_REQUEST = 250
#: Pages in a row that may come back empty but with a cursor before we give up.
MAX_EMPTY_PAGES = 20

Json = dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class RequestRecord:
    """One HTTP attempt, as passed to ``on_request`` (for metrics).

    ``endpoint`` is the path with ids replaced by ``{id}`` (a low-cardinality label);
    ``status`` is None when no response arrived; ``error_code`` is the Loyverse code or a
    client-side one (``TIMEOUT``, ``CONNECTION_DROPPED``, ``MALFORMED_RESPONSE``, ...).
    """

    method: str
    path: str
    endpoint: str
    status: int | None
    elapsed: float
    error_code: str | None
    attempt: int


class TokenProvider(Protocol):
    """Where a client gets an access token that can expire (``oauth.StoredTokens``)."""

    def token(self) -> str:
        """The access token to send now (refreshed first if it is about to expire)."""
        ...

    def refresh(self) -> bool:
        """The token last returned was refused with a 401: True if a newer one is ready."""
        ...


def format_timestamp(value: dt.datetime | str) -> str:
    """A datetime as Loyverse writes them (``2020-03-30T18:30:00.000Z``); strings pass through.

    Naive datetimes are taken as UTC.
    """
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_timestamp(value: Any) -> dt.datetime | None:
    """A Loyverse timestamp as an aware datetime; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _json_default(value: Any) -> Any:
    # Money comes from Postgres NUMERIC as Decimal; JSON wants a number. float() keeps
    # the shortest decimal form for prices (10.50 -> 10.5), exact below 15 digits.
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime):
        return format_timestamp(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _segment(object_id: str) -> str:
    text = str(object_id)
    if not text.strip():
        raise ValueError("an object id must not be empty")
    return urllib.parse.quote(text, safe="")


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return format_timestamp(value)
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(str(v) for v in value)
    return str(value)


_ssl_context: ssl.SSLContext | None = None
_ssl_context_lock = threading.Lock()


def _shared_ssl_context() -> ssl.SSLContext:
    """httpx's default verifying SSL context, built once per process.

    httpx builds one per client (even for http://: ~10-20 ms of CPU loading the CA bundle),
    and a worker makes a client per job. An SSLContext is safe to share between clients and
    threads; certificate checking is unchanged (the same context httpx would build).
    Built under a lock: with ``functools.cache`` the 50 drains that one price update started
    together all missed the cache and each built its own (every account's first claim waited
    ~0.6 s for them, bench/many_accounts.py).
    """
    global _ssl_context
    if _ssl_context is None:
        with _ssl_context_lock:
            if _ssl_context is None:
                _ssl_context = httpx.create_ssl_context()
    return _ssl_context


def _read_in_chunks(ids: list[str], chunk_size: int, read: Callable[[list[str]], None]) -> None:
    """``read`` the ids in chunks of at most ``chunk_size`` (and IDS_PER_REQUEST); a chunk whose
    URL the server refuses as too long (414) is split in two and both halves are read in its
    place. Any other error, and a 414 for a single id, propagates."""
    pending = list(_chunks(ids, max(1, min(chunk_size, IDS_PER_REQUEST))))
    while pending:
        chunk = pending.pop(0)
        try:
            read(chunk)
        except errors.LoyverseError as exc:
            if exc.status != 414 or len(chunk) == 1:
                raise
            half = len(chunk) // 2
            pending[:0] = [chunk[:half], chunk[half:]]


def _chunks(values: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


def _unique(values: Sequence[str]) -> list[str]:
    if isinstance(values, str):
        raise TypeError("pass a sequence of ids, not a single string")
    return list(dict.fromkeys(str(v) for v in values))


class LoyverseClient:
    """The Loyverse API for one account (one token).

    Use as a context manager, or call ``close()``. The governor is shared and not owned:
    closing the client leaves it open. ``timeout`` is the read/write timeout in seconds
    (connect: 5 s). ``max_attempts`` counts the first attempt. ``on_request`` is called
    after every HTTP attempt with a ``RequestRecord``. ``clock_skew`` (seconds) is how far
    back a safe create searches when the server has sent no ``Date`` header to tell us
    its clock.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        token_provider: TokenProvider | None = None,
        governor: governor_mod.Governor | None = None,
        timeout: float = 20.0,
        connect_timeout: float = 5.0,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        on_request: Callable[[RequestRecord], None] | None = None,
        clock_skew: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if token_provider is None and (not token or not token.strip()):
            raise ValueError("a Loyverse access token is required")
        self._token_provider = token_provider
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.base_url = base_url.rstrip("/")
        self.governor: governor_mod.Governor = governor or governor_mod.NullGovernor()
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.on_request = on_request
        self.clock_skew = clock_skew
        self._sleep = sleep
        self._server_offset: float | None = None  # server clock - ours, from Date headers
        self._jitter = tenacity.wait_random_exponential(multiplier=backoff_base, max=backoff_max)
        auth = {} if token_provider is not None else {"Authorization": f"Bearer {token}"}
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={
                **auth,
                "Accept": "application/json",
                "User-Agent": "loyverse-sync/0.1",
            },
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            verify=_shared_ssl_context(),
            transport=transport,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"LoyverseClient(base_url={self.base_url!r})"

    def __enter__(self) -> LoyverseClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    # ------------------------------------------------------------------------------------
    # Account, stores, taxes
    # ------------------------------------------------------------------------------------

    def get_merchant(self) -> Json:
        """GET /merchant/: the account (id, business_name, currency); a good token probe."""
        return self._get_object("/merchant/", endpoint="/merchant/")

    def list_stores(self) -> list[Json]:
        """GET /stores: every store (not paginated)."""
        return list(self._iter("/stores", "stores", {}))

    def list_taxes(self) -> list[Json]:
        """GET /taxes: every tax (not paginated)."""
        return list(self._iter("/taxes", "taxes", {}))

    # ------------------------------------------------------------------------------------
    # Categories
    # ------------------------------------------------------------------------------------

    def iter_categories(
        self,
        *,
        categories_ids: Sequence[str] | None = None,
        show_deleted: bool = False,
        created_at_min: dt.datetime | str | None = None,
        created_at_max: dt.datetime | str | None = None,
        limit: int = MAX_LIMIT,
    ) -> Iterator[Json]:
        """GET /categories, every page. Categories have no ``updated_at``."""
        params = self._list_params(
            limit=limit,
            show_deleted=show_deleted,
            categories_ids=categories_ids,
            created_at_min=created_at_min,
            created_at_max=created_at_max,
        )
        return self._iter("/categories", "categories", params)

    # ------------------------------------------------------------------------------------
    # Items
    # ------------------------------------------------------------------------------------

    def iter_item_pages(
        self,
        *,
        items_ids: Sequence[str] | None = None,
        show_deleted: bool = False,
        updated_at_min: dt.datetime | str | None = None,
        updated_at_max: dt.datetime | str | None = None,
        created_at_min: dt.datetime | str | None = None,
        limit: int = MAX_LIMIT,
    ) -> Iterator[tuple[int, list[Json]]]:
        """GET /items page by page: yields ``(page_number, items)`` (for progress bars)."""
        params = self._list_params(
            limit=limit,
            show_deleted=show_deleted,
            items_ids=items_ids,
            updated_at_min=updated_at_min,
            updated_at_max=updated_at_max,
            created_at_min=created_at_min,
        )
        return self._iter_pages("/items", "items", params)

    def iter_items(
        self,
        *,
        items_ids: Sequence[str] | None = None,
        show_deleted: bool = False,
        updated_at_min: dt.datetime | str | None = None,
        updated_at_max: dt.datetime | str | None = None,
        created_at_min: dt.datetime | str | None = None,
        limit: int = MAX_LIMIT,
    ) -> Iterator[Json]:
        """GET /items, every page, one item (with its variants) at a time."""
        for _page, items in self.iter_item_pages(
            items_ids=items_ids,
            show_deleted=show_deleted,
            updated_at_min=updated_at_min,
            updated_at_max=updated_at_max,
            created_at_min=created_at_min,
            limit=limit,
        ):
            yield from items

    def get_items(
        self,
        ids: Sequence[str],
        *,
        show_deleted: bool = False,
        chunk_size: int = IDS_PER_REQUEST,
    ) -> list[Json]:
        """Items by id, in bulk: ``items_ids`` in chunks of ``chunk_size``, every page.

        Returns the items found, in the order of ``ids`` (unknown ids are simply absent).
        A chunk whose URL the server refuses as too long (414) is split in two.
        """
        wanted = _unique(ids)
        found: dict[str, Json] = {}

        def read(chunk: list[str]) -> None:
            for item in self.iter_items(items_ids=chunk, show_deleted=show_deleted):
                if isinstance(item.get("id"), str):
                    found[item["id"]] = item

        _read_in_chunks(wanted, chunk_size, read)
        return [found[i] for i in wanted if i in found]

    def read_items(
        self,
        ids: Sequence[str],
        *,
        show_deleted: bool = False,
        chunk_size: int = IDS_PER_REQUEST,
    ) -> ItemsRead:
        """Items by id in bulk, like ``get_items``, but tolerant of a bad answer.

        Transport-like failures (``errors.transport_like``: 5xx, 429, timeouts, unreadable bodies,
        401/403/402) raise as
        in ``get_items``. Anything else wrong with the answer is reported, not raised: a row
        that is not an object or has no string ``id`` (``notes``), the same id twice with
        different content (``conflicts``: the item is left out), or a page the client cannot
        follow (bad shape, repeated cursor, refused cursor: ``notes``; the items read before it
        are kept). An id neither in ``items`` nor in ``conflicts`` was not returned.
        """
        wanted = _unique(ids)
        out = ItemsRead()

        def bad_row(page: int, row: Any) -> None:
            out.notes.append(f"page {page}: a row that is not an object: {_short(row)}")

        def read(chunk: list[str]) -> None:
            params = self._list_params(limit=MAX_LIMIT, show_deleted=show_deleted, items_ids=chunk)
            try:
                for page, rows in self._iter_pages("/items", "items", params, on_bad_row=bad_row):
                    for item in rows:
                        item_id = item.get("id")
                        if not isinstance(item_id, str) or not item_id:
                            out.notes.append(f"page {page}: an item without a string id: {_short(item)}")
                        elif item_id in out.conflicts:
                            continue
                        elif item_id in out.items and out.items[item_id] != item:
                            del out.items[item_id]
                            out.conflicts[item_id] = "sent twice with different content"
                        else:
                            out.items[item_id] = item
            except errors.LoyverseError as exc:
                if (exc.status == 414 and len(chunk) > 1) or errors.transport_like(exc):
                    raise  # a long chunk is split by _read_in_chunks; transport failures are the caller's
                out.notes.append(str(exc))

        _read_in_chunks(wanted, chunk_size, read)
        return out

    def get_item(self, item_id: str) -> Json:
        """GET /items/{id} (404 ``NotFound`` once deleted)."""
        return self._get_object(f"/items/{_segment(item_id)}", endpoint="/items/{id}")

    def post_item(self, body: Mapping[str, Any]) -> Json:
        """POST /items: update when ``id`` is set (retried; restate the whole item as read,
        ``restate.item_body``), else create (not retried after an ambiguous failure: ``create_safely``
        with a lookup of your own creates exactly once)."""
        return self._post("/items", body, id_key="id")

    # ------------------------------------------------------------------------------------
    # Modifiers, inventory, webhooks
    # ------------------------------------------------------------------------------------

    def iter_modifiers(
        self,
        *,
        modifier_ids: Sequence[str] | None = None,
        show_deleted: bool = False,
        limit: int = MAX_LIMIT,
    ) -> Iterator[Json]:
        """GET /modifiers, every page."""
        params = self._list_params(
            limit=limit, show_deleted=show_deleted, modifier_ids=modifier_ids
        )
        return self._iter("/modifiers", "modifiers", params)

    def iter_inventory(
        self,
        *,
        store_ids: Sequence[str] | None = None,
        variant_ids: Sequence[str] | None = None,
        updated_at_min: dt.datetime | str | None = None,
        limit: int = MAX_LIMIT,
    ) -> Iterator[Json]:
        """GET /inventory, every page (the array key is ``inventory_levels``)."""
        params = self._list_params(
            limit=limit,
            store_ids=store_ids,
            variant_ids=variant_ids,
            updated_at_min=updated_at_min,
        )
        return self._iter("/inventory", "inventory_levels", params)

    def list_webhooks(self) -> list[Json]:
        """GET /webhooks/: every subscription (not paginated).

        The reference answers a bare array, an SDK reads ``{"webhooks": [...]}``: both are
        accepted (the emulator's ``webhooks_list`` mode serves either)."""
        path = "/webhooks/"
        data = self._request("GET", path, endpoint=path, params={}, retry=True)
        rows = data.get("webhooks") if isinstance(data, dict) else data
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise self._malformed(
                "GET", path, 200, 'an array of objects, bare or as "webhooks"', data
            )
        return rows

    def post_webhook(self, body: Mapping[str, Any]) -> Json:
        """POST /webhooks/: update when ``id`` is set (retried), else subscribe (not retried
        after an ambiguous failure; prefer ``create_webhook_safely``)."""
        return self._post("/webhooks/", body, id_key="id")

    def delete_webhook(self, webhook_id: str) -> Json:
        """DELETE /webhooks/{id}."""
        return self._delete(f"/webhooks/{_segment(webhook_id)}", "/webhooks/{id}")

    # ------------------------------------------------------------------------------------
    # Safe creates
    # ------------------------------------------------------------------------------------

    def create_safely(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        find_existing: Callable[[dt.datetime], Json | None],
        id_key: str = "id",
    ) -> Json:
        """POST a new object without ever creating it twice.

        The POST is sent again only when a failure proves it was not applied (429,
        connection refused). After an ambiguous failure (timeout, dropped connection, 5xx,
        unreadable 2xx) ``find_existing(since)`` is asked whether the object now exists;
        ``since`` is a UTC time shortly before the first POST by the server's clock (from
        its ``Date`` header, with 5 s spare; without one, our clock minus ``clock_skew``). If
        it returns the object, that is the result; if it returns None, the POST is sent
        again (at most ``max_attempts`` POSTs). If the lookup itself fails, the original
        ambiguous error is raised (chained to the lookup's).
        """
        if body.get(id_key):
            raise ValueError(f"create_safely is for new objects; the body has {id_key!r}")
        # Computed at lookup time, so a Date header on the failed answer itself counts.
        posted_at = time.monotonic()
        last: errors.LoyverseError | None = None
        for post_number in range(1, self.max_attempts + 1):
            try:
                return self._write("POST", path, path, body, retry=False)
            except errors.LoyverseError as exc:
                if not exc.ambiguous:
                    raise
                last = exc
            delay = self._backoff(post_number)
            logger.warning("%s; looking up whether it was applied (in %.2fs)", last, delay)
            self._sleep(delay)
            since = self._server_now_lower_bound() - dt.timedelta(
                seconds=time.monotonic() - posted_at
            )
            try:
                existing = find_existing(since)
            except errors.LoyverseError as lookup_exc:
                raise last from lookup_exc
            if existing is not None:
                logger.info("POST %s was applied despite the error; found the created object", path)
                return existing
            logger.info("POST %s was not applied; sending it again", path)
        assert last is not None
        raise last

    def create_webhook_safely(self, body: Mapping[str, Any]) -> Json:
        """Subscribe a webhook exactly once (a (type, url) pair is unique in Loyverse)."""

        def find(_since: dt.datetime) -> Json | None:
            for hook in self.list_webhooks():
                if hook.get("url") == body.get("url") and hook.get("type") == body.get("type"):
                    return hook
            return None

        return self.create_safely("/webhooks/", body, find_existing=find, id_key="id")

    # ------------------------------------------------------------------------------------
    # Plumbing
    # ------------------------------------------------------------------------------------

    @staticmethod
    def _list_params(*, limit: int | None = None, **filters: Any) -> dict[str, str]:
        params: dict[str, str] = {}
        if limit is not None:
            if isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
                raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
            params["limit"] = str(limit)
        for name, value in filters.items():
            if value is None or value is False:
                continue  # absent = the API default (show_deleted=false, no filter)
            if isinstance(value, str) and name.endswith("_ids"):
                raise TypeError(f"{name} takes a sequence of ids, not a string")
            if isinstance(value, list | tuple | set | frozenset) and not value:
                raise ValueError(f"{name} is empty: that would fetch everything")
            params[name] = _query_value(value)
        return params

    def _get_object(self, path: str, *, endpoint: str) -> Json:
        data = self._request("GET", path, endpoint=endpoint, retry=True)
        if not isinstance(data, dict):
            raise self._malformed("GET", path, 200, "a JSON object", data)
        return data

    def _iter(self, path: str, key: str, params: dict[str, str]) -> Iterator[Json]:
        for _page, rows in self._iter_pages(path, key, params):
            yield from rows

    def _iter_pages(
        self,
        path: str,
        key: str,
        params: dict[str, str],
        *,
        on_bad_row: Callable[[int, Any], None] | None = None,
    ) -> Iterator[tuple[int, list[Json]]]:
        """Follow ``cursor`` until it is absent; never loop on a repeated cursor.

        With ``on_bad_row`` a row that is not an object is passed to it (page number, row)
        and skipped instead of failing the page."""
        seen: set[str] = set()
        cursor: str | None = None
        page = 0
        empty_in_a_row = 0
        while True:
            query = dict(params)
            if cursor is not None:
                query["cursor"] = cursor
            data = self._request("GET", path, endpoint=path, params=query, retry=True)
            page += 1
            rows = data.get(key) if isinstance(data, dict) else None
            if on_bad_row is not None and isinstance(rows, list):
                for row in rows:
                    if not isinstance(row, dict):
                        on_bad_row(page, row)
                rows = [r for r in rows if isinstance(r, dict)]
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise self._malformed(
                    "GET", path, 200, f'a JSON object with a "{key}" array of objects', data
                )
            yield page, rows
            next_cursor = data.get("cursor")
            if next_cursor is None:  # absent on the last page (null tolerated)
                return
            if not isinstance(next_cursor, str) or not next_cursor:
                raise self._malformed(
                    "GET", path, 200, '"cursor" absent or a non-empty string', data
                )
            if next_cursor in seen:
                raise errors.RepeatedCursor(
                    method="GET", path=path, status=200, cursor=next_cursor, page=page
                )
            seen.add(next_cursor)
            empty_in_a_row = 0 if rows else empty_in_a_row + 1
            if empty_in_a_row > MAX_EMPTY_PAGES:
                raise errors.MalformedResponse(
                    method="GET",
                    path=path,
                    status=200,
                    code="TOO_MANY_EMPTY_PAGES",
                    details=f"{empty_in_a_row} empty pages in a row, each with a cursor",
                )
            cursor = next_cursor

    def _post(self, path: str, body: Mapping[str, Any], *, id_key: str) -> Json:
        # With its id the POST is an upsert (same result when repeated): safe to retry.
        return self._write("POST", path, path, body, retry=bool(body.get(id_key)))

    def _delete(self, path: str, endpoint: str) -> Json:
        return self._write("DELETE", path, endpoint, None, retry=True)

    def _write(
        self,
        method: str,
        path: str,
        endpoint: str,
        body: Mapping[str, Any] | None,
        *,
        retry: bool,
    ) -> Json:
        data = self._request(method, path, endpoint=endpoint, body=body, retry=retry)
        if not isinstance(data, dict):
            raise self._malformed(method, path, 200, "a JSON object", data)
        return data

    def _request(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        retry: bool,
    ) -> Any:
        """Send with retries; returns the parsed JSON body of a 2xx.

        ``retry=True``: repeat on any retryable error (the request is idempotent).
        ``retry=False``: repeat only failures that prove the request was not applied.
        """
        content = None
        if body is not None:
            content = json.dumps(
                body, default=_json_default, ensure_ascii=False, separators=(",", ":")
            ).encode()
        try:
            return self._send(method, path, endpoint, params, content, retry)
        except errors.Unauthorized as exc:
            # An expired or replaced access token: one refresh, one more send (a 401 was not
            # applied, so even a create may go again). A refused refresh raises from it.
            if self._token_provider is None or exc.path != path or not self._token_provider.refresh():
                raise
            return self._send(method, path, endpoint, params, content, retry)

    def _send(
        self,
        method: str,
        path: str,
        endpoint: str,
        params: Mapping[str, str] | None,
        content: bytes | None,
        retry: bool,
    ) -> Any:
        ambiguous_before = False

        def should_retry(exc: BaseException) -> bool:
            if not isinstance(exc, errors.LoyverseError) or not exc.retryable:
                return False
            return retry or not exc.ambiguous

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception(should_retry),
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                number = attempt.retry_state.attempt_number
                try:
                    return self._attempt(method, path, endpoint, params, content, number)
                except errors.NotFound:
                    # A DELETE whose earlier attempt may have been applied: gone is done.
                    if method == "DELETE" and ambiguous_before:
                        logger.info("DELETE %s: 404 after an ambiguous attempt; deleted", path)
                        return {
                            "deleted_object_ids": [urllib.parse.unquote(path.rsplit("/", 1)[-1])]
                        }
                    raise
                except errors.LoyverseError as exc:
                    ambiguous_before = ambiguous_before or exc.ambiguous
                    raise
        raise AssertionError("unreachable")  # tenacity re-raises the last error

    def _attempt(
        self,
        method: str,
        path: str,
        endpoint: str,
        params: Mapping[str, str] | None,
        content: bytes | None,
        number: int,
    ) -> Any:
        headers = {"Content-Type": "application/json"} if content is not None else {}
        if self._token_provider is not None:
            # before the rate slot: a refresh may take a while and spends none of the budget
            headers["Authorization"] = f"Bearer {self._token_provider.token()}"
        self.governor.acquire()
        started = time.monotonic()
        status: int | None = None
        error: errors.LoyverseError | None = None
        try:
            try:
                response = self._http.request(
                    method, path, params=params, content=content, headers=headers or None
                )
            except httpx.DecodingError as exc:
                error = errors.MalformedResponse(
                    method=method,
                    path=path,
                    expected="a decodable body",
                    excerpt=f"{type(exc).__name__}: {exc}",
                    garbled=True,
                )
                raise error from None
            except httpx.TransportError as exc:
                error = _transport_failure(exc, method, path)
                raise error from None
            status = response.status_code
            error, data = self._interpret(response, method, path)
            if error is not None:
                raise error
            return data
        finally:
            elapsed = time.monotonic() - started
            self._record(method, path, endpoint, status, elapsed, error, number)

    def _interpret(
        self, response: httpx.Response, method: str, path: str
    ) -> tuple[errors.LoyverseError | None, Any]:
        status = response.status_code
        raw = response.content
        self._note_server_date(response)
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = _NOT_JSON
        if 200 <= status < 300:
            if data is _NOT_JSON or data is None:
                garbled = self._malformed(method, path, status, "a JSON body", raw)
                garbled.garbled = True
                return garbled, None
            return None, data
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        body = None if data is _NOT_JSON else data
        error = errors.from_response(
            status,
            body,
            response.text if data is _NOT_JSON else "",
            method=method,
            path=path,
            retry_after=retry_after,
        )
        if isinstance(error, errors.RateLimited):
            self.governor.penalize(error.retry_after)
        return error, None

    @staticmethod
    def _malformed(
        method: str, path: str, status: int | None, expected: str, got: Any
    ) -> errors.MalformedResponse:
        if isinstance(got, bytes | str):
            text = errors.excerpt(got) if got else "(empty body)"
        else:
            text = errors.excerpt(json.dumps(got, default=str))
        return errors.MalformedResponse(
            method=method, path=path, status=status, expected=expected, excerpt=text
        )

    def _record(
        self,
        method: str,
        path: str,
        endpoint: str,
        status: int | None,
        elapsed: float,
        error: errors.LoyverseError | None,
        attempt: int,
    ) -> None:
        code = error.code if error is not None else None
        logger.debug(
            "%s %s -> %s%s in %.3fs (attempt %d)",
            method,
            path,
            status if status is not None else "no response",
            f" {code}" if code else "",
            elapsed,
            attempt,
        )
        if self.on_request is None:
            return
        record = RequestRecord(method, path, endpoint, status, elapsed, code, attempt)
        try:
            self.on_request(record)
        except Exception:
            # Metrics must not break the sync; a broken callback still shows in the log.
            logger.exception("on_request callback failed")

    def _server_now_lower_bound(self) -> dt.datetime:
        """A time the server's clock has certainly passed: for ``created_at`` comparisons.

        From the server's ``Date`` header when we have seen one (it is whole seconds and
        stamped before the response travelled, so it errs early; 5 s spare on top), else
        our clock minus ``clock_skew``.
        """
        if self._server_offset is not None:
            estimate = time.time() + self._server_offset - 5.0
        else:
            estimate = time.time() - self.clock_skew
        return dt.datetime.fromtimestamp(estimate, dt.UTC)

    def _note_server_date(self, response: httpx.Response) -> None:
        header = response.headers.get("Date")
        if not header:
            return
        try:
            server_time = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return
        if server_time.tzinfo is None:
            server_time = server_time.replace(tzinfo=dt.UTC)
        self._server_offset = server_time.timestamp() - time.time()

    def _backoff(self, attempt_number: int) -> float:
        # The same full-jitter schedule as the tenacity wait used for retries.
        high = min(self.backoff_max, self.backoff_base * 2 ** (attempt_number - 1))
        return random.uniform(0.0, high)

    def _wait(self, retry_state: tenacity.RetryCallState) -> float:
        wait = float(self._jitter(retry_state))
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, errors.RateLimited) and exc.retry_after is not None:
            wait = max(wait, exc.retry_after)
        return wait

    def _log_retry(self, retry_state: tenacity.RetryCallState) -> None:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        sleep = retry_state.next_action.sleep if retry_state.next_action else 0.0
        logger.warning(
            "%s; retrying in %.2fs (attempt %d of %d)",
            exc,
            sleep,
            retry_state.attempt_number + 1,
            self.max_attempts,
        )


_NOT_JSON = object()

@dataclasses.dataclass
class ItemsRead:
    """What ``read_items`` got: usable items by id, and what was wrong with the answer."""

    items: dict[str, Json] = dataclasses.field(default_factory=dict)
    conflicts: dict[str, str] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)


def _short(value: Any) -> str:
    return errors.excerpt(json.dumps(value, default=str), 80)


def _transport_failure(
    exc: httpx.TransportError, method: str, path: str
) -> errors.TransportFailure:
    # Only failures before the request left make a write certainly unapplied.
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        code, sent = "CONNECT_TIMEOUT", False
    elif isinstance(exc, httpx.ConnectError):
        code, sent = "CONNECT_FAILED", False
    elif isinstance(exc, httpx.TimeoutException):
        code, sent = "TIMEOUT", True
    elif isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        code, sent = "CONNECTION_DROPPED", True
    else:
        code, sent = "TRANSPORT_ERROR", True
    detail = str(exc) or "no detail"
    return errors.TransportFailure(
        method=method,
        path=path,
        code=code,
        details=f"{type(exc).__name__}: {errors.excerpt(detail)}",
        sent=sent,
    )

