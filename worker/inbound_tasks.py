"""The procrastinate tasks of the inbound side (changes heard from Loyverse).

* ``apply_loyverse_inbox(account_id)``: deferred from SQL by ``loyverse.wake_inbox`` (queueing
  lock and lock ``loyverse_inbox:<account>``, like the price sync); applies the account's
  pending deliveries with ``loyverse.apply_loyverse_inbox``.
* ``poll_loyverse_items`` (every minute): polls each due account (its own poll interval,
  default 300 s) and wakes inbox jobs that were lost (a worker SIGKILLed mid-job).
* ``reconcile_loyverse_prices`` (hourly): reconciles every FROM_LOYVERSE/BIDIRECTIONAL/TO_LOYVERSE
  restaurant that has sync enabled; drift shows in loyverse.price_drift and raises the
  PRICE_DRIFT alert. Repairs only when asked (`sync reconcile --repair`).
* ``prune_loyverse_inbox`` (hourly): retention of applied and failed deliveries.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import procrastinate

from loyverse_sync import db
from loyverse_sync.inbound import jobs

APPLY_TASK = "apply_loyverse_inbox"


def register(app: procrastinate.App, connector: db.Connector, queue: str) -> None:
    """Register the inbound tasks on ``app`` (in the price-sync queue: one worker command)."""

    @app.task(name=APPLY_TASK, queue=queue, retry=procrastinate.RetryStrategy(max_attempts=5, exponential_wait=2))
    async def apply_loyverse_inbox(account_id: int) -> dict[str, Any]:
        """Apply one account's pending Loyverse deliveries (webhooks, poll pages)."""
        return await asyncio.to_thread(jobs.apply_inbox, connector, int(account_id))

    @app.periodic(cron="* * * * *", periodic_id="poll_loyverse")
    @app.task(name="poll_loyverse_items", queue=queue, queueing_lock="poll_loyverse_items")
    async def poll_loyverse_items(timestamp: int) -> list[dict[str, Any]]:
        """Safety net under webhooks: GET /items?updated_at_min= for each due account into the inbox."""
        return await asyncio.to_thread(jobs.poll_due, connector)

    @app.periodic(cron="23 * * * *", periodic_id="prune_inbox")
    @app.task(name="prune_loyverse_inbox", queue=queue, queueing_lock="prune_loyverse_inbox")
    async def prune_loyverse_inbox(timestamp: int) -> int:
        """Retention: applied and failed deliveries older than LOYVERSE_SYNC_RETENTION_DAYS (7)."""
        return await asyncio.to_thread(_prune, connector)

    @app.periodic(cron="41 * * * *", periodic_id="reconcile")
    @app.task(name="reconcile_loyverse_prices", queue=queue, queueing_lock="reconcile_loyverse_prices")
    async def reconcile_loyverse_prices(timestamp: int) -> list[dict[str, Any]]:
        """Hourly: compare every synced restaurant's prices with Loyverse (drift -> PRICE_DRIFT alert)."""
        return await asyncio.to_thread(_reconcile_all, connector)


def _prune(connector: db.Connector) -> int:
    days = float(os.environ.get("LOYVERSE_SYNC_RETENTION_DAYS", "7"))
    row = connector.execute_one("inbound", "prune_inbox", {"older_than_seconds": days * 86400, "limit": 50000})
    return int(row["pruned"]) if row else 0


def _reconcile_all(connector: db.Connector) -> list[dict[str, Any]]:
    out = []
    for row in connector.execute("inbound", "reconcilable_restaurants"):
        try:
            out.append(jobs.reconcile(connector, row["id"]).as_dict())
        except Exception as exc:  # one restaurant's failure must not stop the others
            out.append({"restaurant_id": row["id"], "error": f"{type(exc).__name__}: {exc}"})
    return out
