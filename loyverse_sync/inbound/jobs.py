"""The inbound side's work outside SQL: apply an account's inbox, poll Loyverse, reconcile.

Every decision is taken in SQL (``loyverse.apply_loyverse_inbox`` and the functions it calls,
``record_price_drift``, ``repair_price_drift``); this module only moves bytes: it reads
Loyverse through the account's rate governor and hands what it read to the database. Each
function takes the process's ``db.Connector``; one job holds one connection of it (the
governor runs on that connection too).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.types import json as pg_json

from loyverse_sync import accounts, db, queries
from loyverse_sync.loyverse import client as client_mod
from loyverse_sync.loyverse import governor as governor_mod


def apply_inbox(connector: db.Connector, account_id: int, *, batch: int = 50, max_wait: float = 30.0) -> dict[str, Any]:
    """Apply the account's pending deliveries until none is due.

    A delivery that waits for a price write in flight (deferred) is tried again a second
    later, for at most ``max_wait`` seconds; after that the periodic wake-up picks it up.
    """
    totals = {"applied": 0, "failed": 0, "deferred": 0, "refreshed": 0, "remaining": 0}
    deadline = time.monotonic() + max_wait
    with connector.connection() as conn:
        while True:
            row = queries.execute(conn, "inbound", "apply_inbox", {"account_id": account_id, "limit": batch}).fetchone()
            result = row["result"] if row else {}
            for key in ("applied", "failed", "deferred"):
                totals[key] += int(result.get(key) or 0)
            if result.get("refresh_items"):
                # Versions that a write of ours may have replaced: ask Loyverse for the items now.
                totals["refreshed"] += refresh_items(conn, connector, account_id, list(result["refresh_items"]))
                if time.monotonic() < deadline:
                    continue  # (past the deadline, the job queued by the refresh's wake-up goes on)
            totals["remaining"] = int(result.get("remaining") or 0)
            if totals["remaining"] == 0:
                return totals
            if result.get("applied") or result.get("failed"):
                continue  # more due now
            wait = float(result.get("next_due_seconds") or 0)
            if time.monotonic() + wait > deadline:
                return totals
            time.sleep(min(max(wait, 0.05), 1.0))


def make_client(
    connector: db.Connector, account: accounts.Account, *, timeout: float = 30.0,
    on_request: Callable[[client_mod.RequestRecord], None] | None = None,
    connection: psycopg.Connection[Any] | None = None,
) -> client_mod.LoyverseClient:
    """A client for ``account`` paced by its shared PostgresGovernor, like every request (on
    ``connection`` when given, the job's own autocommit one, else on the connector's pool)."""
    return client_mod.LoyverseClient(
        account.base_url, account.token,
        governor=governor_mod.PostgresGovernor(connector, account.id, connection=connection),
        timeout=timeout, on_request=on_request,
    )


def _body(merchant_id: str | None, items: list[dict[str, Any]], read_at: dt.datetime | None) -> bytes:
    # Canonical JSON; read_at = the database's clock when the read started (the apply job
    # compares it with our writes' completion times).
    doc = {"merchant_id": merchant_id, "type": "items.update", "items": items,
           "read_at": read_at.isoformat() if read_at else None}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _db_now(conn: psycopg.Connection[Any]) -> dt.datetime | None:
    row = queries.execute(conn, "inbound", "now").fetchone()
    return row["now"] if row else None


def refresh_items(conn: psycopg.Connection[Any], connector: db.Connector, account_id: int, item_ids: list[str]) -> int:
    """Read items from Loyverse now (deleted ones too, 250 a request) into the inbox (source
    ``refresh``): the current state decides what a delivery older than a write of ours could not."""
    account = accounts.AccountCache().get(conn, account_id)
    with make_client(connector, account, connection=conn) as client:
        read_at = _db_now(conn)
        items = client.get_items(item_ids, show_deleted=True)
    if not items:
        return 0
    queries.execute(conn, "inbound", "receive", {
        "account_id": account_id, "source": "refresh", "headers": "{}",
        "body": _body(account.merchant_id, items, read_at)}).fetchone()
    return len(items)


@dataclasses.dataclass
class PollResult:
    account_id: int
    pages: int = 0
    items: int = 0
    stored: int = 0
    polled_until: dt.datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["polled_until"] = self.polled_until.isoformat() if self.polled_until else None
        return out


def poll_account(
    connector: db.Connector, account_id: int, updated_at_min: dt.datetime | None, *,
    client: client_mod.LoyverseClient | None = None,
) -> PollResult:
    """GET /items?updated_at_min=... (deleted items too), every page into the inbox.

    ``updated_at_min`` None (never polled): nothing is read, the cursor starts now on Loyverse's
    clock as measured (the menu import brought the state in). Each page is stored as one delivery of source ``poll``.
    """
    result = PollResult(account_id)
    with connector.connection() as conn:
        if updated_at_min is None:
            now = queries.execute(conn, "inbound", "loyverse_now", {"account_id": account_id}).fetchone()
            result.polled_until = now["now"] if now else None
            queries.execute(conn, "inbound", "finish_poll", {"account_id": account_id,
                                                             "polled_until": result.polled_until})
            return result
        account = accounts.AccountCache().get(conn, account_id)
        own = client is None
        client = client or make_client(connector, account, connection=conn)
        newest = updated_at_min
        read_at = _db_now(conn)
        try:
            for _page, items in client.iter_item_pages(updated_at_min=updated_at_min, show_deleted=True):
                result.pages += 1
                result.items += len(items)
                for item in items:
                    stamp = client_mod.parse_timestamp(item.get("updated_at"))
                    if stamp is not None and stamp > newest:
                        newest = stamp
                if items:
                    row = queries.execute(conn, "inbound", "receive", {
                        "account_id": account_id, "source": "poll", "headers": "{}",
                        "body": _body(account.merchant_id, items, read_at)}).fetchone()
                    result.stored += 1 if row and row["id"] is not None else 0
        finally:
            if own:
                client.close()
        result.polled_until = newest
        queries.execute(conn, "inbound", "finish_poll", {"account_id": account_id, "polled_until": newest})
    return result


def poll_due(connector: db.Connector) -> list[dict[str, Any]]:
    """Poll every account that is due (``loyverse.due_inbound_polls``); wake lost inbox jobs."""
    with connector.connection() as conn:
        due = queries.execute(conn, "inbound", "due_polls").fetchall()
        queries.execute(conn, "inbound", "wake_pending")
    out = []
    for row in due:
        try:
            out.append(poll_account(connector, int(row["account_id"]), row["updated_at_min"]).as_dict())
        except Exception as exc:  # one account's failure must not stop the others' polls
            out.append({"account_id": row["account_id"], "error": f"{type(exc).__name__}: {exc}"})
    return out


@dataclasses.dataclass
class ReconcileResult:
    restaurant_id: str
    products: int
    items: int
    requests: int
    drift: int
    repair: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def reconcile(
    connector: db.Connector, restaurant_id: str, *, repair: bool = False,
    client: client_mod.LoyverseClient | None = None,
) -> ReconcileResult:
    """Compare every mapped product of a restaurant with Loyverse (GET /items?items_ids=, 250 a
    request), replace its rows of loyverse.price_drift, and with ``repair`` fix them in the
    restaurant's direction (loyverse.repair_price_drift)."""
    with connector.connection() as conn:
        return _reconcile(conn, connector, restaurant_id, repair=repair, client=client)


def _reconcile(
    conn: psycopg.Connection[Any], connector: db.Connector, restaurant_id: str, *, repair: bool,
    client: client_mod.LoyverseClient | None,
) -> ReconcileResult:
    rows = queries.execute(conn, "inbound", "mapped_items", {"restaurant_id": restaurant_id}).fetchall()
    if not rows:
        return ReconcileResult(restaurant_id, 0, 0, 0, 0)
    account_id = int(rows[0]["account_id"])
    item_ids = sorted({r["loyverse_item_id"] for r in rows})
    requests = 0

    def count(_record: client_mod.RequestRecord) -> None:
        nonlocal requests
        requests += 1

    account = accounts.AccountCache().get(conn, account_id)
    own = client is None
    if client is None:
        client = make_client(connector, account, on_request=count, connection=conn)
    try:
        read = client.read_items(item_ids)
    finally:
        if own:
            client.close()
    if read.notes or read.conflicts:
        raise RuntimeError("Loyverse's answer could not be fully trusted: "
                           + "; ".join(read.notes + [f"{k}: {v}" for k, v in read.conflicts.items()])[:500])
    items = list(read.items.values())
    with conn.transaction():
        found = queries.execute(conn, "inbound", "record_drift", {
            "restaurant_id": restaurant_id, "items": pg_json.Jsonb(items)}).fetchone()
        fixed = None
        if repair:
            fixed_row = queries.execute(conn, "inbound", "repair_drift", {"restaurant_id": restaurant_id}).fetchone()
            fixed = fixed_row["result"] if fixed_row else None
    return ReconcileResult(restaurant_id, len(rows), len(items), requests, int(found["found"]) if found else 0, fixed)
