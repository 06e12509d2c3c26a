"""Loyverse API call statistics: every request's method, endpoint, status and time, buffered in
the process and added per minute to loyverse_api_call_stats (aggregated in SQL), never lost while
the process lives even when the database is away.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from typing import Any

import psycopg

from loyverse_sync import db, queries

logger = logging.getLogger(__name__)

#: API calls per account kept in memory while the database cannot take them.
UNSENT_LIMIT = 20_000
_UNSENT: dict[tuple[str, int], list[dict[str, Any]]] = {}  # (database, account)
_UNSENT_LOCK = threading.Lock()


class ApiCallRecorder:
    """Buffers the client's `on_request` records and adds them to loyverse_api_call_stats
    (aggregated per minute in SQL) every `flush_seconds` or `max_buffer` calls.

    Thread-safe; `flush()` is also called by `close()`. A failure to record never breaks the
    price sync that made the calls, and loses nothing while the process lives: the batch is
    kept (per database and account, up to UNSENT_LIMIT calls, oldest dropped first, with a
    warning) and sent with the next flush for that account, by this recorder, the next
    drain's, or the worker's `keep_flushing_unsent` (a worker rides out a PostgreSQL restart,
    see cli/worker.py, and its drains' records with it).

    Writes on `connection` (autocommit) when given, the drain's own (never closed here), else
    on a connection lent by `connector` for each flush.
    """

    def __init__(
        self, connector: db.Connector, account_id: int, *, connection: psycopg.Connection[Any] | None = None,
        flush_seconds: float = 10.0, max_buffer: int = 500,
    ) -> None:
        self.connector = connector
        self.account_id = account_id
        self.flush_seconds = flush_seconds
        self.max_buffer = max_buffer
        self._connection = connection
        self._buffer: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()
        # which database the account id belongs to (a process may serve several)
        self._unsent_key = (connector.database, account_id)

    def __call__(self, record: Any) -> None:
        with self._lock:
            self._buffer.append(
                {
                    "method": record.method,
                    "endpoint": record.endpoint,
                    "status": record.status or 0,
                    "seconds": round(float(record.elapsed), 6),
                    "at": dt.datetime.now(dt.UTC).isoformat(),
                }
            )
            due = (
                len(self._buffer) >= self.max_buffer
                or time.monotonic() - self._last_flush >= self.flush_seconds
            )
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            batch, self._buffer = self._buffer, []
            self._last_flush = time.monotonic()
        key = self._unsent_key
        with _UNSENT_LOCK:
            batch = _UNSENT.pop(key, []) + batch
        if not batch:
            return
        params = {"account_id": self.account_id, "calls": json.dumps(batch)}
        try:
            if self._connection is not None:
                queries.execute(self._connection, "ops", "record_api_calls", params)
            else:
                self.connector.execute("ops", "record_api_calls", params)
        except psycopg.Error as exc:  # psycopg_pool.PoolTimeout too: the database is away
            with _UNSENT_LOCK:
                kept = batch + _UNSENT.pop(key, [])
                dropped = max(0, len(kept) - UNSENT_LIMIT)
                _UNSENT[key] = kept[dropped:]
            logger.warning("could not record %d Loyverse API call(s), kept for the next flush%s: %s",
                           len(batch), f" ({dropped} oldest dropped)" if dropped else "",
                           " ".join(str(exc).split())[:200])

    def close(self) -> None:
        self.flush()


def flush_unsent(connector: db.Connector) -> int:
    """Send the API-call records kept for ``connector``'s database (ApiCallRecorder keeps what
    the database could not take); returns how many calls are still kept afterwards."""
    database = connector.database
    with _UNSENT_LOCK:
        kept_for = sorted(account for (db_, account) in _UNSENT if db_ == database)
    for account_id in kept_for:
        ApiCallRecorder(connector, account_id).flush()
    with _UNSENT_LOCK:
        return sum(len(calls) for (db_, _), calls in _UNSENT.items() if db_ == database)


def keep_flushing_unsent(connector: db.Connector, every: float = 5.0) -> threading.Event:
    """Start a daemon thread that retries the kept records every ``every`` seconds, so records
    kept while the database was away reach it even if their account is never drained again by
    this process; set the returned event to stop it."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            flush_unsent(connector)  # does nothing when nothing is kept

    threading.Thread(target=loop, name="api-call-records", daemon=True).start()
    return stop
