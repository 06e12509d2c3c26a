"""Helpers for the import's tests and benchmark: a restaurant linked to an emulator store."""

from __future__ import annotations

from typing import Any

import psycopg

from loyverse_sync import accounts


def link_emulator(
    conn: psycopg.Connection[Any],
    emu: Any,
    *,
    restaurant: str = "Bistro",
    account: str = "emu",
    merchant_index: int = 0,
    store_index: int = 0,
    rate_limit_requests: int = 100_000,
) -> tuple[str, int, str]:
    """Register the emulator's merchant as an account and link a new restaurant to one of its
    stores. Returns (restaurant_id, account_id, store_id). Needs LOYVERSE_SYNC_KEY."""
    merchant = emu.merchants[merchant_index]
    currency = merchant.get("currency") or {}
    account_id = accounts.add_account(
        conn,
        name=account,
        token=merchant["tokens"][0],
        base_url=emu.base_url,
        merchant_id=merchant["merchant_id"],
        currency_code=(currency.get("code") if isinstance(currency, dict) else None) or "EUR",
        decimal_places=(currency.get("decimal_places") if isinstance(currency, dict) else None) or 2,
        rate_limit_requests=rate_limit_requests,
        rate_limit_window_seconds=1.0,
    )
    restaurant_id = accounts.add_restaurant(conn, restaurant)
    store_id = merchant["store_ids"][store_index]
    accounts.link_restaurant(conn, restaurant_id, account_id, store_id)
    return restaurant_id, account_id, store_id
