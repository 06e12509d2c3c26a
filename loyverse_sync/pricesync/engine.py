"""The price-sync worker logic: drain one account's queue into Loyverse.

Thin by design: the database decides what is due (``claim_price_sync_batch``) and records
every outcome (``complete_price_sync_batch``); this module only moves prices. Per batch:
claim whole Loyverse items of one account, read them in bulk (``GET /items?items_ids=``,
250 per request), compute each variant's ``stores[]`` for every claimed store (several
restaurants of the account merge into one write), write ONE ``POST /items`` per item
restating the whole item as read (every writable field, every variant with its full
``stores[]``; ``loyverse/restate.py``), so the write is right whether Loyverse merges a POST
into the stored object or reads it as the whole object, verify every restated field of the
response, and report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import decimal
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from loyverse_sync import accounts, db, queries
from loyverse_sync.loyverse import client as client_mod
from loyverse_sync.loyverse import errors, restate
from loyverse_sync.loyverse import governor as governor_mod

logger = logging.getLogger("loyverse_sync.pricesync")

# A price read from Loyverse above this is corrupt data, not a menu price.
MAX_PRICE = decimal.Decimal(10) ** 12
# The largest price we send: what loyverse_item_mappings.last_synced_price (numeric(12, 2))
# can record once it is written. A row above it (our price after a tax factor) fails alone.
MAX_SENDABLE = decimal.Decimal("9999999999.99")
# Items per batch re-read one by one (GET /items/{id}) when the bulk read left them out or
# sent them unusable; the rest are retried later.
MAX_REREADS = 10


@dataclasses.dataclass
class EngineConfig:
    """Tuning of one drain; the defaults suit the documented 300 requests / 300 s."""

    max_items: int = 250
    lease_seconds: float = 120.0
    scan_rows: int = 2000
    http_timeout: float = 15.0
    http_max_attempts: int = 3
    max_batches: int | None = None


@dataclasses.dataclass
class DrainResult:
    """What one drain did: batches, rows, HTTP attempts and the summed outcome counts."""

    batches: int = 0
    rows: int = 0
    requests: int = 0
    counts: dict[str, int] = dataclasses.field(default_factory=dict)

    def add(self, counts: dict[str, Any]) -> None:
        for key, value in counts.items():
            if isinstance(value, int) and key != "log_id":
                self.counts[key] = self.counts.get(key, 0) + value

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


ClientFactory = Callable[[accounts.Account, Callable[[client_mod.RequestRecord], None]], client_mod.LoyverseClient]


def _money(value: Any) -> decimal.Decimal | None:
    # Only numbers are money: a string, bool, NaN, infinity or out-of-range value is not.
    if value is None or isinstance(value, bool) or not isinstance(value, int | float | decimal.Decimal):
        return None
    try:
        amount = decimal.Decimal(str(value))
        if not amount.is_finite() or abs(amount) > MAX_PRICE:
            return None
        return amount.quantize(decimal.Decimal("0.001"))
    except (decimal.InvalidOperation, ValueError):
        return None


def _kind(value: Any) -> str:
    """How an unexpected JSON value is named in an error message."""
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
             dict: "an object", type(None): "null"}
    text = errors.excerpt(repr(value), 40)
    return f"{text} ({names.get(type(value), type(value).__name__)})"


def _wrong(name: str, container: dict[str, Any], key: str, expected: str = "") -> str:
    """``<name> is missing``, or ``<name> is <value (kind)><expected>`` for a value of the wrong kind."""
    return f"{name} is {_kind(container[key])}{expected}" if key in container else f"{name} is missing"


def _item_problem(item_id: str, item: Any) -> str | None:
    """What makes an item read from (or answered by) Loyverse unusable, or None.

    The write restates every variant with its full stores[] from this read, so a read we
    cannot fully trust must not be written back: a variant left out would be deleted, a
    store entry left out or restated wrong would change that store's price.
    """
    if not isinstance(item, dict):
        return f"the item is {_kind(item)}, not an object"
    if item.get("id") != item_id:
        return _wrong("id", item, "id", f", expected {item_id}")
    variants = item.get("variants")
    if not isinstance(variants, list):
        return _wrong("variants", item, "variants", ", not a list")
    seen: set[str] = set()
    for i, variant in enumerate(variants):
        where = f"variants[{i}]"
        if not isinstance(variant, dict):
            return f"{where} is {_kind(variant)}, not an object"
        vid = variant.get("variant_id")
        if not isinstance(vid, str) or not vid:
            return _wrong(f"{where}.variant_id", variant, "variant_id")
        if vid in seen:
            return f"variant {vid} appears twice"
        seen.add(vid)
        if variant.get("deleted_at"):
            continue
        stores = variant.get("stores")
        if not isinstance(stores, list):
            return _wrong(f"{where}.stores", variant, "stores", ", not a list")
        store_ids: set[str] = set()
        for j, entry in enumerate(stores):
            at = f"{where}.stores[{j}]"
            if not isinstance(entry, dict):
                return f"{at} is {_kind(entry)}, not an object"
            sid = entry.get("store_id")
            if not isinstance(sid, str) or not sid:
                return _wrong(f"{at}.store_id", entry, "store_id")
            if sid in store_ids:
                return f"store {sid} appears twice in variant {vid}"
            store_ids.add(sid)
            pricing = entry.get("pricing_type", "FIXED")
            if pricing not in ("FIXED", "VARIABLE"):
                return f"{at}.pricing_type is {_kind(pricing)}"
            price = entry.get("price")
            if price is not None and _money(price) is None:
                return f"{at}.price is {_kind(price)}, not a price"
            if price is not None and price < 0:
                return f"{at}.price is negative ({price})"
    return None


def _result(row: dict[str, Any], outcome: str, **fields: Any) -> dict[str, Any]:
    out = {"id": row["id"], "outcome": outcome, "sent": False}
    out.update({k: v for k, v in fields.items() if v is not None})
    return out


def _error_fields(exc: errors.LoyverseError) -> dict[str, Any]:
    return {
        "error": str(exc),
        "code": exc.code or (f"HTTP_{exc.status}" if exc.status else type(exc).__name__.upper()),
        "details": {"status": exc.status, "code": exc.code, "details": exc.details, "field": exc.field},
    }


def _is_retryable(exc: errors.LoyverseError) -> bool:
    # the account's failures are not the row's: keep retrying (then dead-letter); a write
    # that may have been applied is checked again by the next attempt
    return bool(exc.ambiguous or errors.transport_like(exc))


def _store_price(entry: dict[str, Any] | None) -> decimal.Decimal | None:
    if entry is None or entry.get("pricing_type", "FIXED") != "FIXED":
        return None
    return _money(entry.get("price"))


class _Lease:
    """Keeps the claim's lease alive while a batch waits for the rate budget."""

    def __init__(self, conn: psycopg.Connection[Any], claimed_by: str, lease_seconds: float) -> None:
        self.conn = conn
        self.claimed_by = claimed_by
        self.lease_seconds = lease_seconds
        self.renewed = time.monotonic()
        self.lost = False

    def beat(self) -> bool:
        """Extend the lease when a third of it has passed; False once it was lost."""
        if self.lost:
            return False
        if time.monotonic() - self.renewed >= self.lease_seconds / 3:
            row = queries.execute(
                self.conn, "pricesync", "extend_lease",
                {"claimed_by": self.claimed_by, "lease_seconds": self.lease_seconds},
            ).fetchone()
            self.renewed = time.monotonic()
            self.lost = not row or not row["held"]
            if self.lost:
                logger.warning("price sync: lease of claim %s was lost", self.claimed_by)
        return not self.lost


def process_batch(
    client: client_mod.LoyverseClient,
    rows: list[dict[str, Any]],
    *,
    stop: threading.Event | None = None,
    heartbeat: Callable[[], bool] | None = None,
) -> list[dict[str, Any]]:
    """Write one claimed batch to Loyverse; return one result per row (see complete_price_sync_batch).

    The claim returns only rows to send (VARIABLE prices, disabled restaurants and held changes
    stay in SQL). A row that cannot be sent fails alone, with a reason: its item's neighbours
    and the rest of the batch go on.
    """
    results: list[dict[str, Any]] = []
    by_item: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        unsendable = _row_problem(row)
        if unsendable is not None:
            results.append(_result(row, "failed", code=unsendable[0], error=unsendable[1],
                                   details={"price_to_send": str(row.get("price_to_send"))}))
        else:
            by_item.setdefault(row["loyverse_item_id"], []).append(row)
    if not by_item:
        return results
    try:
        read = client.read_items(list(by_item))
    except errors.LoyverseError as exc:
        outcome = "retry" if _is_retryable(exc) else "failed"
        return results + [_result(r, outcome, **_error_fields(exc)) for rs in by_item.values() for r in rs]
    if read.notes:
        logger.warning("price sync: bad answer to GET /items: %s", "; ".join(read.notes[:5]))

    pending = list(by_item.items())
    rereads = 0
    for index, (item_id, item_rows) in enumerate(pending):
        if (stop is not None and stop.is_set()) or (heartbeat is not None and not heartbeat()):
            # graceful stop or lost lease: hand the rest back untouched
            for _, rest in pending[index:]:
                results += [_result(r, "release", error="released by a stopping worker") for r in rest]
            break
        item = read.items.get(item_id)
        problem = read.conflicts.get(item_id) or (_item_problem(item_id, item) if item is not None else None)
        clean = not read.notes and item_id not in read.conflicts
        if item is None or problem is not None:
            # missing (deleted, or left out of a bad answer) or unusable as sent: ask for it alone
            if rereads >= MAX_REREADS:
                if item is None and clean:  # a clean bulk read without it: deleted
                    results += _sync_item(client, item_id, None, item_rows)
                    continue
                results += [_result(r, "retry", code="MALFORMED_RESPONSE",
                                    error=_unusable(item_id, problem or "missing from a bad answer to GET /items",
                                                    read.notes))
                            for r in item_rows]
                continue
            rereads += 1
            item, failure = _reread(client, item_id, item_rows)
            if failure is not None:
                results += failure
                continue
        try:
            results += _sync_item(client, item_id, item, item_rows)
        except Exception as exc:  # a bug on one item's data: that item alone is retried
            logger.exception("price sync: item %s failed", item_id)
            results += [_result(r, "retry", code="WORKER_ERROR", error=f"worker error on item {item_id}: {exc!r}"[:500])
                        for r in item_rows]
    return results


def _row_problem(row: dict[str, Any]) -> tuple[str, str] | None:
    """(code, error) when a claimed row can never be sent, else None."""
    target = _money(row.get("price_to_send"))
    if target is None or target < 0:
        return "UNSENDABLE_PRICE", f"price {row.get('price_to_send')!r} cannot be sent to Loyverse"
    if target > MAX_SENDABLE:
        return "PRICE_OUT_OF_RANGE", f"price {target} is above the largest price we send ({MAX_SENDABLE})"
    if not isinstance(row.get("loyverse_item_id"), str) or not isinstance(row.get("loyverse_variant_id"), str):
        return "UNMAPPED", "the product has no Loyverse item and variant"
    return None


def _unusable(item_id: str, problem: str, notes: list[str] | None = None) -> str:
    text = f"Loyverse sent item {item_id} unusable: {problem}"
    if notes:
        text += f" (GET /items: {notes[0]})"
    return text[:500]


def _reread(
    client: client_mod.LoyverseClient, item_id: str, rows: list[dict[str, Any]]
) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None]:
    """(item, None) from GET /items/{id}: None when it is gone; or (None, results) on failure."""
    try:
        item = client.get_item(item_id)
    except errors.NotFound:
        return None, None
    except errors.LoyverseError as exc:
        outcome = "retry" if _is_retryable(exc) else "failed"
        return None, [_result(r, outcome, **_error_fields(exc)) for r in rows]
    return item, None


def _sync_item(
    client: client_mod.LoyverseClient, item_id: str, item: dict[str, Any] | None, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    if item is None or (isinstance(item, dict) and item.get("deleted_at")):
        return [
            _result(r, "failed", code="NOT_FOUND", error=f"item {item_id} no longer exists in Loyverse",
                    details={"item_id": item_id})
            for r in rows
        ]
    problem = _item_problem(item_id, item)
    if problem is not None:
        # never write back what we could not read: the write restates the whole item
        return [
            _result(r, "failed", code="MALFORMED_ITEM", error=_unusable(item_id, problem),
                    details={"item_id": item_id, "problem": problem})
            for r in rows
        ]
    variants = [v for v in item["variants"] if not v.get("deleted_at")]
    by_variant = {v.get("variant_id"): v for v in variants}
    results: list[dict[str, Any]] = []
    planned: dict[tuple[str, str], tuple[dict[str, Any], decimal.Decimal, dict[str, Any]]] = {}
    for row in rows:
        variant = by_variant.get(row["loyverse_variant_id"])
        if variant is None:
            results.append(_result(row, "failed", code="NOT_FOUND",
                                   error=f"variant {row['loyverse_variant_id']} no longer exists in Loyverse",
                                   details={"item_id": item_id, "variant_id": row["loyverse_variant_id"]}))
            continue
        store_id = row["loyverse_store_id"]
        entry = next((e for e in variant.get("stores") or [] if e.get("store_id") == store_id), None)
        if entry is not None and entry.get("pricing_type") == "VARIABLE" and row["source"] != "make_fixed":
            # entered at the counter: set so in Loyverse since the import; only a person turns
            # it into a fixed price (loyverse.make_price_fixed); the mapping becomes VARIABLE
            results.append(_result(row, "failed", code="VARIABLE_IN_LOYVERSE",
                                   error=f"the price of variant {row['loyverse_variant_id']} in store {store_id} is "
                                         "VARIABLE in Loyverse (entered at the counter): not overwritten; "
                                         "make it fixed on purpose with `sync make-fixed`",
                                   details={"item_id": item_id, "variant_id": row["loyverse_variant_id"]}))
            continue
        current = _store_price(entry)
        target = _money(row["price_to_send"])
        if target is None:  # checked by _row_problem; kept as a value, never an assert on data
            results.append(_result(row, "failed", code="UNSENDABLE_PRICE",
                                   error=f"price {row['price_to_send']!r} cannot be sent to Loyverse"))
            continue
        last = _money(row["last_synced_price"])
        note: dict[str, Any] = {}
        edited = last is not None and current is not None and current != last and current != target
        if edited and row["source"] != "resolve":
            if row["sync_direction"] == "BIDIRECTIONAL":
                results.append(_result(row, "conflict", loyverse_price=str(current), code="CONFLICT",
                                       error=f"price edited in Loyverse: {current} there, {last} last synced, "
                                             f"{target} ours", details={"last_synced_price": str(last),
                                                                        "our_price": str(target)}))
                continue
            note = {"code": "CONFLICT_OVERWRITTEN",
                    "error": f"overwrote {current} edited in Loyverse (last synced {last})",
                    "details": {"loyverse_price": str(current), "last_synced_price": str(last)}}
        if current == target:
            results.append(_result(row, "done", details={"unchanged": True}))
            continue
        planned[(row["loyverse_variant_id"], store_id)] = (row, target, note)
    if not planned:
        return results

    # the whole item as read, only our stores' prices changed: right whether Loyverse reads
    # the POST as a merge or as the whole object (loyverse/restate.py)
    body = restate.item_body(item, {key: target for key, (_, target, _) in planned.items()})
    try:
        response = client.post_item(body)
    except errors.LoyverseError as exc:
        retry = _is_retryable(exc) and not isinstance(exc, errors.NotFound | errors.ValidationError)
        sent = bool(exc.ambiguous)
        return results + [
            _result(r, "retry" if retry else "failed", sent=sent, **_error_fields(exc))
            for r, _, _ in planned.values()
        ]
    problem = _item_problem(item_id, response)
    if problem is not None:
        # The write was accepted but the answer cannot show what it did: the next attempt
        # reads the item again and finds our price there (done) or sends it again.
        error = (f"POST /items answered item {item_id} unusable: {problem}; "
                 "the write may have been applied, checking again")[:500]
        return results + [
            _result(r, "retry", sent=True, code="MALFORMED_RESPONSE", error=error,
                    details={"item_id": item_id, "problem": problem})
            for r, _, _ in planned.values()
        ]
    return results + _verify(response, body, planned)


def _verify(
    response: dict[str, Any],
    body: dict[str, Any],
    planned: dict[tuple[str, str], tuple[dict[str, Any], decimal.Decimal, dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Outcomes from the answer to the write: our price in each planned store, and every
    other field the body restated (other stores' prices, category, taxes, SKUs, ...) as sent;
    a field Loyverse reset or changed fails every row of the item, never done."""
    after = {
        (v.get("variant_id"), e.get("store_id")): _money(e.get("price"))
        for v in response.get("variants") or [] for e in v.get("stores") or []
    }
    changed = restate.differences(body, response, skip_prices=planned.keys())
    results = []
    for (vid, sid), (row, target, note) in planned.items():
        got = after.get((vid, sid))
        if got != target:
            results.append(_result(row, "failed", sent=True, code="VERIFY_FAILED",
                                   error=f"Loyverse answered price {got} for variant {vid} in store {sid}, "
                                         f"we sent {target}",
                                   details={"sent": str(target), "answered": None if got is None else str(got)}))
        elif changed:
            results.append(_result(row, "failed", sent=True, code="VERIFY_FAILED",
                                   error=(f"the write changed {len(changed)} field(s) of item {body['id']} "
                                          "it restated as read: " + "; ".join(changed[:3]))[:500],
                                   details={"changed": changed[:20]}))
        else:
            results.append(_result(row, "done", sent=True, **note))
    return results


def default_client_factory(
    conninfo: str, config: EngineConfig, *, connection: psycopg.Connection[Any] | None = None
) -> ClientFactory:
    """Clients that pace every request through the account's shared PostgresGovernor.

    With ``connection`` (autocommit; the drain's own) the governor runs its statements on it
    instead of opening a second connection per job; it never closes it.
    """

    def make(account: accounts.Account, on_request: Callable[[client_mod.RequestRecord], None]) -> client_mod.LoyverseClient:
        from loyverse_sync import oauth

        # an OAuth account's token refreshes on the drain's connection, under its row lock
        return oauth.client_for(
            account,
            conninfo,
            connection=connection,
            governor=governor_mod.PostgresGovernor(conninfo, account.id, connection=connection),
            timeout=config.http_timeout,
            max_attempts=config.http_max_attempts,
            on_request=on_request,
        )

    return make


def worker_name() -> str:
    """host:pid, the prefix of every claim token."""
    import os

    return f"{socket.gethostname()}:{os.getpid()}"


class DrainResources:
    """What one worker process reuses across its drains (a drain per job, many jobs).

    * a LIFO stack of idle autocommit connections (``application_name`` loyverse_sync.pricesync):
      a new backend per job costs PostgreSQL a fork, authentication and, in every session,
      the plpgsql compile and plans of claim / take / complete. A connection is reused only
      when it came back idle (no open transaction, not broken) and still answers an empty
      query; idle ones are closed after ``idle_seconds``; at most ``max_idle`` are kept.
    * decrypted accounts (``accounts.AccountCache``: the row is read on every drain, the token
      is decrypted again whenever its ciphertext changes).

    Thread-safe: each drain holds its connection alone while it runs.
    """

    def __init__(self, conninfo: str, *, max_idle: int = 64, idle_seconds: float = 60.0) -> None:
        self.conninfo = conninfo
        self.max_idle = max_idle
        self.idle_seconds = idle_seconds
        self.accounts = accounts.AccountCache()
        self._idle: list[tuple[psycopg.Connection[Any], float]] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        conn = self._take()
        try:
            yield conn
        finally:
            self._give(conn)

    def _take(self) -> psycopg.Connection[Any]:
        while True:
            with self._lock:
                conn, since = self._idle.pop() if self._idle else (None, 0.0)
            if conn is None:
                return db.connect(self.conninfo, autocommit=True, application_name=DRAIN_APPLICATION)
            if time.monotonic() - since > self.idle_seconds:
                conn.close()
                continue
            try:
                conn.execute("")  # a server restart or an idle timeout shows here, not mid-drain
            except psycopg.Error:
                conn.close()
                continue
            return conn

    def _give(self, conn: psycopg.Connection[Any]) -> None:
        reusable = (
            not conn.closed and not conn.broken
            and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        )
        stale: list[psycopg.Connection[Any]] = []
        with self._lock:
            now = time.monotonic()
            while self._idle and now - self._idle[0][1] > self.idle_seconds:
                stale.append(self._idle.pop(0)[0])  # the bottom of the stack idles longest
            if reusable and len(self._idle) < self.max_idle:
                self._idle.append((conn, now))
            else:
                stale.append(conn)
        for old in stale:
            old.close()

    def prune(self) -> None:
        """Close the connections idle for longer than ``idle_seconds``."""
        with self._lock:
            now = time.monotonic()
            stale = [c for c, since in self._idle if now - since > self.idle_seconds]
            self._idle = [(c, since) for c, since in self._idle if now - since <= self.idle_seconds]
        for conn in stale:
            conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()


DRAIN_APPLICATION = "loyverse_sync.pricesync"


@contextlib.contextmanager
def _drain_connection(conninfo: str, resources: DrainResources | None) -> Iterator[psycopg.Connection[Any]]:
    if resources is not None:
        with resources.connection() as conn:
            yield conn
    else:
        with db.connect(conninfo, autocommit=True, application_name=DRAIN_APPLICATION) as conn:
            yield conn


def drain_account(
    conninfo: str,
    account_id: int,
    *,
    config: EngineConfig | None = None,
    stop: threading.Event | None = None,
    client_factory: ClientFactory | None = None,
    name: str | None = None,
    resources: DrainResources | None = None,
) -> DrainResult:
    """Claim and sync batches of one account until nothing is due (or ``stop`` is set).

    ``resources`` (a worker process's ``DrainResources``): take the connection from its pool
    and the account from its cache instead of connecting and decrypting per drain.
    """
    config = config or EngineConfig()
    result = DrainResult()
    counter = {"n": 0}
    from loyverse_sync import ops

    api_calls = ops.ApiCallRecorder(conninfo, account_id)  # response times, aggregated in SQL

    def on_request(record: client_mod.RequestRecord) -> None:
        counter["n"] += 1
        api_calls(record)

    with _drain_connection(conninfo, resources) as conn:
        if resources is not None:
            account = resources.accounts.get(conn, account_id)
            # API-call records go out on the drain's connection too (no connection per flush)
            api_calls.connection = conn
        else:
            account = accounts.get_account(conn, account_id)
        # The governor shares this connection: the drain is single-threaded (client, governor
        # and lease heartbeat all run here), so one connection per running job suffices.
        factory = client_factory or default_client_factory(conninfo, config, connection=conn)
        client = factory(account, on_request)
        try:
            while not (stop is not None and stop.is_set()):
                if config.max_batches is not None and result.batches >= config.max_batches:
                    break
                claimed_by = f"{name or worker_name()}:{uuid.uuid4().hex[:12]}"
                started = time.time()
                rows = queries.execute(conn, "pricesync", "claim_batch", {
                    "account_id": account_id, "claimed_by": claimed_by, "max_items": config.max_items,
                    "lease_seconds": config.lease_seconds, "scan_rows": config.scan_rows,
                }).fetchall()
                if not rows:
                    break
                lease = _Lease(conn, claimed_by, config.lease_seconds)
                before_requests = counter["n"]
                try:
                    outcomes = process_batch(client, rows, stop=stop, heartbeat=lease.beat)
                except Exception as exc:  # a bug or the database: hand the rows back for a retry
                    logger.exception("price sync batch failed")
                    outcomes = [_result(r, "retry", error=f"worker error: {exc!r}"[:500], code="WORKER_ERROR")
                                for r in rows]
                counts = _complete(conn, claimed_by, outcomes, counter["n"] - before_requests, started, config)
                result.batches += 1
                result.rows += len(rows)
                result.add(counts)
            # caught up, stopping or at max_batches: book a wake for the next row still waiting
            # (a retry's backoff, a batch boundary), also one that failed in the last batch, so
            # it goes out when due, not at the next minute's sweep
            queries.execute(conn, "pricesync", "wake_when_due", {"account_id": account_id})
        finally:
            client.close()
            api_calls.close()
            governor = getattr(client, "governor", None)
            if isinstance(governor, governor_mod.PostgresGovernor):
                governor.close()
    result.requests = counter["n"]
    return result


def _complete(
    conn: psycopg.Connection[Any], claimed_by: str, outcomes: list[dict[str, Any]], requests: int,
    started: float, config: EngineConfig,
) -> dict[str, Any]:
    import datetime as dt

    params = {
        "claimed_by": claimed_by,
        "results": Jsonb(outcomes, dumps=_dumps),
        "requests_made": requests,
        "details": Jsonb({"worker": claimed_by.rsplit(":", 1)[0]}),
        "started_at": dt.datetime.fromtimestamp(started, dt.UTC),
    }
    for attempt in (1, 2, 3):
        try:
            row = queries.execute(conn, "pricesync", "complete_batch", params).fetchone()
            return dict(row["counts"]) if row else {}
        except psycopg.errors.UniqueViolation:
            # a trigger queued the same product between our check and update: try again
            if attempt == 3:
                raise
    return {}


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value, default=lambda v: str(v) if isinstance(v, decimal.Decimal) else repr(v))
