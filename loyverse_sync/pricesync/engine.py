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

The pure part (the checks, the whole-item body, the verification of the answer) is
``plan.py``; this module is the loop around it (claim -> read -> plan -> write -> verify ->
complete) and ``PriceSync``, the manager a process builds once over its ``db.Connector``.
"""

from __future__ import annotations

import dataclasses
import decimal
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from loyverse_sync import accounts, apicalls, db, queries
from loyverse_sync.loyverse import client as client_mod
from loyverse_sync.loyverse import errors
from loyverse_sync.loyverse import governor as governor_mod
from loyverse_sync.pricesync import plan

logger = logging.getLogger("loyverse_sync.pricesync")

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
        unsendable = plan.row_problem(row)
        if unsendable is not None:
            results.append(plan.result(row, "failed", code=unsendable[0], error=unsendable[1],
                                   details={"price_to_send": str(row.get("price_to_send"))}))
        else:
            by_item.setdefault(row["loyverse_item_id"], []).append(row)
    if not by_item:
        return results
    try:
        read = client.read_items(list(by_item))
    except errors.LoyverseError as exc:
        outcome = "retry" if plan.is_retryable(exc) else "failed"
        return results + [plan.result(r, outcome, **plan.error_fields(exc)) for rs in by_item.values() for r in rs]
    if read.notes:
        logger.warning("price sync: bad answer to GET /items: %s", "; ".join(read.notes[:5]))

    pending = list(by_item.items())
    rereads = 0
    for index, (item_id, item_rows) in enumerate(pending):
        if (stop is not None and stop.is_set()) or (heartbeat is not None and not heartbeat()):
            # graceful stop or lost lease: hand the rest back untouched
            for _, rest in pending[index:]:
                results += [plan.result(r, "release", error="released by a stopping worker") for r in rest]
            break
        item = read.items.get(item_id)
        problem = read.conflicts.get(item_id) or (plan.item_problem(item_id, item) if item is not None else None)
        clean = not read.notes and item_id not in read.conflicts
        if item is None or problem is not None:
            # missing (deleted, or left out of a bad answer) or unusable as sent: ask for it alone
            if rereads >= MAX_REREADS:
                if item is None and clean:  # a clean bulk read without it: deleted
                    results += _sync_item(client, item_id, None, item_rows)
                    continue
                results += [plan.result(r, "retry", code="MALFORMED_RESPONSE",
                                    error=plan.unusable(item_id, problem or "missing from a bad answer to GET /items",
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
            results += [plan.result(r, "retry", code="WORKER_ERROR", error=f"worker error on item {item_id}: {exc!r}"[:500])
                        for r in item_rows]
    return results


def _reread(
    client: client_mod.LoyverseClient, item_id: str, rows: list[dict[str, Any]]
) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None]:
    """(item, None) from GET /items/{id}: None when it is gone; or (None, results) on failure."""
    try:
        item = client.get_item(item_id)
    except errors.NotFound:
        return None, None
    except errors.LoyverseError as exc:
        outcome = "retry" if plan.is_retryable(exc) else "failed"
        return None, [plan.result(r, outcome, **plan.error_fields(exc)) for r in rows]
    return item, None


def _sync_item(
    client: client_mod.LoyverseClient, item_id: str, item: dict[str, Any] | None, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Plan one item's write, send it (one POST /items), and verify the answer."""
    item_plan = plan.plan_item(item_id, item, rows)
    if item_plan.body is None:
        return item_plan.results
    try:
        response = client.post_item(item_plan.body)
    except errors.LoyverseError as exc:
        return item_plan.results + plan.write_failed(exc, item_plan.planned)
    return item_plan.results + plan.check_answer(item_id, response, item_plan)


def default_client_factory(
    connector: db.Connector, config: EngineConfig, connection: psycopg.Connection[Any]
) -> ClientFactory:
    """Clients that pace every request through the account's shared PostgresGovernor, on the
    drain's own connection (``connection``, autocommit): a running job holds one connection."""

    def make(account: accounts.Account, on_request: Callable[[client_mod.RequestRecord], None]) -> client_mod.LoyverseClient:
        from loyverse_sync import oauth

        # an OAuth account's token refreshes on the drain's connection, under its row lock
        return oauth.client_for(
            account,
            connector,
            connection=connection,
            governor=governor_mod.PostgresGovernor(connector, account.id, connection=connection),
            timeout=config.http_timeout,
            max_attempts=config.http_max_attempts,
            on_request=on_request,
        )

    return make


def worker_name() -> str:
    """host:pid, the prefix of every claim token."""
    import os

    return f"{socket.gethostname()}:{os.getpid()}"


class PriceSync:
    """The price sync of one process: drains accounts over the process's ``db.Connector``.

    Each drain holds one connection of the connector's pool while it runs (the claim, the
    lease, the governor, an OAuth refresh and the API-call records all go out on it: the drain
    is single-threaded), so a worker process reuses its connections across drains instead of
    paying PostgreSQL a fork, authentication and the plans of claim / complete per job.
    Decrypted accounts are kept too (``accounts.AccountCache``: the row is read on every
    drain, the token decrypted again only when its ciphertext changes). Thread-safe.
    """

    def __init__(
        self,
        connector: db.Connector,
        config: EngineConfig | None = None,
        *,
        client_factory: ClientFactory | None = None,
    ) -> None:
        self.connector = connector
        self.config = config or EngineConfig()
        self.client_factory = client_factory
        self.accounts = accounts.AccountCache()

    def drain(
        self,
        account_id: int,
        *,
        config: EngineConfig | None = None,
        stop: threading.Event | None = None,
        name: str | None = None,
    ) -> DrainResult:
        """Claim and sync batches of one account until nothing is due (or ``stop`` is set)."""
        config = config or self.config
        result = DrainResult()
        counter = {"n": 0}

        with self.connector.connection() as conn:
            account = self.accounts.get(conn, account_id)
            # response times, aggregated in SQL; written on the drain's connection
            api_calls = apicalls.ApiCallRecorder(self.connector, account_id, connection=conn)

            def on_request(record: client_mod.RequestRecord) -> None:
                counter["n"] += 1
                api_calls(record)

            factory = self.client_factory or default_client_factory(self.connector, config, conn)
            client = factory(account, on_request)
            try:
                while not (stop is not None and stop.is_set()):
                    if config.max_batches is not None and result.batches >= config.max_batches:
                        break
                    if not self._batch(conn, client, account_id, config, counter, result, stop, name):
                        break
                # caught up, stopping or at max_batches: book a wake for the next row still waiting
                # (a retry's backoff, a batch boundary), also one that failed in the last batch, so
                # it goes out when due, not at the next minute's sweep
                queries.execute(conn, "pricesync", "wake_when_due", {"account_id": account_id})
            finally:
                client.close()
                api_calls.close()
        result.requests = counter["n"]
        return result

    def _batch(
        self, conn: psycopg.Connection[Any], client: client_mod.LoyverseClient, account_id: int,
        config: EngineConfig, counter: dict[str, int], result: DrainResult,
        stop: threading.Event | None, name: str | None,
    ) -> bool:
        """Claim, write and complete one batch; False when nothing was due."""
        claimed_by = f"{name or worker_name()}:{uuid.uuid4().hex[:12]}"
        started = time.time()
        rows = queries.execute(conn, "pricesync", "claim_batch", {
            "account_id": account_id, "claimed_by": claimed_by, "max_items": config.max_items,
            "lease_seconds": config.lease_seconds, "scan_rows": config.scan_rows,
        }).fetchall()
        if not rows:
            return False
        lease = _Lease(conn, claimed_by, config.lease_seconds)
        before_requests = counter["n"]
        try:
            outcomes = process_batch(client, rows, stop=stop, heartbeat=lease.beat)
        except Exception as exc:  # a bug or the database: hand the rows back for a retry
            logger.exception("price sync batch failed")
            outcomes = [plan.result(r, "retry", error=f"worker error: {exc!r}"[:500], code="WORKER_ERROR")
                        for r in rows]
        counts = _complete(conn, claimed_by, outcomes, counter["n"] - before_requests, started, config)
        result.batches += 1
        result.rows += len(rows)
        result.add(counts)
        return True


def drain_account(
    connector: db.Connector,
    account_id: int,
    *,
    config: EngineConfig | None = None,
    stop: threading.Event | None = None,
    client_factory: ClientFactory | None = None,
    name: str | None = None,
) -> DrainResult:
    """One drain by a ``PriceSync`` of its own (tools and tests; a worker keeps one PriceSync)."""
    return PriceSync(connector, config, client_factory=client_factory).drain(account_id, stop=stop, name=name)


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
