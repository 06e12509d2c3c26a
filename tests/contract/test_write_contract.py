"""The exact bodies the price sync sends, against the emulator in each reading of an update
POST (`post_semantics` merge and whole) or, with LOYVERSE_TOKEN and LOYVERSE_ALLOW_WRITES=1,
against the real API.

Not hand-written bodies: the product's own code (`engine.process_batch`, the function a
worker runs on a claimed batch) syncs two price changes of a freshly created item with
every writable field set (category, two taxes, reference ids, description, stock tracking,
form, colour, an option, SKUs, barcode, costs, and a store entry that is not for sale with
stock levels), through a client that records what it POSTs. Every field of the item is read
before and after: only the two synced store prices may differ. The recorded body is then
sent again as is, and changes nothing.
"""

from __future__ import annotations

import copy
import decimal
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from loyverse_sync.loyverse import client as client_mod
from loyverse_sync.loyverse import restate
from loyverse_sync.pricesync import engine

pytestmark = [pytest.mark.real_api, pytest.mark.writes]
D = decimal.Decimal


class Recording:
    """The price sync's client, recording every POST /items body it sends."""

    def __init__(self, inner: client_mod.LoyverseClient) -> None:
        self.inner = inner
        self.posts: list[dict[str, Any]] = []

    def read_items(self, ids: list[str], **kw: Any) -> Any:
        return self.inner.read_items(ids, **kw)

    def get_item(self, item_id: str) -> Any:
        return self.inner.get_item(item_id)

    def post_item(self, body: dict[str, Any]) -> Any:
        self.posts.append(copy.deepcopy(body))
        return self.inner.post_item(body)


@pytest.fixture(params=["merge", "whole"])
def reading(request: pytest.FixtureRequest, target: Any) -> Iterator[str]:
    """The emulator in one reading of an update POST; the real API once (its reading is its own)."""
    if target.real:
        if request.param != "merge":
            pytest.skip("the real API is run once")
        yield "real"
        return
    state = target.emulator.state
    mid = target.emulator.merchants[0]["merchant_id"]
    old = state.merchant(mid).modes["post_semantics"]
    state.set_modes(mid, post_semantics=request.param)
    try:
        yield request.param
    finally:
        state.set_modes(mid, post_semantics=old)


@pytest.fixture
def rich_item(api: httpx.Client, store_ids: list[str]) -> Iterator[dict[str, Any]]:
    """An item with every writable field set (and its own category and taxes); deleted after."""
    tag = uuid.uuid4().hex[:8]
    made: list[str] = []
    try:
        category = _ok(api.post("/categories", json={"name": f"Contract {tag}", "color": "BLUE"}))
        made.append(f"/categories/{category['id']}")
        taxes = []
        for name, kind, rate in ((f"VAT {tag}", "INCLUDED", 10), (f"Service {tag}", "ADDED", 5)):
            tax = _ok(api.post("/taxes", json={"name": name, "type": kind, "rate": rate, "stores": store_ids}))
            made.append(f"/taxes/{tax['id']}")
            taxes.append(tax["id"])
        stores = [{"store_id": store_ids[0], "pricing_type": "FIXED", "price": 4.5, "available_for_sale": True}]
        stores += [{"store_id": s, "pricing_type": "FIXED", "price": 5, "available_for_sale": False,
                    "optimal_stock": 20, "low_stock": 3} for s in store_ids[1:]]
        body = {
            "item_name": f"Contract write {tag}", "reference_id": f"REF-{tag}",
            "description": "<p>Restated on every write</p>", "category_id": category["id"],
            "track_stock": True, "sold_by_weight": False, "tax_ids": taxes, "form": "CIRCLE",
            "color": "ORANGE", "option1_name": "Size",
            "variants": [
                {"option1_value": "Small", "sku": f"CS-{tag}", "reference_variant_id": f"RV-{tag}",
                 "barcode": f"20{int(tag, 16) % 10**11:011d}", "cost": 1.5, "purchase_cost": 1.25,
                 "default_pricing_type": "FIXED", "default_price": 4.5, "stores": stores},
                {"option1_value": "Large", "sku": f"CL-{tag}", "cost": 2, "default_pricing_type": "FIXED",
                 "default_price": 6, "stores": copy.deepcopy(stores)},
            ],
        }  # fmt: skip
        item = _ok(api.post("/items", json=body))
        made.insert(0, f"/items/{item['id']}")
        yield item
    finally:
        for path in made:
            api.delete(path)


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _row(n: int, item: dict[str, Any], variant: dict[str, Any], store_id: str, add: int) -> dict[str, Any]:
    price = D(str(next(e["price"] for e in variant["stores"] if e["store_id"] == store_id)))
    return {"id": n, "enabled": True, "sync_direction": "TO_LOYVERSE", "source": "trigger",
            "loyverse_item_id": item["id"], "loyverse_variant_id": variant["variant_id"],
            "loyverse_store_id": store_id, "price_to_send": price + add, "last_synced_price": price}


def _without(item: dict[str, Any], synced: dict[tuple[str, str], D]) -> dict[str, Any]:
    """Every field of the item but `updated_at` and the synced entries' price and pricing type."""
    out = {k: v for k, v in item.items() if k not in ("updated_at", "variants")}
    out["variants"] = []
    for variant in item["variants"]:
        stores = [{k: v for k, v in e.items() if (variant["variant_id"], e["store_id"]) not in synced
                   or k not in ("price", "pricing_type")} for e in variant["stores"]]
        out["variants"].append({**{k: v for k, v in variant.items() if k not in ("updated_at", "stores")},
                                "stores": stores})
    return out


def test_the_price_syncs_body_changes_nothing_but_the_synced_prices(
    api: httpx.Client, target: Any, reading: str, rich_item: dict[str, Any], store_ids: list[str]
) -> None:
    before = _ok(api.get(f"/items/{rich_item['id']}"))
    small, large = before["variants"]
    rows = [_row(1, before, small, store_ids[0], 1), _row(2, before, large, store_ids[0], 2)]
    synced = {(r["loyverse_variant_id"], r["loyverse_store_id"]): r["price_to_send"] for r in rows}
    with client_mod.LoyverseClient(target.base_url, target.token) as inner:
        recording = Recording(inner)
        outcomes = engine.process_batch(recording, rows)  # type: ignore[arg-type]

    assert [(o["outcome"], o.get("code")) for o in outcomes] == [("done", None), ("done", None)], outcomes
    (body,) = recording.posts
    assert set(body) == {"id", "variants"} | {k for k in restate.ITEM_FIELDS if k in before}
    assert [set(v) - {"stores"} for v in body["variants"]] == [
        {"variant_id"} | {k for k in restate.VARIANT_FIELDS if k in v} for v in before["variants"]]
    after = _ok(api.get(f"/items/{rich_item['id']}"))
    assert _without(after, synced) == _without(before, synced)
    for variant in after["variants"]:
        for entry in variant["stores"]:
            key = (variant["variant_id"], entry["store_id"])
            if key in synced:
                assert (entry["pricing_type"], D(str(entry["price"]))) == ("FIXED", synced[key])

    # the recorded body, sent again as is: idempotent, whatever the reading
    again = _ok(api.post("/items", json=_jsonable(body)))
    assert restate.differences(body, again) == []
    assert _without(_ok(api.get(f"/items/{rich_item['id']}")), {}) == _without(after, {})


def _jsonable(value: Any) -> Any:
    if isinstance(value, D):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value
