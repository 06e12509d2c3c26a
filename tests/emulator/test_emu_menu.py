"""The menu generator: size, speed, determinism and the realistic quirks it must contain."""

from __future__ import annotations

from loyverse_emulator import menu, server

STORES = ["s1", "s2", "s3"]


def test_ten_thousand_items() -> None:
    # how fast is bench/'s business (a timed assert fails on a loaded box)
    generated = menu.generate(10_000, STORES, seed=1)
    assert len(generated["items"]) == 10_000
    assert len({i["id"] for i in generated["items"]}) == 10_000


def test_same_seed_same_menu_other_seed_other_menu() -> None:
    assert menu.generate(50, STORES, seed=5) == menu.generate(50, STORES, seed=5)
    assert menu.generate(50, STORES, seed=5) != menu.generate(50, STORES, seed=6)


def test_names_and_skus_unique_skus_from_10000() -> None:
    items = menu.generate(3000, STORES, seed=2)["items"]
    assert len({i["item_name"] for i in items}) == len(items)
    skus = [v["sku"] for i in items for v in i["variants"]]
    assert len(set(skus)) == len(skus)
    assert min(int(s) for s in skus) == 10000


def test_menu_has_the_quirks_seen_live() -> None:
    generated = menu.generate(400, STORES, seed=4)
    items = generated["items"]
    variants = [v for i in items for v in i["variants"]]
    assert all(1 <= len(i["variants"]) <= 4 for i in items)
    assert any(len(i["variants"]) > 1 and i["option1_name"] for i in items)
    assert any(i["deleted_at"] for i in items)
    assert any("description" not in i for i in items)
    assert any(not i["item_name"].isascii() for i in items)
    assert any(
        v["default_pricing_type"] == "VARIABLE"
        and all(e["pricing_type"] == "FIXED" for e in v["stores"])
        for v in variants
    )
    assert any(len({e["price"] for e in v["stores"]}) > 1 for v in variants)
    assert any(not e["available_for_sale"] for v in variants for e in v["stores"])
    names = [t["name"] for t in generated["taxes"]]
    assert len(names) != len(set(names)) and {t["type"] for t in generated["taxes"]} == {
        "INCLUDED",
        "ADDED",
    }
    assert any(t["rate"] == 0 for t in generated["taxes"])
    assert any(set(m["stores"]) != set(STORES) for m in generated["modifiers"])
    assert all(len(i) in (23, 24) for i in items) and all(len(v) == 16 for v in variants)


def test_demo_merchants_eur_two_stores_and_jpy_integral_prices() -> None:
    state = server.build_state(menu_spec="demo", seed=0)
    eur, jpy = state.merchants.values()
    assert eur.profile["currency"] == {"code": "EUR", "decimal_places": 2}
    assert len(eur.store_ids()) == 2
    assert 35 <= len(eur.collections["items"]) <= 45
    assert jpy.profile["currency"] == {"code": "JPY", "decimal_places": 0}
    prices = [
        e["price"]
        for v in jpy.collections["variants"].values()
        for e in v.data["stores"]
        if e["price"] is not None
    ]
    assert prices and all(isinstance(p, int) for p in prices)
