"""The recorded real Loyverse payloads (shared/loyverse/real/) import with every oddity handled."""

from __future__ import annotations

import decimal
import pathlib
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from loyverse_emulator import server
from loyverse_sync import db
from loyverse_sync.importer import runs, snapshot
from tests.support import importer as testing

REAL = pathlib.Path(__file__).resolve().parents[3] / "shared" / "loyverse" / "real"
if not REAL.is_dir():
    REAL = pathlib.Path("/work/shared/loyverse/real")

pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason="shared/loyverse/real is not beside the checkout")


@pytest.fixture
def emu() -> Iterator[server.EmulatorServer]:
    with server.EmulatorServer(menu="empty", state_from=str(REAL), token="tok", merchants=1) as e:
        yield e


@pytest.fixture
def linked(conn: psycopg.Connection[Any], emu: server.EmulatorServer, fernet_key: bytes) -> dict[str, Any]:
    # store 82158310-... is the mwingi store the items price at 450 for "Shirt bundle".
    index = next(i for i, s in enumerate(emu.merchants[0]["store_ids"]) if s.startswith("82158310"))
    restaurant_id, account_id, store_id = testing.link_emulator(conn, emu, store_index=index)
    return {"restaurant_id": restaurant_id, "account_id": account_id, "store_id": store_id}


def _import(connector: db.Connector, linked: dict[str, Any], **options: Any) -> dict[str, Any]:
    snap = snapshot.get_or_fetch(connector, linked["restaurant_id"])
    return runs.run(connector, linked["restaurant_id"], snap.id, runs.Options(**options))


def test_real_payloads_import_with_their_oddities(dsn: str, connector: db.Connector, conn: psycopg.Connection[Any], linked: dict[str, Any]) -> None:
    result = _import(connector, linked)
    # The set mixes accounts whose auto-assigned SKUs (10000, 10001) collide: those variants
    # are rejected with the reason, everything else imports.
    errors = [i["message"] for i in result["issues"] if i["severity"] == "error"]
    assert result["status"] == "PARTIAL"
    assert errors and all("is also used by variant" in e for e in errors)
    prices = {r["name"]: r["price"] for r in conn.execute(
        "select name, price from public.products where restaurant_id = %s", (linked["restaurant_id"],))}
    # VARIABLE default with FIXED store prices: the linked store's price, not default_*.
    assert prices["Shirt bundle (Small)"] == decimal.Decimal("450.00")
    assert prices["Tea"] == decimal.Decimal("200.00")
    # tai: one store entry for another store -> default_price; duplicates pasted -> imported once.
    assert prices["Chai Latte"] == decimal.Decimal("7000.00")  # issyzac: integral money
    codes = {(i["code"]) for i in result["issues"]}
    # the category missing from the list goes under the fallback, and is reported
    assert "unknown_category" in codes
    assert conn.execute(
        "select count(*) as n from public.categories where restaurant_id = %s and name = 'Uncategorised'",
        (linked["restaurant_id"],)).fetchone()["n"] == 1
    # "Splash" references a tax of the other account
    assert "unknown_tax" in codes
    # "Hair Oil" has no category at all
    hair_oil = next(r for r in runs.report(conn, result["run_id"])["rows"] if r["name"] == "Hair Oil")
    assert hair_oil["category"] is None
    mapped = conn.execute("select count(*) as n from loyverse.loyverse_item_mappings").fetchone()["n"]
    assert mapped == result["created"] + result["updated"] + result["duplicated"]
    logs = conn.execute("select * from loyverse.loyverse_sync_logs where sync_type = 'MENU_IMPORT'").fetchall()
    assert len(logs) == 1 and logs[0]["status"] == "PARTIAL" and logs[0]["items_failed"] == len(errors)


def test_reimporting_an_unchanged_menu_writes_nothing(dsn: str, connector: db.Connector, conn: psycopg.Connection[Any], linked: dict[str, Any]) -> None:
    _import(connector, linked)
    tables = ["public.products", "public.categories", "public.product_groups", "loyverse.loyverse_item_mappings"]
    before = {t: conn.execute(f"select id::text, xmin::text from {t} order by 1").fetchall() for t in tables}
    second = _import(connector, linked)
    after = {t: conn.execute(f"select id::text, xmin::text from {t} order by 1").fetchall() for t in tables}
    assert after == before
    assert second["created"] == 0 and second["updated"] == 0 and second["unchanged"] > 0
    journal = conn.execute(
        "select count(*) as n from loyverse.loyverse_import_journal where run_id = %s", (second["run_id"],)
    ).fetchone()
    assert journal["n"] == 0


def test_reject_unknown_category_fails_those_items_and_imports_the_rest(
    dsn: str, connector: db.Connector, conn: psycopg.Connection[Any], linked: dict[str, Any]
) -> None:
    result = _import(connector, linked, unknown_category="reject")
    assert result["status"] == "PARTIAL"
    errors = [i for i in result["issues"] if i["severity"] == "error"]
    assert any("unknown category" in i["message"] for i in errors)
    assert result["created"] > 0


def test_with_inventory_imports_stock_including_negative(dsn: str, connector: db.Connector, conn: psycopg.Connection[Any], linked: dict[str, Any]) -> None:
    snap = snapshot.get_or_fetch(connector, linked["restaurant_id"], with_inventory=True)
    assert snap.counts.get("inventory", 0) > 0
    result = runs.run(connector, linked["restaurant_id"], snap.id, runs.Options(with_inventory=True))
    assert result["created"] > 0
    stock = conn.execute(
        "select p.stock_quantity from public.products p join loyverse.loyverse_item_mappings m on m.product_id = p.id"
        " where m.loyverse_variant_id = '97defbbc-5ab8-4920-867d-c09faf5b2b55'").fetchone()
    assert stock is not None and stock["stock_quantity"] == decimal.Decimal("-41")
    assert conn.execute("select count(*) as n from public.products where stock_quantity is not null").fetchone()["n"] > 1
