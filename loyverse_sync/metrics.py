"""Prometheus metrics, read from the SQL views (loyverse.price_sync_status, api_latency, ...) at
each scrape: this module only renders them. Queries live in queries/ops.sql.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
from prometheus_client import core, exposition, registry

from loyverse_sync import db, queries

LATENCY_BOUNDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, float("inf"))



class _ViewCollector(registry.Collector):
    """Reads the views at each scrape (a custom collector, so values are never stale)."""

    def __init__(self, connector: db.Connector) -> None:
        self.connector = connector

    def collect(self) -> Iterator[core.Metric]:
        with self.connector.connection() as conn:
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


def metrics_registry(connector: db.Connector) -> registry.CollectorRegistry:
    reg = registry.CollectorRegistry(auto_describe=False)
    reg.register(_ViewCollector(connector))
    return reg


def render_metrics(connector: db.Connector) -> str:
    """The Prometheus text exposition of every metric, read from the views now."""
    return exposition.generate_latest(metrics_registry(connector)).decode()


def serve_metrics(connector: db.Connector, port: int, host: str = "127.0.0.1") -> Any:
    """Serve /metrics on host:port in a background thread (each scrape borrows a connection
    from ``connector``, which must outlive the server); returns the server."""
    server, _thread = exposition.start_http_server(
        port, addr=host, registry=metrics_registry(connector)
    )
    return server
