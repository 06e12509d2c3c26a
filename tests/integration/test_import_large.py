"""A generated 10,000-item menu from the emulator arrives whole and imports completely."""

from __future__ import annotations

from typing import Any

import psycopg

from loyverse_sync.emulator import server
from loyverse_sync.importer import runs, snapshot, testing


def test_ten_thousand_items_arrive_whole(dsn: str, conn: psycopg.Connection[Any], fernet_key: bytes) -> None:
    with server.EmulatorServer(menu=10000, token="tok", merchants=1, seed=3) as emu:
        restaurant_id, _account_id, store_id = testing.link_emulator(conn, emu)
        snap = snapshot.fetch(dsn, restaurant_id)
        every = emu.state.items(include_deleted=True)
        live_items = emu.state.items()
    live_variants = {v["variant_id"] for i in live_items for v in i["variants"] if not v.get("deleted_at")}
    assert len(every) == 10000 and snap.counts["item"] == len(every)  # every page, nothing truncated
    result = runs.run(dsn, restaurant_id, snap.id, runs.Options())
    assert result["failed"] == 0, [i for i in result["issues"] if i["severity"] == "error"][:5]
    mapped = {r["loyverse_variant_id"] for r in conn.execute(
        "select loyverse_variant_id from loyverse.loyverse_item_mappings where restaurant_id = %s", (restaurant_id,))}
    assert mapped == live_variants
    assert conn.execute("select count(*) as n from public.products where restaurant_id = %s",
                        (restaurant_id,)).fetchone()["n"] == len(live_variants)
    assert result["created"] == len(live_variants) and store_id
