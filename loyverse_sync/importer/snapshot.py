"""Fetch a whole Loyverse menu through the client and stage it raw in PostgreSQL.

Every page is fetched first (through the account's shared rate governor); only then is the
snapshot written, in one transaction, with COPY. A malformed page (not JSON, wrong types)
raises from the client before anything is written. The objects are stored exactly as
received: validation is the import functions' job, so a hostile object is reported there.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

import psycopg

from loyverse_sync import accounts, db, oauth, queries
from loyverse_sync.loyverse import client as client_mod
from loyverse_sync.loyverse import governor as governor_mod

#: (kind, objects fetched so far) after every page, for progress bars.
PageCallback = Callable[[str, int], None]

_NUL_RE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


class NotLinked(Exception):
    """The restaurant has no Loyverse store linked."""


@dataclasses.dataclass
class Snapshot:
    id: int
    account_id: int
    fetched_at: Any
    counts: dict[str, int]
    requests_made: int
    fetch_seconds: float | None
    reused: bool = False


def link_of(conn: psycopg.Connection[Any], restaurant_id: str) -> dict[str, Any]:
    """The restaurant's Loyverse link (account_id, store_id, names)."""
    row = queries.execute(conn, "importer", "restaurant_link", {"restaurant_id": restaurant_id}).fetchone()
    if row is None:
        raise NotLinked(
            "the restaurant is not linked to a Loyverse store "
            "(see `loyverse-sync restaurant link`)"
        )
    return dict(row)


def _finite(value: Any) -> Any:
    """NaN/Infinity (which Python's json accepts) become strings: jsonb refuses them, and the
    import then reports the field as "not a number" instead of failing the whole snapshot."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def to_jsonb_text(obj: Any) -> str:
    """JSON text PostgreSQL's jsonb accepts: no NaN, no NUL character (replaced by U+FFFD)."""
    try:
        text = json.dumps(obj, ensure_ascii=True, allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(obj), ensure_ascii=True, allow_nan=False)
    if "\\u0000" in text:
        text = _NUL_RE.sub(lambda m: m.group(1) + "\\ufffd", text)
    return text


def _object_id(kind: str, obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return None  # kept as it came: the import reports it
    if kind == "inventory":
        v, s = obj.get("variant_id"), obj.get("store_id")
        ident = f"{v}:{s}" if isinstance(v, str) and isinstance(s, str) else None
    else:
        ident = obj.get("id")
        ident = ident if isinstance(ident, str) and ident.strip() else None
    # as in to_jsonb_text: text columns cannot hold NUL
    return ident.replace("\x00", "\ufffd") if ident is not None else None


def fetch(
    connector: db.Connector,
    restaurant_id: str,
    *,
    with_inventory: bool = False,
    on_page: PageCallback | None = None,
    timeout: float = 20.0,
) -> Snapshot:
    """Fetch the linked account's whole menu and store it as a new snapshot."""
    with connector.connection() as conn:
        link = link_of(conn, restaurant_id)
        account = accounts.get_account(conn, link["account_id"])
    requests = 0

    def count(_record: client_mod.RequestRecord) -> None:
        nonlocal requests
        requests += 1

    started = time.monotonic()
    fetched: dict[str, list[dict[str, Any]]] = {}
    pages = 0
    governor = governor_mod.PostgresGovernor(connector, account.id)
    with oauth.client_for(
        account, connector, governor=governor, on_request=count, timeout=timeout
    ) as client:
        merchant = client.get_merchant()
        fetched["store"] = client.list_stores()
        fetched["tax"] = client.list_taxes()
        fetched["category"] = list(client.iter_categories())
        items: list[dict[str, Any]] = []
        for _page, rows in client.iter_item_pages(show_deleted=True):
            pages += 1
            items.extend(rows)
            if on_page:
                on_page("item", len(items))
        fetched["item"] = items
        fetched["modifier"] = list(client.iter_modifiers())
        if with_inventory:
            fetched["inventory"] = list(client.iter_inventory(store_ids=[link["store_id"]]))
    seconds = time.monotonic() - started
    counts = {kind: len(objs) for kind, objs in fetched.items()}
    return store(
        connector,
        account_id=account.id,
        restaurant_id=restaurant_id,
        store_id=link["store_id"],
        merchant=merchant,
        objects=((kind, obj) for kind, objs in fetched.items() for obj in objs),
        counts=counts,
        with_inventory=with_inventory,
        requests_made=requests,
        pages=pages,
        fetch_seconds=seconds,
    )


def store(
    connector: db.Connector,
    *,
    account_id: int,
    restaurant_id: str | None,
    store_id: str | None,
    merchant: dict[str, Any],
    objects: Iterable[tuple[str, dict[str, Any]]],
    counts: dict[str, int],
    with_inventory: bool = False,
    requests_made: int = 0,
    pages: int = 0,
    fetch_seconds: float | None = None,
) -> Snapshot:
    """Write a snapshot and its raw objects in one transaction (COPY)."""
    with connector.connection() as conn, conn.transaction():
        row = queries.execute(
            conn,
            "importer",
            "insert_snapshot",
            {
                "account_id": account_id,
                "restaurant_id": restaurant_id,
                "store_id": store_id,
                "merchant": to_jsonb_text(merchant if isinstance(merchant, dict) else {}),
                "with_inventory": with_inventory,
                "requests_made": requests_made,
                "pages": pages,
                "counts": json.dumps(counts),
                "fetch_seconds": fetch_seconds,
            },
        ).fetchone()
        assert row is not None
        snapshot_id = row["id"]
        with conn.cursor().copy(
            "copy loyverse.loyverse_snapshot_objects (snapshot_id, seq, kind, loyverse_id, payload)"
            " from stdin"
        ) as copy:
            for seq, (kind, obj) in enumerate(objects):
                copy.write_row((snapshot_id, seq, kind, _object_id(kind, obj), to_jsonb_text(obj)))
    return Snapshot(snapshot_id, account_id, row["fetched_at"], counts, requests_made, fetch_seconds)


def fresh(
    connector: db.Connector, restaurant_id: str, *, max_age: float, with_inventory: bool = False
) -> Snapshot | None:
    """The newest snapshot of the restaurant's account younger than `max_age` seconds."""
    with connector.connection() as conn:
        link = link_of(conn, restaurant_id)
        row = queries.execute(
            conn,
            "importer",
            "fresh_snapshot",
            {"account_id": link["account_id"], "max_age": max_age, "with_inventory": with_inventory},
        ).fetchone()
    if row is None:
        return None
    return Snapshot(
        row["id"], link["account_id"], row["fetched_at"], row["counts"], row["requests_made"], None, True
    )


def get_or_fetch(
    connector: db.Connector,
    restaurant_id: str,
    *,
    max_age: float = 600.0,
    refresh: bool = False,
    with_inventory: bool = False,
    on_page: PageCallback | None = None,
) -> Snapshot:
    """A snapshot younger than `max_age` seconds if there is one (unless `refresh`), else a new one."""
    if not refresh and max_age > 0:
        found = fresh(connector, restaurant_id, max_age=max_age, with_inventory=with_inventory)
        if found is not None:
            return found
    return fetch(connector, restaurant_id, with_inventory=with_inventory, on_page=on_page)
