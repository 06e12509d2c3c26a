"""One test per Loyverse API behaviour (API.md) that the sync relies on.

Plain httpx against `target` (the emulator, or the real API with LOYVERSE_TOKEN).
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from loyverse_emulator import server

pytestmark = pytest.mark.real_api


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"errors"}
    error = body["errors"][0]
    assert error["code"] == code
    assert "details" in error
    return error


# -- auth ------------------------------------------------------------------------------------


def test_bad_token_is_401_unauthorized(target: Any) -> None:
    with target.client(token="not-a-token") as client:
        assert_error(client.get("/items"), 401, "UNAUTHORIZED")


def test_missing_authorization_is_401(target: Any) -> None:
    with httpx.Client(base_url=target.base_url) as client:
        assert_error(client.get("/merchant/"), 401, "UNAUTHORIZED")


def test_merchant_reports_currency(api: httpx.Client) -> None:
    currency = api.get("/merchant/").json()["currency"]
    assert isinstance(currency["code"], str)
    assert isinstance(currency["decimal_places"], int)


# -- pagination ------------------------------------------------------------------------------


def test_default_limit_is_50_with_cursor(api: httpx.Client) -> None:
    body = api.get("/items").json()
    assert len(body["items"]) == 50
    assert isinstance(body["cursor"], str) and 0 < len(body["cursor"]) <= 64


def test_limit_250_is_the_maximum(api: httpx.Client) -> None:
    response = api.get("/items", params={"limit": 250})
    assert response.status_code == 200
    assert len(response.json()["items"]) == 250


@pytest.mark.parametrize("limit", [0, 251])
def test_limit_out_of_range_is_invalid_value(api: httpx.Client, limit: int) -> None:
    assert_error(api.get("/items", params={"limit": limit}), 400, "INVALID_VALUE")


def test_garbage_cursor_is_invalid_cursor(api: httpx.Client) -> None:
    assert_error(api.get("/items", params={"cursor": "not-a-cursor"}), 400, "INVALID_CURSOR")


def test_cursor_key_absent_on_last_page(api: httpx.Client) -> None:
    body = api.get("/categories", params={"limit": 250}).json()
    assert "cursor" not in body


def test_walking_all_pages_returns_each_item_once(api: httpx.Client, target: Any) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 250}
        if cursor:
            params["cursor"] = cursor
        body = api.get("/items", params=params).json()
        seen += [item["id"] for item in body["items"]]
        cursor = body.get("cursor")
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    if target.emulator is not None:
        assert len(seen) == len(target.emulator.state.items()) > 500


def test_stores_and_taxes_ignore_limit_and_cursor(api: httpx.Client) -> None:
    for path in ("/stores", "/taxes"):
        full = api.get(path).json()
        limited = api.get(path, params={"limit": 1, "cursor": "whatever"})
        assert limited.status_code == 200
        assert limited.json() == full
        assert "cursor" not in full


# -- filters and order -----------------------------------------------------------------------


def test_items_ids_filter_and_unknown_params_ignored(api: httpx.Client) -> None:
    items = api.get("/items", params={"limit": 3}).json()["items"]
    wanted = [items[0]["id"], items[2]["id"]]
    body = api.get("/items", params={"items_ids": ",".join(wanted)}).json()
    assert sorted(i["id"] for i in body["items"]) == sorted(wanted)
    # `item_ids` is not Loyverse's spelling: silently ignored, unfiltered result.
    unfiltered = api.get("/items", params={"item_ids": wanted[0], "limit": 3}).json()["items"]
    assert [i["id"] for i in unfiltered] == [i["id"] for i in items]


def test_variants_filter_by_items_ids(api: httpx.Client) -> None:
    item = api.get("/items", params={"limit": 1}).json()["items"][0]
    body = api.get("/variants", params={"items_ids": item["id"]}).json()
    assert {v["variant_id"] for v in body["variants"]} == {
        v["variant_id"] for v in item["variants"]
    }


def test_inverted_range_is_invalid_range(api: httpx.Client) -> None:
    params = {
        "created_at_min": "2024-01-02T00:00:00.000Z",
        "created_at_max": "2024-01-01T00:00:00.000Z",
    }
    assert_error(api.get("/items", params=params), 400, "INVALID_RANGE")


def test_items_are_newest_first(api: httpx.Client) -> None:
    stamps = [
        item["created_at"] for item in api.get("/items", params={"limit": 100}).json()["items"]
    ]
    assert stamps == sorted(stamps, reverse=True)


def test_timestamps_have_milliseconds_and_z(api: httpx.Client) -> None:
    item = api.get("/items", params={"limit": 1}).json()["items"][0]
    assert len(item["created_at"]) == 24 and item["created_at"].endswith("Z")


def test_variant_has_16_keys_and_item_uses_modifier_ids(api: httpx.Client) -> None:
    item = api.get("/items", params={"limit": 1}).json()["items"][0]
    assert "modifier_ids" in item and "modifiers_ids" not in item
    assert len(item["variants"][0]) == 16
    assert set(item["variants"][0]["stores"][0]) == {
        "store_id",
        "pricing_type",
        "price",
        "available_for_sale",
        "optimal_stock",
        "low_stock",
    }


# -- writes ----------------------------------------------------------------------------------


@pytest.mark.writes
def test_deleted_item_is_404_but_deleted_category_is_200(api: httpx.Client, make_item: Any) -> None:
    item = make_item("Contract delete me")
    deleted = api.delete(f"/items/{item['id']}")
    assert deleted.status_code == 200
    assert item["id"] in deleted.json()["deleted_object_ids"]
    assert_error(api.get(f"/items/{item['id']}"), 404, "NOT_FOUND")
    category = api.post("/categories", json={"name": "Contract category"}).json()
    assert api.delete(f"/categories/{category['id']}").status_code == 200
    again = api.get(f"/categories/{category['id']}")
    assert again.status_code == 200 and again.json()["deleted_at"] is not None


@pytest.mark.writes
def test_deleted_items_only_listed_with_show_deleted(api: httpx.Client, make_item: Any) -> None:
    item = make_item("Contract hidden")
    api.delete(f"/items/{item['id']}")
    assert api.get("/items", params={"items_ids": item["id"]}).json()["items"] == []
    shown = api.get("/items", params={"items_ids": item["id"], "show_deleted": "true"}).json()[
        "items"
    ]
    assert [i["id"] for i in shown] == [item["id"]] and shown[0]["deleted_at"]


@pytest.mark.writes
def test_post_without_id_creates_twice_with_id_updates(api: httpx.Client) -> None:
    first = api.post("/categories", json={"name": "Contract twin"}).json()
    second = api.post("/categories", json={"name": "Contract twin"}).json()
    try:
        assert first["id"] != second["id"]
        updated = api.post("/categories", json={"id": first["id"], "name": "Contract renamed"})
        assert updated.status_code == 200
        assert updated.json()["id"] == first["id"] and updated.json()["name"] == "Contract renamed"
    finally:
        api.delete(f"/categories/{first['id']}")
        api.delete(f"/categories/{second['id']}")


@pytest.mark.writes
def test_post_with_unknown_id_is_404(api: httpx.Client) -> None:
    error = assert_error(
        api.post("/categories", json={"id": "00000000-0000-4000-8000-000000000000", "name": "x"}),
        404,
        "NOT_FOUND",
    )
    assert error["field"]


@pytest.mark.writes
def test_item_update_without_variants_is_rejected(api: httpx.Client, make_item: Any) -> None:
    item = make_item()
    error = assert_error(
        api.post("/items", json={"id": item["id"], "item_name": "Renamed"}), 400, "INVALID_VALUE"
    )
    assert "variants" in error["details"]


@pytest.mark.writes
def test_variant_cannot_be_added_to_item_without_options(api: httpx.Client) -> None:
    item = api.post("/items", json={"item_name": "Contract no options"}).json()
    try:
        error = assert_error(
            api.post("/variants", json={"item_id": item["id"], "default_price": 1}),
            400,
            "INVALID_VALUE",
        )
        assert "has no options" in error["details"]
    finally:
        api.delete(f"/items/{item['id']}")


@pytest.mark.writes
def test_variant_option_value_required_when_item_has_option(
    api: httpx.Client, make_item: Any
) -> None:
    item = make_item()
    response = api.post(
        "/variants",
        json={"item_id": item["id"], "default_pricing_type": "FIXED", "default_price": 5},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] in ("MISSING_REQUIRED_PARAMETER", "INVALID_VALUE")


@pytest.mark.writes
def test_variant_cannot_add_an_option(api: httpx.Client, make_item: Any) -> None:
    item = make_item()
    body = {"item_id": item["id"], "option1_value": "Medium", "option2_value": "Oat"}
    error = assert_error(api.post("/variants", json=body), 400, "INVALID_VALUE")
    assert "options" in error["details"]


def _price_body(variant: dict[str, Any], stores: list[dict[str, Any]]) -> dict[str, Any]:
    keys = (
        "variant_id",
        "item_id",
        "sku",
        "option1_value",
        "option2_value",
        "option3_value",
        "default_pricing_type",
        "default_price",
        "cost",
    )
    return {**{k: variant[k] for k in keys}, "stores": stores}


@pytest.mark.writes
def test_per_store_price_update_with_all_entries(
    api: httpx.Client, make_item: Any, store_ids: list[str]
) -> None:
    variant = make_item()["variants"][0]
    stores = [dict(entry) for entry in variant["stores"]]
    stores[0].update(pricing_type="FIXED", price=11.5)
    response = api.post("/variants", json=_price_body(variant, stores))
    assert response.status_code == 200, response.text
    after = {
        e["store_id"]: e["price"]
        for e in api.get(f"/variants/{variant['variant_id']}").json()["stores"]
    }
    assert after[stores[0]["store_id"]] == 11.5
    for entry in stores[1:]:
        assert after[entry["store_id"]] == entry["price"]


@pytest.mark.writes
@pytest.mark.parametrize("mode", ["merge", "replace"])
def test_partial_stores_under_each_merge_mode(
    api: httpx.Client, emulator: server.EmulatorServer, mode: str
) -> None:
    mid = emulator.merchants[0]["merchant_id"]
    store_a, store_b = emulator.merchants[0]["store_ids"][:2]
    emulator.state.set_modes(mid, stores_merge=mode)
    try:
        item = api.post(
            "/items",
            json={
                "item_name": f"Contract {mode}",
                "variants": [
                    {
                        "default_pricing_type": "FIXED",
                        "default_price": 10,
                        "stores": [{"store_id": store_b, "price": 13}],
                    }
                ],
            },
        ).json()
        variant = item["variants"][0]
        response = api.post(
            "/variants",
            json=_price_body(
                variant, [{"store_id": store_a, "pricing_type": "FIXED", "price": 12}]
            ),
        )
        assert response.status_code == 200, response.text
        prices = {e["store_id"]: e["price"] for e in response.json()["stores"]}
        assert prices[store_a] == 12
        assert prices[store_b] == (13 if mode == "merge" else 10)
    finally:
        emulator.state.set_modes(mid, stores_merge="merge")


@pytest.mark.writes
def test_modifier_ids_attach_and_modifiers_ids_is_ignored(
    api: httpx.Client, make_item: Any, store_ids: list[str]
) -> None:
    modifier = api.post(
        "/modifiers",
        json={
            "name": "Contract milk",
            "stores": store_ids,
            "modifier_options": [{"name": "Oat", "price": 0.5}],
        },
    ).json()
    try:
        item = make_item()
        variants = [{"variant_id": v["variant_id"]} for v in item["variants"]]
        updated = api.post(
            "/items",
            json={"id": item["id"], "modifier_ids": [modifier["id"]], "variants": variants},
        ).json()
        assert updated["modifier_ids"] == [modifier["id"]]
        ignored = api.post(
            "/items", json={"id": item["id"], "modifiers_ids": [], "variants": variants}
        ).json()
        assert ignored["modifier_ids"] == [modifier["id"]]
    finally:
        api.delete(f"/modifiers/{modifier['id']}")


@pytest.mark.writes
def test_variant_change_bumps_updated_at_of_variant_and_item(
    api: httpx.Client, make_item: Any
) -> None:
    item = make_item()
    variant = item["variants"][0]
    time.sleep(0.01)
    response = api.post(
        "/variants", json={"variant_id": variant["variant_id"], "default_price": 99}
    )
    assert response.status_code == 200, response.text
    assert response.json()["updated_at"] > variant["updated_at"]
    assert api.get(f"/items/{item['id']}").json()["updated_at"] > item["updated_at"]


@pytest.mark.writes
def test_validation_error_names_the_field(api: httpx.Client, make_item: Any) -> None:
    variant = make_item()["variants"][0]
    body = {
        "variant_id": variant["variant_id"],
        "stores": [{"store_id": variant["stores"][0]["store_id"], "price": "cheap"}],
    }
    error = assert_error(api.post("/variants", json=body), 400, "INCORRECT_VALUE_TYPE")
    assert error["field"] == "object.stores[0].price"


def test_non_json_body_is_bad_request(api: httpx.Client) -> None:
    response = api.post(
        "/categories", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, "BAD_REQUEST")


def test_no_put_route(api: httpx.Client) -> None:
    response = api.put("/items", json={})
    assert response.status_code in (404, 405)
    assert "errors" in response.json()


# -- rate limit ------------------------------------------------------------------------------


def test_429_rate_limited_after_budget(emulator: server.EmulatorServer) -> None:
    with (
        # the real 300 s window: 300 requests fit in it however slow the machine (at a 3 s
        # window a loaded box let the first requests age out before the 301st)
        server.EmulatorServer(port=0, menu="empty", time_scale=1.0, token="rl") as emu,
        httpx.Client(base_url=emu.base_url, headers={"Authorization": "Bearer rl"}) as client,
    ):
        statuses = [client.get("/merchant/").status_code for _ in range(300)]
        assert statuses == [200] * 300
        assert_error(client.get("/merchant/"), 429, "RATE_LIMITED")
