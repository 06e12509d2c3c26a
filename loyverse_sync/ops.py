"""Operators' view: Prometheus metrics, health checks and Loyverse API call statistics.

Every number comes from the SQL views (loyverse.price_sync_status, api_latency, ...): this
module only renders them. Queries live in queries/ops.sql.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
from prometheus_client import core, exposition, registry

from loyverse_sync import accounts, db, oauth, queries

logger = logging.getLogger(__name__)

LATENCY_BOUNDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, float("inf"))


# -- API call statistics ------------------------------------------------------------------

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
        self._unsent_key = (connector.conninfo, account_id)

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
    database = connector.conninfo
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
            with _UNSENT_LOCK:
                anything = any(db_ == connector.conninfo for (db_, _) in _UNSENT)
            if anything:
                flush_unsent(connector)

    threading.Thread(target=loop, name="api-call-records", daemon=True).start()
    return stop


# -- Prometheus ---------------------------------------------------------------------------


class _ViewCollector(registry.Collector):
    """Reads the views at each scrape (a custom collector, so values are never stale)."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo

    def collect(self) -> Iterator[core.Metric]:
        with db.connect(self.conninfo, autocommit=True) as conn:
            yield from _metrics(conn)


def _rows(conn: psycopg.Connection[Any], name: str) -> list[dict[str, Any]]:
    return list(queries.execute(conn, "ops", name).fetchall())


def _metrics(conn: psycopg.Connection[Any]) -> Iterator[core.Metric]:
    depth = core.GaugeMetricFamily(
        "loyverse_sync_queue_rows",
        "Price-sync queue rows by restaurant and status.",
        labels=["restaurant", "status"],
    )
    oldest = core.GaugeMetricFamily(
        "loyverse_sync_oldest_pending_seconds",
        "Age of the oldest pending price change.",
        labels=["restaurant"],
    )
    budget = core.GaugeMetricFamily(
        "loyverse_sync_rate_budget_in_use_ratio",
        "Loyverse requests per minute by price sync over the last 5 minutes, as a share of the account budget.",
        labels=["restaurant"],
    )
    for r in _rows(conn, "metrics_status"):
        name = r["restaurant_name"]
        for status in ("pending", "processing", "failed", "dead", "conflicts"):
            depth.add_metric(
                [name, status.rstrip("s") if status == "conflicts" else status], float(r[status])
            )
        age = r["oldest_pending_age"]
        oldest.add_metric([name], age.total_seconds() if age else 0.0)
        if r["budget_per_minute"]:
            budget.add_metric(
                [name], float(r["requests_per_minute"]) / float(r["budget_per_minute"])
            )
    yield from (depth, oldest, budget)

    items = core.CounterMetricFamily(
        "loyverse_sync_items",
        "Price changes finished, by outcome (done, failed, dead).",
        labels=["restaurant", "outcome"],
    )
    for r in _rows(conn, "metrics_outcomes"):
        items.add_metric([r["restaurant_name"], r["outcome"]], float(r["n"]))
    yield items

    requests = core.CounterMetricFamily(
        "loyverse_sync_loyverse_requests",
        "Loyverse API calls by account, endpoint and HTTP status (0 = no response).",
        labels=["account", "method", "endpoint", "status"],
    )
    latency = core.HistogramMetricFamily(
        "loyverse_sync_loyverse_request_seconds",
        "Loyverse API response time.",
        labels=["account", "method", "endpoint"],
    )
    by_endpoint: dict[tuple[str, str, str], tuple[list[int], float]] = {}
    for r in _rows(conn, "metrics_api_calls"):
        key = (r["account_name"], r["method"], r["endpoint"])
        requests.add_metric([*key, str(r["status"])], float(r["calls"]))
        buckets, total = by_endpoint.get(key, ([0] * len(LATENCY_BOUNDS), 0.0))
        by_endpoint[key] = (
            [a + int(b) for a, b in zip(buckets, r["latency_buckets"], strict=True)],
            total + float(r["total_seconds"]),
        )
    for key, (buckets, total) in by_endpoint.items():
        cumulative, running = [], 0
        for bound, count in zip(LATENCY_BOUNDS, buckets, strict=True):
            running += count
            cumulative.append(("+Inf" if bound == float("inf") else str(bound), float(running)))
        latency.add_metric(list(key), cumulative, total)
    yield from (requests, latency)

    limited = core.CounterMetricFamily(
        "loyverse_sync_rate_limited",
        "429 responses from Loyverse, per account.",
        labels=["account"],
    )
    for r in _rows(conn, "metrics_accounts"):
        limited.add_metric([r["name"]], float(r["rate_limited_total"]))
    yield limited

    runs = core.GaugeMetricFamily(
        "loyverse_sync_import_runs", "Menu import runs by status.", labels=["status"]
    )
    for r in _rows(conn, "metrics_import_runs"):
        runs.add_metric([r["status"]], float(r["n"]))
    yield runs

    alerts = core.GaugeMetricFamily(
        "loyverse_sync_alerts_open", "Open alert breaches.", labels=["restaurant", "alert"]
    )
    for r in _rows(conn, "metrics_alerts"):
        alerts.add_metric([r["restaurant_name"], r["alert"]], 1.0)
    yield alerts


def metrics_registry(conninfo: str) -> registry.CollectorRegistry:
    reg = registry.CollectorRegistry(auto_describe=False)
    reg.register(_ViewCollector(conninfo))
    return reg


def render_metrics(conninfo: str) -> str:
    """The Prometheus text exposition of every metric, read from the views now."""
    return exposition.generate_latest(metrics_registry(conninfo)).decode()


def serve_metrics(conninfo: str, port: int, host: str = "127.0.0.1") -> Any:
    """Serve /metrics on host:port in a background thread; returns the server."""
    server, _thread = exposition.start_http_server(
        port, addr=host, registry=metrics_registry(conninfo)
    )
    return server


# -- health -------------------------------------------------------------------------------


@dataclasses.dataclass
class Check:
    name: str
    ok: bool
    detail: str


def health(
    conninfo: str,
    *,
    heartbeat_seconds: float = 60.0,
    token_ttl_seconds: float = 300.0,
    check_tokens: bool = True,
) -> list[Check]:
    """Each check with its reason; healthy when all are ok."""
    checks: list[Check] = []
    try:
        conn = db.connect(conninfo, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        return [Check("database", False, f"unreachable: {' '.join(str(exc).split())}")]
    with conn:
        pending = [m.id for m in db.status(conninfo) if not m.applied]
        if pending:
            checks.append(
                Check(
                    "database",
                    False,
                    f"reachable, {len(pending)} migration(s) pending: {', '.join(pending)}",
                )
            )
            return checks
        checks.append(Check("database", True, "reachable and migrated"))

        hb = queries.execute(conn, "ops", "worker_heartbeat").fetchone()
        age = hb["age_seconds"] if hb else None
        if hb is None or age is None:
            checks.append(
                Check(
                    "worker",
                    False,
                    "no worker is running: none is registered (a worker unregisters when it stops,"
                    " and a stopped one restarts itself only while its process lives);"
                    " start `loyverse-sync worker`",
                )
            )
        elif age > heartbeat_seconds:
            checks.append(
                Check(
                    "worker",
                    False,
                    f"no worker is alive: the last heartbeat was {age:.0f} s ago (limit {heartbeat_seconds:.0f} s);"
                    " a worker that was killed or hangs leaves its registration behind",
                )
            )
        else:
            checks.append(
                Check("worker", True, f"{hb['workers']} worker(s), last heartbeat {age:.0f} s ago")
            )

        for r in _rows(conn, "health_restaurants"):
            name = r["restaurant_name"]
            if (
                r["oldest_pending_seconds"] is not None
                and r["allowed_seconds"] is not None
                and r["oldest_pending_seconds"] > r["allowed_seconds"]
            ):
                checks.append(
                    Check(
                        f"queue:{name}",
                        False,
                        f"oldest pending change is {r['oldest_pending_seconds']:.0f} s old; {r['sync_frequency']} allows {r['allowed_seconds']:.0f} s",
                    )
                )
            else:
                checks.append(Check(f"queue:{name}", True, f"{r['pending']} pending"))
            rate = r["failure_rate"]
            if rate is not None and rate >= r["alert_failure_rate"]:
                checks.append(
                    Check(
                        f"failures:{name}",
                        False,
                        f"failure rate {rate:.0%} over the last hour (threshold {r['alert_failure_rate']:.0%})",
                    )
                )
            else:
                checks.append(
                    Check(
                        f"failures:{name}",
                        True,
                        "failure rate under threshold"
                        if rate is not None
                        else "no finished changes in the last hour",
                    )
                )

        if check_tokens:
            checks.extend(_token_checks(conn, token_ttl_seconds))
    return checks


def _token_checks(conn: psycopg.Connection[Any], ttl: float) -> list[Check]:
    from loyverse_sync.loyverse import errors as lv_errors

    result = []
    for r in _rows(conn, "health_accounts"):
        name = f"token:{r['name']}"
        fresh = r["checked_seconds_ago"] is not None and r["checked_seconds_ago"] < ttl
        if fresh and r["token_valid"] is not None:
            result.append(
                Check(
                    name,
                    bool(r["token_valid"]),
                    f"{'valid' if r['token_valid'] else 'REJECTED by Loyverse'} (checked {r['checked_seconds_ago']:.0f} s ago)",
                )
            )
            continue
        try:
            account = accounts.get_account(conn, r["account_id"])
            with oauth.client_for(account, conn.info.dsn, connection=conn if conn.autocommit else None,
                                  max_attempts=2, timeout=10) as lv:
                lv.get_merchant()
            valid, detail = True, "valid (checked now with GET /merchant/)"
        except oauth.RefreshRejected:
            valid, detail = False, "REJECTED by Loyverse: the OAuth refresh token was refused; connect the account again"
        except lv_errors.Unauthorized:
            valid, detail = False, "REJECTED by Loyverse (401): the token was revoked or expired"
        except lv_errors.LoyverseError as exc:
            result.append(Check(name, False, f"cannot check: {exc}"))
            continue
        except Exception as exc:  # a missing key is a failed check, not a crash
            result.append(Check(name, False, f"cannot check: {exc}"))
            continue
        queries.execute(conn, "ops", "record_token_check", {"id": r["account_id"], "valid": valid})
        result.append(Check(name, valid, detail))
    return result
