"""The import's SQL functions called directly on staged snapshots: plan, conflict rules,
duplicates, validation reasons, the tax price factor, stock, modifier links and undo."""

from __future__ import annotations

import decimal
import json
from typing import Any

import psycopg
import pytest

from tests.support import importer as testing

D = decimal.Decimal


@pytest.fixture
def local(conn: psycopg.Connection[Any], dsn: str, fernet_key: bytes) -> dict[str, Any]:
    restaurant_id, account_id, store_id = testing.link_local(conn)
    return {"dsn": dsn, "conn": conn, "restaurant_id": restaurant_id, "account_id": account_id, "store_id": store_id}


def stage(local: dict[str, Any], **objects: Any) -> int:
    return testing.stage(local["dsn"], local["account_id"], local["restaurant_id"], local["store_id"], **objects)


def new_run(local: dict[str, Any], snapshot_id: int, **options: Any) -> int:
    return local["conn"].execute(
        "insert into loyverse.loyverse_import_runs (restaurant_id, account_id, snapshot_id, status, options)"
        " values (%s, %s, %s, 'RUNNING', %s) returning id",
        (local["restaurant_id"], local["account_id"], snapshot_id, json.dumps(options)),
    ).fetchone()["id"]


def plan(local: dict[str, Any], snapshot_id: int, **options: Any) -> tuple[int, dict[str, Any]]:
    run_id = new_run(local, snapshot_id, **options)
    summary = local["conn"].execute("select loyverse.import_plan(%s) as s", (run_id,)).fetchone()["s"]
    return run_id, summary


def run(local: dict[str, Any], snapshot_id: int, **options: Any) -> tuple[int, dict[str, Any]]:
    run_id, _ = plan(local, snapshot_id, **options)
    conn = local["conn"]
    with conn.transaction():
        conn.execute("select loyverse.import_apply_objects(%s)", (run_id,))
        conn.execute("select loyverse.import_apply_batch(%s, null)", (run_id,))
        result = conn.execute("select loyverse.import_finish(%s) as r", (run_id,)).fetchone()["r"]
    return run_id, result


def rows(local: dict[str, Any], run_id: int) -> dict[str, dict[str, Any]]:
    return {r["variant_id"]: r for r in local["conn"].execute(
        "select * from loyverse.loyverse_import_plan where run_id = %s order by row_no", (run_id,))}


def product(local: dict[str, Any], name: str, sku: str | None = None, price: str = "1") -> str:
    return str(local["conn"].execute(
        "insert into public.products (restaurant_id, name, sku, price) values (%s, %s, %s, %s) returning id",
        (local["restaurant_id"], name, sku, price)).fetchone()["id"])


def test_plan_prices_names_and_summary(local: dict[str, Any]) -> None:
    snap = stage(local, categories=[{"id": "c1", "name": "Drinks"}], items=[
        testing.item("i1", "Latte", {"sku": "L1", "price": 3.5}, category_id="c1"),
        testing.item("i2", "Shirt", {"sku": "S", "price": 10, "option1_value": "Small"},
                     {"sku": "M", "price": 12, "option1_value": "Medium"}, option1_name="Size"),
        # no entry for our store: default_price
        testing.item("i3", "Tea", {"sku": "T", "price": 2, "stores": [{"store_id": "other", "price": 9}]}),
    ])
    run_id, summary = plan(local, snap)
    assert summary["variants"] == 4 and summary["create"] == 4 and summary["undecided"] == 0
    r = rows(local, run_id)
    assert r["i1-v0"]["price"] == D("3.50") and r["i1-v0"]["name"] == "Latte"
    assert r["i2-v1"]["name"] == "Shirt (Medium)" and r["i2-v1"]["price"] == D("12.00")
    assert r["i3-v0"]["price"] == D("2.00")
    assert summary["objects"]["category"]["create"] == 1 and summary["objects"]["item"]["create"] == 1
    # planning writes nothing to the catalogue
    assert local["conn"].execute("select count(*) as n from public.products").fetchone()["n"] == 0


def test_conflict_rules_mapping_then_sku_then_name(local: dict[str, Any]) -> None:
    snap = stage(local, items=[
        testing.item("i1", "Latte", {"sku": "L1"}),
        testing.item("i2", "Mocha", {"sku": "M1"}),
        testing.item("i3", "Chai", {"sku": "C1"}),
        testing.item("i4", "Flat White", {"sku": "F1"}),
    ])
    _run1, _ = run(local, snap, items=["Latte"])  # i1 becomes mapped
    latte = local["conn"].execute("select id from public.products where name = 'Latte'").fetchone()["id"]
    product(local, "latte")                    # same name as the mapped variant: the mapping wins
    product(local, "Something", sku="M1")      # SKU match
    product(local, "mocha")                    # name match too: SKU wins
    product(local, "  CHAI ")                  # name match (case/space-insensitive)
    run_id, summary = plan(local, snap, conflict="skip")
    r = rows(local, run_id)
    assert (r["i1-v0"]["match_rule"], str(r["i1-v0"]["matched_product_id"])) == ("mapping", str(latte))
    assert r["i1-v0"]["decision"] == "update" and r["i1-v0"]["decision_reason"] == "re-sync of a mapped product"
    assert (r["i2-v0"]["match_rule"], r["i2-v0"]["matched_name"]) == ("sku", "Something")
    assert (r["i3-v0"]["match_rule"], r["i3-v0"]["matched_name"]) == ("name", "  CHAI ")
    assert r["i4-v0"]["match_rule"] is None and r["i4-v0"]["decision"] == "create"
    assert r["i2-v0"]["decision"] == "skip" and r["i2-v0"]["decision_reason"] == "--conflict skip"
    assert summary["matched"] == {"mapping": 1, "sku": 1, "name": 1}
    # manual without decisions: conflicts stay undecided (the mapping is never a conflict)
    run_id, summary = plan(local, snap, conflict="manual", decisions={"i3-v0": "update"})
    assert summary["undecided"] == 1 and rows(local, run_id)["i3-v0"]["decision"] == "update"


def test_duplicates_get_the_next_suffix_and_a_unique_sku(local: dict[str, Any]) -> None:
    product(local, "Latte", sku="L1")
    product(local, "Latte (Loyverse)", sku="L1-LV")
    snap = stage(local, items=[testing.item("i1", "Latte", {"sku": "L1"}), testing.item("i2", "Chai", {"sku": "C"})])
    product(local, "Chai")
    run_id, result = run(local, snap, conflict="duplicate")
    assert result["duplicated"] == 2
    names = {r["name"]: r["sku"] for r in local["conn"].execute("select name, sku from public.products")}
    assert names["Latte (Loyverse 2)"] == "L1-LV2" and names["Chai (Loyverse)"] == "C-LV"
    assert {r["match_rule"] for r in rows(local, run_id).values()} == {"sku", "name"}


def test_validation_reasons(local: dict[str, Any]) -> None:
    items = [
        testing.item("ok", "Fine", {"sku": "A", "price": 1}),
        testing.item("neg", "Negative", {"sku": "B", "price": -1}),
        testing.item("long", "x" * 65, {"sku": "C"}),
        testing.item("skutype", "Sku", {"sku": {"a": 1}}),
        testing.item("dup", "Dup", {"sku": "A"}),
        testing.item("nan", "Nan", {"sku": "D", "price": "12"}),
        testing.item("huge", "Huge", {"sku": "E", "price": 1e15}),
        {"id": "novariants", "item_name": "Empty", "variants": []},
        {"item_name": "No id", "variants": [{"variant_id": "x"}]},
        testing.item("cat", "Cat", {"sku": "F"}, category_id="nowhere"),
        testing.item("opt", "Opt", {"sku": "G"}, option1_name="Size"),
    ]
    run_id, summary = plan(local, stage(local, items=items), unknown_category="reject")
    errors = {r["item_id"]: "; ".join(r["errors"]) for r in rows(local, run_id).values() if r["errors"]}
    assert set(errors) == {"neg", "long", "skutype", "dup", "nan", "huge", "novariants", None, "cat", "opt"}
    assert "negative price -1" in errors["neg"]
    assert "longer than 64" in errors["long"]
    assert "sku is not text" in errors["skutype"]
    assert "also used by variant ok-v0" in errors["dup"]
    assert "price is not a number" in errors["nan"]
    assert "too large" in errors["huge"]
    assert "no variants" in errors["novariants"]
    assert "has no id" in errors[None]
    assert "unknown category nowhere" in errors["cat"]
    assert "option1_value is missing" in errors["opt"]
    assert summary["fail"] == 10 and summary["create"] == 1
    issues = local["conn"].execute(
        "select count(*) as n from loyverse.loyverse_import_issues where run_id = %s and severity = 'error'",
        (run_id,)).fetchone()["n"]
    assert issues >= 10


@pytest.mark.parametrize(("include_tax", "tax_type", "loyverse", "ours", "factor"), [
    (True, "ADDED", "4.60", "4.83", "1.050000"),
    (True, "INCLUDED", "4.60", "4.60", "1.000000"),
    (False, "INCLUDED", "4.60", "4.38", "0.952381"),
    (False, "ADDED", "4.60", "4.60", "1.000000"),
])
def test_price_factor_records_the_tax_conversion(
    local: dict[str, Any], include_tax: bool, tax_type: str, loyverse: str, ours: str, factor: str
) -> None:
    local["conn"].execute("update loyverse.loyverse_price_sync_settings set prices_include_tax = %s"
                          " where restaurant_id = %s", (include_tax, local["restaurant_id"]))
    snap = stage(local, taxes=[{"id": "t5", "name": "VAT", "type": tax_type, "rate": 5}], items=[
        testing.item("i1", "Taxed", {"sku": "A", "price": float(loyverse)}, tax_ids=["t5"]),
        testing.item("i2", "Untaxed", {"sku": "B", "price": 2.5}),
    ])
    run(local, snap)
    got = {r["name"]: r for r in local["conn"].execute(
        "select p.name, p.price, m.price_factor, m.last_synced_price from public.products p"
        " join loyverse.loyverse_item_mappings m on m.product_id = p.id")}
    assert got["Taxed"]["price"] == D(ours) and got["Taxed"]["price_factor"] == D(factor)
    assert got["Taxed"]["last_synced_price"] == D(loyverse)
    # what price sync sends back: round(our price / price_factor) is the Loyverse price again
    assert round(got["Taxed"]["price"] / got["Taxed"]["price_factor"], 2) == D(loyverse)
    assert got["Untaxed"]["price_factor"] == 1


def test_undo_refuses_changed_rows_and_force_restores(local: dict[str, Any]) -> None:
    mine = product(local, "Mine", sku="A", price="9")
    snap = stage(local, items=[testing.item("i1", "Theirs", {"sku": "A", "price": 1}),
                               testing.item("i2", "New", {"sku": "B", "price": 2})])
    run_id, _ = run(local, snap, conflict="update")
    conn = local["conn"]
    conn.execute("update public.products set price = 5 where sku = 'B'")
    result = conn.execute("select loyverse.import_undo(%s, false) as r", (run_id,)).fetchone()["r"]
    assert result["refused"] and [c["reason"] for c in result["changed"]] == ["changed since the run"]
    assert conn.execute("select count(*) as n from public.products").fetchone()["n"] == 2  # nothing undone
    result = conn.execute("select loyverse.import_undo(%s, true) as r", (run_id,)).fetchone()["r"]
    assert not result["refused"]
    assert [(r["id"], r["name"], r["price"]) for r in conn.execute("select id::text, name, price from public.products")] \
        == [(mine, "Mine", D("9.00"))]
    assert conn.execute("select count(*) as n from loyverse.loyverse_item_mappings").fetchone()["n"] == 0
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="already undone"):
        conn.execute("select loyverse.import_undo(%s, false)", (run_id,))


def test_inventory_writes_stock_of_the_linked_store_only_when_asked(local: dict[str, Any]) -> None:
    conn, store = local["conn"], local["store_id"]
    items = [testing.item("i1", "Beans", {"sku": "A"}), testing.item("i2", "Cups", {"sku": "B"}),
             testing.item("i3", "Lids", {"sku": "C"})]
    inventory = [{"variant_id": "i1-v0", "store_id": store, "in_stock": -41},
                 {"variant_id": "i1-v0", "store_id": "other", "in_stock": 7},
                 {"variant_id": "i2-v0", "store_id": store, "in_stock": 2.5},
                 {"variant_id": "i3-v0", "store_id": store, "in_stock": "lots"}]
    run_id, result = run(local, stage(local, items=items, inventory=inventory), with_inventory=True)
    assert result["created"] == 3
    stock = {r["sku"]: r["stock_quantity"] for r in conn.execute("select sku, stock_quantity from public.products")}
    assert stock == {"A": D("-41.000"), "B": D("2.500"), "C": None}
    codes = {r["code"] for r in conn.execute("select code from loyverse.loyverse_import_issues where run_id = %s", (run_id,))}
    assert "invalid_stock" in codes
    # an import without --with-inventory leaves stock alone (and writes nothing)
    _run_id, result = run(local, stage(local, items=items))
    assert result["updated"] == 0
    assert conn.execute("select stock_quantity from public.products where sku = 'A'").fetchone()["stock_quantity"] == D("-41")


def test_resync_removes_modifier_links_loyverse_removed(local: dict[str, Any]) -> None:
    conn = local["conn"]
    modifiers = [{"id": "m1", "name": "Milk", "modifier_options": [{"id": "o1", "name": "Oat", "price": 0.5}]},
                 {"id": "m2", "name": "Syrup", "modifier_options": [{"id": "o2", "name": "Vanilla", "price": 0.3}]}]
    run(local, stage(local, modifiers=modifiers, items=[testing.item("i1", "Latte", {"sku": "L"}, modifier_ids=["m1", "m2"])]))
    latte = conn.execute("select id from public.products").fetchone()["id"]
    ours = conn.execute("insert into public.modifier_groups (restaurant_id, name) values (%s, 'Ours') returning id",
                        (local["restaurant_id"],)).fetchone()["id"]
    conn.execute("insert into public.product_modifier_groups (product_id, modifier_group_id) values (%s, %s)", (latte, ours))

    def linked() -> set[str]:
        return {r["name"] for r in conn.execute(
            "select g.name from public.product_modifier_groups l join public.modifier_groups g on g.id = l.modifier_group_id"
            " where l.product_id = %s", (latte,))}

    assert linked() == {"Milk", "Syrup", "Ours"}
    run_id, result = run(local, stage(local, modifiers=modifiers,
                                      items=[testing.item("i1", "Latte", {"sku": "L"}, modifier_ids=["m1"])]))
    assert linked() == {"Milk", "Ours"} and result["updated"] == 1
    _again, result = run(local, stage(local, modifiers=modifiers,
                                      items=[testing.item("i1", "Latte", {"sku": "L"}, modifier_ids=["m1"])]))
    assert result["updated"] == 0 and linked() == {"Milk", "Ours"}
    conn.execute("select loyverse.import_undo(%s, false)", (_again,))
    assert conn.execute("select loyverse.import_undo(%s, false) as r", (run_id,)).fetchone()["r"]["refused"] is False
    assert linked() == {"Milk", "Syrup", "Ours"}
