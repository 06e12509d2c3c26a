"""Rate governors: pace requests so one Loyverse account never exceeds its budget.

Loyverse allows 300 requests per 300 s per merchant account, shared by every token, app
and process on that account. ``PostgresGovernor`` keeps the budget in the database
(``loyverse.rate_governor_take``), so all our processes and restaurants on one account
draw from the one budget.

Protocol: ``acquire()`` before every HTTP attempt (blocks until the request may be sent);
``penalize(retry_after)`` after every 429, so every process backs off, not just the one
that was refused.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import psycopg
from psycopg.rows import tuple_row

if TYPE_CHECKING:
    from loyverse_sync import db

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


class PostgresGovernor:
    """The account's budget, shared through PostgreSQL by every process using it.

    Calls ``loyverse.rate_governor_take(account, 1)``, which reserves a slot and returns the
    seconds to wait before using it (we sleep that long and send without asking again), and
    ``loyverse.rate_governor_penalize(account, retry_after)`` on a 429. The pacing policy
    (window, budget, penalty) lives in those functions and the account row; this class
    only sleeps.

    Runs its statements on ``connection`` (autocommit) when given: a price drain passes its
    own, so a running job holds one connection, not two; a broken one is its owner's to
    handle, so the error is raised. Otherwise each call borrows a connection of
    ``connector``'s pool, which replaces a connection a server restart broke. Thread-safe.
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
        connector: db.Connector,
        account_id: int,
        *,
        connection: psycopg.Connection[Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if connection is not None and not connection.autocommit:
            # inside the caller's transaction the bucket row would stay locked until commit
            raise ValueError("PostgresGovernor needs an autocommit connection")
        self.connector = connector
        self.account_id = account_id
        self._sleep = sleep
        self._conn = connection
        self._lock = threading.Lock()

    def _call(self, query: str, params: dict[str, Any]) -> Any:
        with self._lock, contextlib.ExitStack() as stack:
            conn = self._conn or stack.enter_context(self.connector.connection())
            # tuple rows whatever the connection's row factory (the pool's are dict rows)
            with conn.cursor(row_factory=tuple_row) as cur:
                row = cur.execute(query, params).fetchone()
            return None if row is None else row[0]

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
