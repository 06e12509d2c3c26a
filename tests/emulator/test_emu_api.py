"""Loyverse rules that the contract suite does not pin: modes, shapes, inventory, deletes."""

from __future__ import annotations

from typing import Any

import httpx

from loyverse_emulator import admin, server


def _fixed_variant(
    client: httpx.Client,
    stores: list[str],
    default: float = 10,
    store_prices: dict[str, float] | None = None,
) -> dict[str, Any]:
    entries = [{"store_id": s, "price": p} for s, p in (store_prices or {}).items()]
    item = client.post(
        "/items",
        json={
            "item_name": "Mode probe",
            "variants": [
                {"default_pricing_type": "FIXED", "default_price": default, "stores": entries}
            ],
        },
    )
    assert item.status_code == 200, item.text
    return item.json()["variants"][0]


def test_default_price_moves_stores_off_by_default(
    client: httpx.Client, emu: server.EmulatorServer
) -> None:
    s1, s2 = emu.merchants[0]["store_ids"]
    variant = _fixed_variant(client, [s1, s2], store_prices={s2: 15})
    after = client.post(
        "/variants", json={"variant_id": variant["variant_id"], "default_price": 11}
    ).json()
    assert {e["store_id"]: e["price"] for e in after["stores"]} == {s1: 10, s2: 15}


def test_default_price_moves_stores_rewrites_entries_equal_to_old_default(
    client: httpx.Client, adm: admin.AdminClient, emu: server.EmulatorServer, mid: str
) -> None:
    adm.set_modes(mid, default_price_moves_stores=True)
    s1, s2 = emu.merchants[0]["store_ids"]
    variant = _fixed_variant(client, [s1, s2], store_prices={s2: 15})
    after = client.post(
        "/variants", json={"variant_id": variant["variant_id"], "default_price": 11}
    ).json()
    assert {e["store_id"]: e["price"] for e in after["stores"]} == {s1: 11, s2: 15}


def test_create_fills_missing_store_entries_from_defaults(
    client: httpx.Client, emu: server.EmulatorServer
) -> None:
    s1, s2 = emu.merchants[0]["store_ids"]
    variant = _fixed_variant(client, [s1, s2], store_prices={s2: 15})
    assert variant["stores"][0] == {
        "store_id": s1,
        "pricing_type": "FIXED",
        "price": 10,
        "available_for_sale": True,
        "optimal_stock": None,
        "low_stock": None,
    }


def test_omitted_field_kept_and_null_clears(client: httpx.Client) -> None:
    item = client.post(
        "/items", json={"item_name": "Keep me", "description": "<p>x</p>", "reference_id": "R1"}
    ).json()
    variants = [{"variant_id": item["variants"][0]["variant_id"]}]
    updated = client.post(
        "/items", json={"id": item["id"], "reference_id": None, "variants": variants}
    ).json()
    assert updated["description"] == "<p>x</p>" and updated["reference_id"] is None


def test_item_delete_lists_variant_ids_and_variants_404(client: httpx.Client) -> None:
    item = client.post(
        "/items",
        json={
            "item_name": "Gone",
            "option1_name": "Size",
            "variants": [{"option1_value": "S"}, {"option1_value": "L"}],
        },
    ).json()
    deleted = client.delete(f"/items/{item['id']}").json()["deleted_object_ids"]
    assert deleted == [item["id"], *[v["variant_id"] for v in item["variants"]]]
    assert client.get(f"/variants/{item['variants'][0]['variant_id']}").status_code == 404
    assert client.delete(f"/items/{item['id']}").status_code == 404


def test_trailing_slash_both_ways_and_405(client: httpx.Client) -> None:
    assert client.get("/items/").status_code == 200
    assert client.get("/merchant").status_code == 200
    response = client.patch("/items", json={})
    assert response.status_code == 405 and response.json()["errors"][0]["code"]


def test_item_shape_and_money(client: httpx.Client, emu: server.EmulatorServer) -> None:
    item = client.post(
        "/items",
        json={
            "item_name": "Shape",
            "variants": [{"default_pricing_type": "FIXED", "default_price": 7}],
        },
    ).json()
    assert len(item) == 24 and item["handle"] == "shape"
    assert (
        item["variants"][0]["default_price"] == 7
        and '"default_price":7,' in client.get(f"/items/{item['id']}").text
    )
    assert item["variants"][0]["sku"].isdigit()


def test_validation_paths_for_inline_variants(
    client: httpx.Client, emu: server.EmulatorServer
) -> None:
    store = emu.merchants[0]["store_ids"][1]
    body = {
        "item_name": "Bad",
        "variants": [{"stores": [{"store_id": store, "pricing_type": "CHEAP"}]}],
    }
    error = client.post("/items", json=body).json()["errors"][0]
    assert error == {
        "code": "INVALID_VALUE",
        "details": error["details"],
        "field": "object.variants[0].stores[0].pricing_type",
    }
    assert (
        client.post("/items", json={}).json()["errors"][0]["code"] == "MISSING_REQUIRED_PARAMETER"
    )
    assert (
        client.post("/items", json={"item_name": 5}).json()["errors"][0]["code"]
        == "INCORRECT_VALUE_TYPE"
    )
    assert (
        client.post("/items", json={"item_name": "x" * 65}).json()["errors"][0]["code"]
        == "INVALID_VALUE"
    )
    assert client.post("/items", json=[1]).json()["errors"][0]["code"] == "BAD_REQUEST"


def test_inventory_absolute_set_and_filters(
    client: httpx.Client, emu: server.EmulatorServer
) -> None:
    s1, _s2 = emu.merchants[0]["store_ids"]
    variant = client.post("/items", json={"item_name": "Stocked", "track_stock": True}).json()[
        "variants"
    ][0]
    body = {
        "inventory_levels": [
            {"variant_id": variant["variant_id"], "store_id": s1, "stock_after": 40}
        ]
    }
    for _ in range(2):  # absolute, so repeating is harmless
        levels = client.post("/inventory", json=body).json()["inventory_levels"]
    assert levels[0]["in_stock"] == 40
    listed = client.get(
        "/inventory", params={"variant_ids": variant["variant_id"], "store_ids": s1}
    ).json()["inventory_levels"]
    assert [(lv["variant_id"], lv["in_stock"]) for lv in listed] == [(variant["variant_id"], 40)]


def test_modifiers_options_replace_and_show_deleted(
    client: httpx.Client, emu: server.EmulatorServer
) -> None:
    mod = client.post(
        "/modifiers",
        json={
            "name": "Milk",
            "modifier_options": [{"name": "Oat", "price": 0.5}, {"name": "Soy", "price": 0.4}],
        },
    ).json()
    assert len(mod) == 8 and mod["stores"] == emu.merchants[0]["store_ids"]
    oat = mod["modifier_options"][0]
    updated = client.post(
        "/modifiers", json={"id": mod["id"], "modifier_options": [{"id": oat["id"], "price": 0.6}]}
    ).json()
    assert [(o["name"], o["price"]) for o in updated["modifier_options"]] == [("Oat", 0.6)]
    shown = client.get(
        "/modifiers", params={"modifier_ids": mod["id"], "show_deleted": "true"}
    ).json()["modifiers"][0]
    assert len(shown["modifier_options"]) == 2


def test_jpy_merchant_prices_are_integers(emu: server.EmulatorServer) -> None:
    jpy = emu.merchants[1]
    with httpx.Client(
        base_url=emu.base_url, headers={"Authorization": f"Bearer {jpy['tokens'][0]}"}
    ) as http:
        assert http.get("/merchant/").json()["currency"] == {"code": "JPY", "decimal_places": 0}
        item = http.post(
            "/items",
            json={
                "item_name": "Ramen",
                "variants": [{"default_pricing_type": "FIXED", "default_price": 980.4}],
            },
        ).json()
        assert item["variants"][0]["stores"][0]["price"] == 980
        assert '"price":980,' in http.get(f"/items/{item['id']}").text


def test_filters_by_dates_and_ids(client: httpx.Client) -> None:
    items = client.get("/items", params={"limit": 5}).json()["items"]
    newest = items[0]["created_at"]
    only = client.get("/items", params={"created_at_min": newest}).json()["items"]
    assert [i["id"] for i in only] == [items[0]["id"]]
    cats = client.get("/categories").json()["categories"]
    assert (
        len(
            client.get("/categories", params={"categories_ids": cats[0]["id"]}).json()["categories"]
        )
        == 1
    )
    assert client.get("/items", params={"updated_at_min": "not a date"}).status_code == 400


def test_a_client_resetting_its_connection_prints_no_traceback(emu, client, capfd):
    """Workers stopping mid-request reset their keep-alive connections: normal traffic for a
    server, so the emulator's terminal shows no traceback (and it keeps serving)."""
    import socket
    import struct
    import time

    for _ in range(3):
        sock = socket.create_connection(("127.0.0.1", emu.port))
        sock.sendall(b"GET /v1.0/items HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # RST
    time.sleep(0.3)
    assert client.get("/categories").status_code == 200
    err = capfd.readouterr().err
    assert "Traceback" not in err and "ConnectionResetError" not in err
