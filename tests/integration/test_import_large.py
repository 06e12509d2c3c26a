"""A generated 10,000-item menu from the emulator arrives whole and imports completely."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from loyverse_emulator import server
from loyverse_sync import db
from loyverse_sync.importer import runs, snapshot
from tests.support import importer as testing


@pytest.mark.slow
def test_ten_thousand_items_arrive_whole(dsn: str, connector: db.Connector, conn: psycopg.Connection[Any], fernet_key: bytes) -> None:
    with server.EmulatorServer(menu=10000, token="tok", merchants=1, seed=3) as emu:
        restaurant_id, _account_id, store_id = testing.link_emulator(conn, emu)
        snap = snapshot.fetch(connector, restaurant_id)
        every = emu.state.items(include_deleted=True)
        live_items = emu.state.items()
    live_variants = {v["variant_id"] for i in live_items for v in i["variants"] if not v.get("deleted_at")}
    assert len(every) == 10000 and snap.counts["item"] == len(every)  # every page, nothing truncated
    result = runs.run(connector, restaurant_id, snap.id, runs.Options())
    assert result["failed"] == 0, [i for i in result["issues"] if i["severity"] == "error"][:5]
    mapped = {r["loyverse_variant_id"] for r in conn.execute(
        "select loyverse_variant_id from loyverse.loyverse_item_mappings where restaurant_id = %s", (restaurant_id,))}
    assert mapped == live_variants
    assert conn.execute("select count(*) as n from public.products where restaurant_id = %s",
                        (restaurant_id,)).fetchone()["n"] == len(live_variants)
    assert result["created"] == len(live_variants) and store_id

    # Created rows are journaled set-based (one journal row per 5,000 created rows): a few
    # journal rows, yet undo still sees a change to any one created row, refuses listing just
    # that row, and with force removes every row the run created.
    journal = conn.execute(
        "select table_name, count(*) as n, sum(jsonb_array_length(after_image)) as images"
        " from loyverse.loyverse_import_journal where run_id = %s and row_key like '#%%' group by table_name",
        (result["run_id"],)).fetchall()
    by_table = {r["table_name"]: r for r in journal}
    assert by_table["products"]["images"] == len(live_variants) and by_table["products"]["n"] == -(-len(live_variants) // 5000)
    assert by_table["loyverse_item_mappings"]["images"] == len(live_variants)
    last = conn.execute("select id, name from public.products where restaurant_id = %s order by created_at desc, id desc"
                        " limit 1", (restaurant_id,)).fetchone()
    conn.execute("update public.products set name = name || ' (edited)' where id = %s", (last["id"],))
    with pytest.raises(runs.ImportProblem) as refused:
        runs.undo(connector, result["run_id"])
    assert [(r["table"], r["key"]) for r in refused.value.rows] == [("products", str(last["id"]))]
    undone = runs.undo(connector, result["run_id"], force=True)
    assert undone["deleted"] > 2 * len(live_variants)
    for table in ("public.products", "loyverse.loyverse_item_mappings", "public.product_groups", "public.categories"):
        assert conn.execute(f"select count(*) as n from {table} where restaurant_id = %s",
                            (restaurant_id,)).fetchone()["n"] == 0, table
