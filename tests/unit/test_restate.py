"""loyverse/restate.py: the whole-item body built from a read, and the field-by-field check of
the answer. Pure functions, no database or server."""

from __future__ import annotations

import copy
import decimal

from loyverse_sync.loyverse import restate

ITEM = {
    "id": "i1", "handle": "flat-white", "reference_id": "R1", "item_name": "Flat white",
    "description": "<p>x</p>", "track_stock": True, "sold_by_weight": False, "is_composite": True,
    "use_production": True, "category_id": "c1",
    "components": [{"variant_id": "v9", "quantity": 2}, {"variant_id": "v8", "quantity": 0.5}],
    "primary_supplier_id": "s1", "tax_ids": ["t1", "t2"], "modifier_ids": ["m1"], "form": "CIRCLE",
    "color": "RED", "image_url": "https://api.loyverse.com/image/i1", "option1_name": "Size",
    "option2_name": None, "option3_name": None, "created_at": "2023-01-01T00:00:00.000Z",
    "updated_at": "2023-01-02T00:00:00.000Z", "deleted_at": None,
    "variants": [
        {"variant_id": "v1", "item_id": "i1", "sku": "10001", "reference_variant_id": "RV1",
         "option1_value": "S", "option2_value": None, "option3_value": None, "barcode": "123",
         "cost": 1.2, "purchase_cost": 1, "default_pricing_type": "VARIABLE", "default_price": None,
         "stores": [
             {"store_id": "a", "pricing_type": "FIXED", "price": 3, "available_for_sale": True,
              "optimal_stock": 20, "low_stock": 3},
             {"store_id": "b", "pricing_type": "VARIABLE", "price": None, "available_for_sale": False,
              "optimal_stock": None, "low_stock": None},
         ],
         "created_at": "2023-01-01T00:00:00.000Z", "updated_at": "2023-01-01T00:00:00.000Z",
         "deleted_at": None},
        {"variant_id": "v2", "item_id": "i1", "sku": "10002", "option1_value": "L",
         "stores": [], "deleted_at": "2023-01-03T00:00:00.000Z"},
    ],
}  # fmt: skip


def test_body_restates_every_writable_field_and_no_read_only_one() -> None:
    body = restate.item_body(ITEM, {("v1", "b"): decimal.Decimal("4.50")})
    assert list(body) == ["id", *restate.ITEM_FIELDS, "variants"]
    assert {k: body[k] for k in restate.ITEM_FIELDS} == {k: ITEM[k] for k in restate.ITEM_FIELDS}
    (variant,) = body["variants"]  # the deleted variant is not restated
    assert list(variant) == ["variant_id", *restate.VARIANT_FIELDS, "stores"]
    assert variant["stores"][0] == ITEM["variants"][0]["stores"][0]
    assert variant["stores"][1] == {**ITEM["variants"][0]["stores"][1], "pricing_type": "FIXED",
                                    "price": decimal.Decimal("4.50")}


def test_body_is_a_copy_and_keys_absent_from_the_read_are_not_sent() -> None:
    item = copy.deepcopy(ITEM)
    del item["description"]
    body = restate.item_body(item, {("v1", "c"): 7})
    body["components"].append("x")
    assert "description" not in body and item["components"] != body["components"]
    assert body["variants"][0]["stores"][-1] == {"store_id": "c", "available_for_sale": True,
                                                 "pricing_type": "FIXED", "price": 7}


def test_an_answer_as_sent_has_no_differences_even_reordered_and_retyped() -> None:
    body = restate.item_body(ITEM)
    answer = copy.deepcopy(ITEM)
    answer["tax_ids"].reverse()
    answer["components"].reverse()
    answer["variants"][0]["cost"] = decimal.Decimal("1.20")
    answer["variants"][0]["stores"][0]["price"] = 3.0
    answer["updated_at"] = "2024-01-01T00:00:00.000Z"
    assert restate.differences(body, answer) == []


def test_every_reset_is_named() -> None:
    body = restate.item_body(ITEM, {("v1", "b"): 4})
    answer = copy.deepcopy(ITEM)
    answer.update(category_id=None, track_stock=False, tax_ids=[])
    answer["variants"][0]["sku"] = "10077"
    answer["variants"][0]["stores"][0]["price"] = 2
    del answer["variants"][0]["stores"][1]
    changed = restate.differences(body, answer, skip_prices=[("v1", "b")])
    assert changed == [
        "category_id: 'c1' became null", "track_stock: True became False",
        "tax_ids: ['t1', 't2'] became []", "variant v1 sku: '10001' became '10077'",
        "variant v1 store a price: 3 became 2", "variant v1 store b: the entry is gone",
    ]
    answer["variants"][0]["deleted_at"] = "2024-01-01T00:00:00.000Z"
    assert "variant v1 was deleted" in restate.differences(body, answer)


def test_skipped_prices_are_left_to_the_caller() -> None:
    body = restate.item_body(ITEM, {("v1", "a"): 9})
    assert restate.differences(body, ITEM, skip_prices=[("v1", "a")]) == []
    assert restate.differences(body, ITEM) == ["variant v1 store a price: 9 became 3"]
