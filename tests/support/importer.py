"""Helpers for the import's tests: a restaurant linked to a store, a staged snapshot, an item.

`link_emulator` is shared with the import benchmarks (bench/rig.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from bench.rig import link_emulator
from loyverse_sync import accounts, db

__all__ = ["item", "link_emulator", "link_local", "stage"]


def link_local(
    conn: psycopg.Connection[Any],
    *,
    restaurant: str = "Bistro",
    store_id: str = "store-1",
    decimal_places: int = 2,
    base_url: str = "http://127.0.0.1:9/v1.0",
    token: str = "unused",
) -> tuple[str, int, str]:
    """A restaurant linked to a store of an account that is never called (for staging
    snapshots directly). Returns (restaurant_id, account_id, store_id). Needs LOYVERSE_SYNC_KEY."""
    account_id = accounts.add_account(
        conn, name=f"local-{restaurant}", token=token, base_url=base_url,
        decimal_places=decimal_places,
    )
    restaurant_id = accounts.add_restaurant(conn, restaurant)
    accounts.link_restaurant(conn, restaurant_id, account_id, store_id)
    return restaurant_id, account_id, store_id


def stage(
    conninfo: str,
    account_id: int,
    restaurant_id: str,
    store_id: str,
    *,
    items: Sequence[Any] = (),
    categories: Sequence[Any] = (),
    taxes: Sequence[Any] = (),
    modifiers: Sequence[Any] = (),
    inventory: Sequence[Any] = (),
    merchant: dict[str, Any] | None = None,
) -> int:
    """Stage a snapshot exactly as `import fetch` would have stored these objects; its id."""
    from loyverse_sync.importer import snapshot

    kinds = {"store": [{"id": store_id, "name": "Store"}], "tax": list(taxes), "category": list(categories),
             "item": list(items), "modifier": list(modifiers), "inventory": list(inventory)}
    with db.Connector(conninfo) as connector:
        snap = snapshot.store(
            connector, account_id=account_id, restaurant_id=restaurant_id, store_id=store_id,
            merchant=merchant or {"currency": {"code": "EUR", "decimal_places": 2}},
            objects=((k, o) for k, objs in kinds.items() for o in objs),
            counts={k: len(v) for k, v in kinds.items()}, with_inventory=bool(inventory),
        )
    return snap.id


def item(
    item_id: str,
    name: str,
    *variants: dict[str, Any],
    store_id: str = "store-1",
    **fields: Any,
) -> dict[str, Any]:
    """A Loyverse item; each variant dict may give variant_id, sku, price, option1_value,
    stores (else one FIXED store entry at `price` for `store_id`)."""
    out_variants = []
    for n, v in enumerate(variants or ({},)):
        vv = {"variant_id": v.get("variant_id", f"{item_id}-v{n}"), "item_id": item_id,
              "sku": v.get("sku"), "default_pricing_type": "FIXED", "default_price": v.get("price", 1)}
        vv["stores"] = v.get("stores", [{"store_id": store_id, "pricing_type": "FIXED",
                                         "price": v.get("price", 1), "available_for_sale": True}])
        vv.update({k: val for k, val in v.items() if k not in ("variant_id", "sku", "price", "stores")})
        out_variants.append(vv)
    return {"id": item_id, "item_name": name, "variants": out_variants, **fields}
