"""The modes where public material disagrees on writes: `post_semantics` (does an update POST
merge into the stored object, or is it the whole object?), the shape of GET /webhooks/, and
HTTPS-only webhook URLs. Set from the constructor, the admin API and `emulator serve/modes`."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from loyverse_emulator import admin, server
from loyverse_sync.cli.emulator import emulator
from loyverse_sync.loyverse import client as client_mod


def _rich_item(client: httpx.Client, emu: server.EmulatorServer) -> dict[str, Any]:
    s1, s2 = emu.merchants[0]["store_ids"]
    category = client.get("/categories").json()["categories"][0]["id"]
    tax = client.get("/taxes").json()["taxes"][0]["id"]
    body = {
        "item_name": "Whole probe", "reference_id": "R-1", "description": "<p>d</p>",
        "category_id": category, "track_stock": True, "tax_ids": [tax], "form": "CIRCLE",
        "color": "RED", "option1_name": "Size",
        "variants": [
            {"option1_value": "S", "sku": "WP-S", "barcode": "123", "cost": 2, "purchase_cost": 1.5,
             "default_pricing_type": "FIXED", "default_price": 5,
             "stores": [{"store_id": s2, "price": 6, "available_for_sale": False, "low_stock": 2}]},
            {"option1_value": "L", "sku": "WP-L", "default_pricing_type": "FIXED", "default_price": 7},
        ],
    }  # fmt: skip
    response = client.post("/items", json=body)
    assert response.status_code == 200, response.text
    item = response.json()
    assert item["variants"][0]["stores"][0]["store_id"] == s1
    return item


def _minimal(item: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The body the price sync sent before whole-object writes (ids, name, stores), plus the
    option name and values (without them a two-variant item is refused outright)."""
    return {
        "id": item["id"], "item_name": item["item_name"], "option1_name": item["option1_name"],
        "variants": [{"variant_id": v["variant_id"], "option1_value": v["option1_value"],
                      "stores": v["stores"]} for v in item["variants"]],
        **extra,
    }  # fmt: skip


def test_merge_is_the_default_and_keeps_what_the_body_omits(
    client: httpx.Client, emu: server.EmulatorServer, adm: admin.AdminClient, mid: str
) -> None:
    assert adm.modes(mid)[mid]["post_semantics"] == "merge"
    item = _rich_item(client, emu)
    after = client.post("/items", json=_minimal(item)).json()
    for key in ("reference_id", "description", "category_id", "track_stock", "tax_ids", "form"):
        assert after[key] == item[key], key
    assert [v["sku"] for v in after["variants"]] == ["WP-S", "WP-L"]


def test_whole_resets_omitted_fields_to_the_create_defaults(
    client: httpx.Client, emu: server.EmulatorServer, adm: admin.AdminClient, mid: str
) -> None:
    item = _rich_item(client, emu)
    adm.set_modes(mid, post_semantics="whole")
    after = client.post("/items", json=_minimal(item)).json()
    assert (after["reference_id"], after["description"], after["category_id"]) == (None, None, None)
    assert (after["track_stock"], after["tax_ids"], after["form"], after["color"]) == (False, [], "SQUARE", "GREY")
    # what only the server sets is kept; omitted variant fields are defaults, SKUs new
    assert (after["id"], after["handle"], after["created_at"]) == (item["id"], item["handle"], item["created_at"])
    variant = after["variants"][0]
    assert variant["sku"] not in ("WP-S", "WP-L") and variant["barcode"] is None
    assert (variant["cost"], variant["purchase_cost"], variant["default_pricing_type"]) == (0, None, "VARIABLE")
    # the stores were restated, so their prices stay; a variant left out is deleted
    assert [e["price"] for e in variant["stores"]] == [e["price"] for e in item["variants"][0]["stores"]]
    body = _minimal(item)
    body["variants"].pop()
    assert [v["variant_id"] for v in client.post("/items", json=body).json()["variants"]] == [
        item["variants"][0]["variant_id"]]


def test_whole_restating_everything_changes_nothing(
    client: httpx.Client, emu: server.EmulatorServer, adm: admin.AdminClient, mid: str
) -> None:
    from loyverse_sync.loyverse import restate

    item = _rich_item(client, emu)
    adm.set_modes(mid, post_semantics="whole")
    after = client.post("/items", json=restate.item_body(item)).json()
    assert restate.differences(restate.item_body(item), after) == []
    assert {k: v for k, v in after.items() if k not in ("updated_at", "variants")} == {
        k: v for k, v in item.items() if k not in ("updated_at", "variants")
    }


def test_whole_omitted_stores_fall_back_to_the_defaults(
    client: httpx.Client, emu: server.EmulatorServer, adm: admin.AdminClient, mid: str
) -> None:
    item = _rich_item(client, emu)
    adm.set_modes(mid, post_semantics="whole")
    variant = item["variants"][0]
    body = {"variant_id": variant["variant_id"], "option1_value": "S", "default_pricing_type": "FIXED",
            "default_price": 5}
    after = client.post("/variants", json=body).json()
    assert [(e["price"], e["available_for_sale"], e["low_stock"]) for e in after["stores"]] == [
        (5, True, None), (5, True, None)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "object.item_name"),  # item_name on every POST
        ({"option1_name": "Size", "item_name": "x", "drop_value": True}, "object.variants[0].option1_value"),
    ],
)
def test_whole_requires_item_name_and_option_values(
    client: httpx.Client, emu: server.EmulatorServer, adm: admin.AdminClient, mid: str,
    body: dict[str, Any], field: str,
) -> None:
    item = _rich_item(client, emu)
    adm.set_modes(mid, post_semantics="whole")
    request = {"id": item["id"], **{k: v for k, v in body.items() if k != "drop_value"},
               "variants": [{"variant_id": v["variant_id"], "option1_value": v["option1_value"]}
                            for v in item["variants"]]}
    if body.get("drop_value"):
        del request["variants"][0]["option1_value"]
    response = client.post("/items", json=request)
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["code"] == "MISSING_REQUIRED_PARAMETER"
    assert response.json()["errors"][0]["field"] == field
    assert client.get(f"/items/{item['id']}").json()["updated_at"] == item["updated_at"]  # nothing changed


def test_whole_ignores_a_write_to_handle_and_requires_tax_and_category_names(
    client: httpx.Client, emu: server.EmulatorServer, adm: admin.AdminClient, mid: str
) -> None:
    item = _rich_item(client, emu)
    adm.set_modes(mid, post_semantics="whole")
    body = {**_minimal(item), "handle": "renamed"}
    assert client.post("/items", json=body).json()["handle"] == item["handle"]
    tax = client.get("/taxes").json()["taxes"][0]
    response = client.post("/taxes", json={"id": tax["id"], "name": tax["name"], "rate": 3})
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "object.type"
    category = client.get("/categories").json()["categories"][0]
    response = client.post("/categories", json={"id": category["id"], "color": "RED"})
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "object.name"
    renamed = client.post("/categories", json={"id": category["id"], "name": category["name"]}).json()
    assert renamed["color"] == "GREY"  # omitted: the create default


def test_webhooks_list_shape_and_https_only(
    client: httpx.Client, emu: server.EmulatorServer, adm: admin.AdminClient, mid: str
) -> None:
    hook = {"url": "http://127.0.0.1:9/hook", "type": "items.update", "status": "ENABLED"}
    assert client.post("/webhooks/", json=hook).status_code == 200
    assert isinstance(client.get("/webhooks/").json()["webhooks"], list)
    adm.set_modes(mid, webhooks_list="array", webhook_https_only=True)
    listed = client.get("/webhooks/").json()
    assert isinstance(listed, list) and listed[0]["url"] == hook["url"]
    with client_mod.LoyverseClient(emu.base_url, emu.token) as lv:  # the client reads both shapes
        assert [h["url"] for h in lv.list_webhooks()] == [hook["url"]]
    response = client.post("/webhooks/", json={**hook, "url": "http://example.com/other"})
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "object.url"
    assert client.post("/webhooks/", json={**hook, "url": "https://example.com/other"}).status_code == 200


def test_modes_from_the_constructor_admin_and_cli(adm: admin.AdminClient, mid: str) -> None:
    with pytest.raises(admin.AdminError, match="post_semantics must be one of"):
        adm.set_modes(mid, post_semantics="partial")
    with pytest.raises(admin.AdminError, match="webhook_https_only must be a boolean"):
        adm.set_modes(mid, webhook_https_only="yes")
    with server.EmulatorServer(menu=2, post_semantics="whole", webhooks_list="array",
                               webhook_https_only=True) as emu:
        modes = emu.state.merchant().modes
        assert (modes["post_semantics"], modes["webhooks_list"], modes["webhook_https_only"]) == (
            "whole", "array", True)
        result = CliRunner().invoke(emulator, ["modes", "--url", emu.admin_url, "--post-semantics", "merge",
                                               "--webhooks-list", "object", "--no-webhook-https-only"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["post_semantics"] == "merge"
        assert emu.state.merchant().modes["post_semantics"] == "merge"
        assert emu.state.merchant().modes["webhook_https_only"] is False
    result = CliRunner().invoke(emulator, ["serve", "--post-semantics", "partial"])
    assert result.exit_code == 2 and result.output.startswith("Error:") and "whole" in result.output
