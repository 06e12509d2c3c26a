"""Seeding helpers shared by the price-sync tests and benchmarks (not used in production).

``seed_from_emulator`` registers an emulator merchant as an account, links one restaurant
per store, and creates one mapped product per (variant, store) with Loyverse's current
price as both our price and the last synced price: a catalogue in sync, ready for
``UPDATE products SET price = ...``.
"""

from __future__ import annotations

import dataclasses
import decimal
from typing import Any

import psycopg

from loyverse_sync import accounts
from loyverse_sync.loyverse import client as client_mod


@dataclasses.dataclass
class Seed:
    """What seed_from_emulator created."""

    account_id: int
    merchant_id: str
    restaurants: dict[str, str]  # store_id -> restaurant_id
    products: dict[tuple[str, str], str]  # (variant_id, store_id) -> product_id
    items: dict[str, str]  # variant_id -> item_id


# What the menu import writes on a mapping whose Loyverse price is VARIABLE (sql/0610).
VARIABLE_REASON = "VARIABLE price in Loyverse: imported as 0"


def seed_from_emulator(
    conn: psycopg.Connection[Any],
    emu: Any,
    *,
    merchant_index: int = 0,
    stores: int | None = None,
    items: int | None = None,
    settings: dict[str, Any] | None = None,
    account_name: str | None = None,
    rate_limit_requests: int = 300,
    rate_limit_window_seconds: float = 300.0,
) -> Seed:
    """Account + restaurants + mapped products mirroring an emulator merchant's menu."""
    merchant = emu.merchants[merchant_index]
    token = merchant["tokens"][0]
    currency = merchant["currency"]
    account_id = accounts.add_account(
        conn, name=account_name or f"emu-{merchant['merchant_id'][:8]}", token=token,
        base_url=emu.base_url, merchant_id=merchant["merchant_id"],
        currency_code=currency.get("code", "EUR"), decimal_places=int(currency.get("decimal_places", 2)),
        rate_limit_requests=rate_limit_requests, rate_limit_window_seconds=rate_limit_window_seconds,
    )
    store_ids = list(merchant["store_ids"])[: stores or None]
    with client_mod.LoyverseClient(emu.base_url, token) as client:
        all_items = [i for i in client.iter_items() if not i.get("deleted_at")]
    all_items = [i for i in all_items if any(not v.get("deleted_at") for v in i.get("variants") or [])]
    all_items.sort(key=lambda i: i["id"])
    if items is not None:
        all_items = all_items[:items]
    restaurants: dict[str, str] = {}
    products: dict[tuple[str, str], str] = {}
    variant_items: dict[str, str] = {}
    for n, store_id in enumerate(store_ids):
        restaurant_id = accounts.add_restaurant(conn, f"Restaurant {n + 1} ({store_id[:6]})")
        accounts.link_restaurant(conn, restaurant_id, account_id, store_id)
        if settings:
            conn.execute("update loyverse.loyverse_price_sync_settings set "
                         + ", ".join(f"{k} = %({k})s" for k in settings)  # test-only keys
                         + " where restaurant_id = %(rid)s", {**settings, "rid": restaurant_id})
        restaurants[store_id] = restaurant_id
        rows = []
        for item in all_items:
            for variant in item["variants"]:
                if variant.get("deleted_at"):
                    continue
                entry = next((e for e in variant.get("stores") or [] if e["store_id"] == store_id), None)
                pricing = (entry or {}).get("pricing_type") or variant.get("default_pricing_type") or "FIXED"
                price = entry.get("price") if entry and pricing == "FIXED" else None
                if price is None:
                    price = variant.get("default_price") or 0
                if pricing == "VARIABLE":
                    price = 0  # as the import does: a 0 placeholder, flagged (see VARIABLE_REASON)
                rows.append((item, variant, decimal.Decimal(str(price)).quantize(decimal.Decimal("0.01")),
                             pricing == "VARIABLE"))
        with conn.cursor() as cur:
            for item, variant, price, variable in rows:
                name = (item.get("item_name") or "item")[:50]
                opt = variant.get("option1_value")
                cur.execute(
                    "insert into public.products (restaurant_id, name, price) values (%s, %s, %s) returning id",
                    (restaurant_id, f"{name} {opt}" if opt else name, price),
                )
                product_id = str(_first(cur.fetchone()))
                cur.execute(
                    "insert into loyverse.loyverse_item_mappings (product_id, restaurant_id, account_id,"
                    " loyverse_item_id, loyverse_variant_id, loyverse_store_id, last_synced_price,"
                    " last_synced_at, sync_direction, needs_attention, attention_reason)"
                    " values (%s, %s, %s, %s, %s, %s, %s, now(), 'FROM_LOYVERSE', %s, %s)",
                    (product_id, restaurant_id, account_id, item["id"], variant["variant_id"], store_id, price,
                     variable, VARIABLE_REASON if variable else None),
                )
                products[(variant["variant_id"], store_id)] = product_id
                variant_items[variant["variant_id"]] = item["id"]
    return Seed(account_id, merchant["merchant_id"], restaurants, products, variant_items)


def _first(row: Any) -> Any:
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


def loyverse_prices(emu: Any, merchant_id: str) -> dict[tuple[str, str], decimal.Decimal | None]:
    """(variant_id, store_id) -> the store's price in the emulator right now."""
    out: dict[tuple[str, str], decimal.Decimal | None] = {}
    merchant = next(m for m in emu.merchants if m["merchant_id"] == merchant_id)
    with client_mod.LoyverseClient(emu.base_url, merchant["tokens"][0]) as client:
        for item in client.iter_items():
            for variant in item.get("variants") or []:
                for entry in variant.get("stores") or []:
                    price = entry.get("price")
                    out[(variant["variant_id"], entry["store_id"])] = (
                        None if price is None else decimal.Decimal(str(price)).quantize(decimal.Decimal("0.001"))
                    )
    return out


def db_prices(conn: psycopg.Connection[Any], account_id: int) -> dict[tuple[str, str], decimal.Decimal]:
    """(variant_id, store_id) -> our final rounded price, as Loyverse should show it.

    Mappings of a VARIABLE price (entered at the counter; imported as a 0 placeholder and
    flagged) are left out: there is no price of ours that Loyverse should show for them.
    """
    rows = conn.execute(
        "select m.loyverse_variant_id, m.loyverse_store_id,"
        " loyverse.round_price(p.price, s.price_rounding_rule, a.decimal_places) as price"
        " from loyverse.loyverse_item_mappings m join public.products p on p.id = m.product_id"
        " join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id"
        " join loyverse.accounts a on a.id = m.account_id where m.account_id = %s"
        " and not (m.needs_attention and m.attention_reason like 'VARIABLE price%%')",
        (account_id,),
    ).fetchall()
    out = {}
    for row in rows:
        values = list(row.values()) if isinstance(row, dict) else list(row)
        out[(values[0], values[1])] = decimal.Decimal(values[2]).quantize(decimal.Decimal("0.001"))
    return out
