"""Rate governors: pace requests so one Loyverse account never exceeds its budget.

Loyverse allows 300 requests per 300 s per merchant account, shared by every token, app
and process on that account. ``PostgresGovernor`` keeps the budget in the database
(``loyverse.rate_governor_take``), so all our processes and restaurants on one account
draw from the one budget. ``LocalGovernor`` is the same idea inside one process, for tools
that run without a database.

Protocol: ``acquire()`` before every HTTP attempt (blocks until the request may be sent);
``penalize(retry_after)`` after every 429, so every process backs off, not just the one
that was refused.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import psycopg
from psycopg.rows import tuple_row

logger = logging.getLogger("loyverse_sync.loyverse")


class Governor(Protocol):
    """Decides when a request to one Loyverse account may be sent."""

    def acquire(self) -> None:
        """Block until one request may be sent; the slot is then taken."""

    def penalize(self, retry_after: float | None) -> None:
        """Record that the server answered 429, so that later requests wait longer."""


class NullGovernor:
    """No pacing at all (the default when a client has no governor)."""

    def acquire(self) -> None:
        return None

    def penalize(self, retry_after: float | None) -> None:
        return None


class LocalGovernor:
    """The account budget inside one process: the same policy as the SQL governor.

    A token bucket mirroring ``loyverse.rate_governor_take``: refill at
    ``requests * safety / window`` per second, burst of ``max(1, floor(requests * (1 -
    safety) / 2))``, so burst + refill over any window stays under ``requests``.
    Reservations drive the bucket negative: each caller gets its own send instant, in
    order, and sleeps until then. ``penalize`` (after a 429) pauses sends for
    ``retry_after`` seconds (at least ``window / requests * 8``) and halves the refill
    rate for one window, like ``loyverse.rate_governor_penalize``. Thread-safe.
    """

    def __init__(
        self,
        requests: int = 300,
        window: float = 300.0,
        *,
        safety: float = 0.97,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests < 1 or window <= 0 or not 0.5 < safety <= 1:
            raise ValueError("requests must be >= 1, window > 0 and 0.5 < safety <= 1")
        self.requests = requests
        self.window = float(window)
        self.safety = safety
        self.rate = requests * safety / self.window
        self.burst = max(1.0, float(math.floor(requests * (1 - safety) / 2)))
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._refreshed_at = clock()
        self._slow_until = float("-inf")

    def take(self, requests: int = 1) -> float:
        """Reserve ``requests`` slots; return the seconds to wait before sending."""
        if requests < 1:
            raise ValueError("requests must be >= 1")
        with self._lock:
            now = self._clock()
            rate = self.rate / 2 if self._slow_until > now else self.rate
            elapsed = max(0.0, now - self._refreshed_at)
            self._tokens = min(self.burst, self._tokens + elapsed * rate) - requests
            self._refreshed_at = max(self._refreshed_at, now)
            return 0.0 if self._tokens >= 0 else -self._tokens / rate

    def acquire(self) -> None:
        wait = self.take(1)
        if wait > 0:
            self._sleep(wait)

    def penalize(self, retry_after: float | None) -> None:
        with self._lock:
            now = self._clock()
            half_rate = self.rate / 2
            pause = max(retry_after or 0.0, self.window / self.requests * 8)
            self._tokens = min(self._tokens, 0.0) - pause * half_rate
            self._refreshed_at = max(self._refreshed_at, now)
            self._slow_until = now + self.window


class PostgresGovernor:
    """The account's budget, shared through PostgreSQL by every process using it.

    Calls ``loyverse.rate_governor_take(account, 1)``, which reserves a slot and returns the
    seconds to wait before using it (we sleep that long and send without asking again), and
    ``loyverse.rate_governor_penalize(account, retry_after)`` on a 429. The pacing policy
    (window, budget, penalty) lives in those functions and the account row; this class
    only keeps one autocommit connection (opened on first use, reopened once if it
    broke) and sleeps. Thread-safe: calls are serialised on the connection.

    ``connection=``: use the caller's autocommit connection instead of opening one (a price
    drain passes its own, so a running job holds one connection, not two). The governor
    then never closes it (``close()`` leaves it open) and never reopens it: a broken
    shared connection is the owner's to handle, so the error is raised.
    """

    # The two statements this class sends (kept here rather than in a queries file because
    # they are one function call each).
    _TAKE = "select loyverse.rate_governor_take(%(account_id)s::bigint, %(requests)s::int)"
    _PENALIZE = (
        "select loyverse.rate_governor_penalize(%(account_id)s::bigint,"
        " %(retry_after)s::double precision)"
    )

    def __init__(
        self,
        conninfo: str | None,
        account_id: int,
        *,
        connection: psycopg.Connection[Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        connect_timeout: float = 10.0,
    ) -> None:
        if connection is None and conninfo is None:
            raise ValueError("PostgresGovernor needs a conninfo or a connection")
        if connection is not None and not connection.autocommit:
            # inside the caller's transaction the bucket row would stay locked until commit
            raise ValueError("PostgresGovernor needs an autocommit connection")
        self.conninfo = conninfo
        self.account_id = account_id
        self._sleep = sleep
        self._connect_timeout = connect_timeout
        self._conn: psycopg.Connection[Any] | None = connection
        self._owns_conn = connection is None
        self._lock = threading.Lock()

    @property
    def owns_connection(self) -> bool:
        """False when the governor runs on a connection it was given (and must not close)."""
        return self._owns_conn

    def _connection(self) -> psycopg.Connection[Any]:
        if not self._owns_conn:
            assert self._conn is not None
            return self._conn
        if self._conn is None or self._conn.closed:
            assert self.conninfo is not None  # __init__: no connection given means a conninfo
            self._conn = psycopg.connect(
                self.conninfo,
                autocommit=True,
                connect_timeout=max(1, int(self._connect_timeout)),
                application_name="loyverse_sync.governor",
            )
        return self._conn

    def _call(self, query: str, params: dict[str, Any]) -> Any:
        with self._lock:
            for attempt in (1, 2):
                conn = self._connection()
                try:
                    # tuple rows whatever the connection's row factory (a shared one has dict rows)
                    with conn.cursor(row_factory=tuple_row) as cur:
                        row = cur.execute(query, params).fetchone()
                    return None if row is None else row[0]
                except psycopg.OperationalError:
                    # A dropped connection (server restart, idle timeout): reopen once.
                    # Both functions are safe to repeat: a lost take only wastes one slot.
                    # A shared connection is never reopened here: it is its owner's.
                    if attempt == 2 or not conn.closed or not self._owns_conn:
                        raise
                    logger.warning("rate governor connection lost; reconnecting")
                    self._conn = None
            raise AssertionError("unreachable")

    def take(self, requests: int = 1) -> float:
        """Reserve ``requests`` slots; return the seconds to wait before sending."""
        wait = self._call(self._TAKE, {"account_id": self.account_id, "requests": requests})
        return max(0.0, float(wait or 0.0))

    def acquire(self) -> None:
        wait = self.take(1)
        if wait > 0:
            logger.debug("rate governor: waiting %.3fs (account %s)", wait, self.account_id)
            self._sleep(wait)

    def penalize(self, retry_after: float | None) -> None:
        self._call(self._PENALIZE, {"account_id": self.account_id, "retry_after": retry_after})

    def close(self) -> None:
        """Close the governor's own connection (reopened if the governor is used again).

        A connection given with ``connection=`` is left open: its owner closes it.
        """
        with self._lock:
            if self._owns_conn and self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> PostgresGovernor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
