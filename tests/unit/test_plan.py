"""pricesync/plan.py: what one item's write sends and what its answer means. Pure functions:
no database, no server; the rows are shaped like claim_price_sync_batch's."""

from __future__ import annotations

import copy
import decimal
from typing import Any

import pytest

from loyverse_sync.loyverse import errors
from loyverse_sync.pricesync import plan

D = decimal.Decimal


def _item() -> dict[str, Any]:
    return {
        "id": "i1", "item_name": "Flat white", "category_id": "c1", "tax_ids": ["t1"],
        "created_at": "2023-01-01T00:00:00.000Z",
        "variants": [
            {"variant_id": "v1", "sku": "1001", "option1_value": "S", "default_pricing_type": "FIXED",
             "stores": [
                 {"store_id": "a", "pricing_type": "FIXED", "price": 3.0, "available_for_sale": True},
                 {"store_id": "b", "pricing_type": "FIXED", "price": 3.2, "available_for_sale": True},
             ]},
            {"variant_id": "v2", "sku": "1002", "option1_value": "L", "default_pricing_type": "FIXED",
             "stores": [
                 {"store_id": "a", "pricing_type": "VARIABLE", "price": None, "available_for_sale": True},
                 {"store_id": "b", "pricing_type": "FIXED", "price": 4.0, "available_for_sale": False},
             ]},
        ],
    }


def _row(row_id: int, variant: str, store: str, price: Any, **fields: Any) -> dict[str, Any]:
    row = {"id": row_id, "loyverse_item_id": "i1", "loyverse_variant_id": variant, "loyverse_store_id": store,
           "price_to_send": price, "last_synced_price": None, "source": "trigger",
           "sync_direction": "TO_LOYVERSE"}
    row.update(fields)
    return row


def _prices(body: dict[str, Any]) -> dict[tuple[str, str], Any]:
    return {(v["variant_id"], s["store_id"]): s.get("price") for v in body["variants"] for s in v["stores"]}


# -- rows and items that cannot be used ------------------------------------------------------


@pytest.mark.parametrize(("price", "code"), [
    (None, "UNSENDABLE_PRICE"), ("3.50", "UNSENDABLE_PRICE"), (D("-1"), "UNSENDABLE_PRICE"),
    (D("NaN"), "UNSENDABLE_PRICE"), (D("10000000000"), "PRICE_OUT_OF_RANGE"),
])
def test_a_row_whose_price_cannot_be_sent_names_why(price: Any, code: str) -> None:
    problem = plan.row_problem(_row(1, "v1", "a", price))
    assert problem is not None and problem[0] == code


def test_a_sendable_row_has_no_problem_and_an_unmapped_one_has() -> None:
    assert plan.row_problem(_row(1, "v1", "a", D("3.50"))) is None
    assert plan.row_problem(_row(1, None, "a", D("3.50"))) == (
        "UNMAPPED", "the product has no Loyverse item and variant")


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda i: i.update(id="other"), "id is 'other' (a string), expected i1"),
    (lambda i: i.update(variants="x"), "variants is 'x' (a string), not a list"),
    (lambda i: i["variants"].append(copy.deepcopy(i["variants"][0])), "variant v1 appears twice"),
    (lambda i: i["variants"][0]["stores"].append({"store_id": "a", "price": 1}), "store a appears twice in variant v1"),
    (lambda i: i["variants"][0]["stores"][0].update(price="3"), "variants[0].stores[0].price is '3' (a string), not a price"),
    (lambda i: i["variants"][0]["stores"][0].update(price=-2), "variants[0].stores[0].price is negative (-2)"),
    (lambda i: i["variants"][1]["stores"][0].update(pricing_type="FREE"), "variants[1].stores[0].pricing_type is 'FREE' (a string)"),
])
def test_an_item_read_wrong_is_named_and_never_planned(mutate: Any, expected: str) -> None:
    item = _item()
    mutate(item)
    assert plan.item_problem("i1", item) == expected
    item_plan = plan.plan_item("i1", item, [_row(1, "v1", "a", D("3.50"))])
    assert item_plan.body is None
    assert [(r["outcome"], r["code"]) for r in item_plan.results] == [("failed", "MALFORMED_ITEM")]


def test_a_well_formed_item_has_no_problem() -> None:
    assert plan.item_problem("i1", _item()) is None


# -- planning the whole-item write -----------------------------------------------------------


def test_the_body_restates_the_whole_item_with_only_the_planned_prices_changed() -> None:
    item = _item()
    rows = [_row(1, "v1", "a", D("3.50")), _row(2, "v2", "b", D("4.25"))]
    item_plan = plan.plan_item("i1", item, rows)
    assert item_plan.results == [] and item_plan.body is not None
    body = item_plan.body
    assert _prices(body) == {("v1", "a"): D("3.50"), ("v1", "b"): 3.2, ("v2", "a"): None, ("v2", "b"): D("4.25")}
    # every writable field as read, nothing read-only
    assert (body["id"], body["item_name"], body["category_id"], body["tax_ids"]) == ("i1", "Flat white", "c1", ["t1"])
    assert "created_at" not in body
    assert [v["sku"] for v in body["variants"]] == ["1001", "1002"]
    assert body["variants"][1]["stores"][1]["available_for_sale"] is False
    assert set(item_plan.planned) == {("v1", "a"), ("v2", "b")}
    assert item == _item()  # the read itself is untouched


def test_rows_that_need_no_write_are_decided_without_one() -> None:
    rows = [
        _row(1, "v1", "a", D("3.00")),  # already our price
        _row(2, "v2", "a", D("5.00")),  # VARIABLE in Loyverse: entered at the counter
        _row(3, "v9", "a", D("5.00")),  # variant gone
    ]
    item_plan = plan.plan_item("i1", _item(), rows)
    assert item_plan.body is None and item_plan.planned == {}
    assert [(r["id"], r["outcome"], r.get("code")) for r in item_plan.results] == [
        (1, "done", None), (2, "failed", "VARIABLE_IN_LOYVERSE"), (3, "failed", "NOT_FOUND")]


def test_make_fixed_overwrites_a_variable_price_on_purpose() -> None:
    item_plan = plan.plan_item("i1", _item(), [_row(2, "v2", "a", D("5.00"), source="make_fixed")])
    assert item_plan.body is not None and _prices(item_plan.body)[("v2", "a")] == D("5.00")


def test_a_gone_item_fails_its_rows_as_not_found() -> None:
    for gone in (None, {**_item(), "deleted_at": "2024-01-01T00:00:00Z"}):
        item_plan = plan.plan_item("i1", gone, [_row(1, "v1", "a", D("3.50"))])
        assert [(r["outcome"], r["code"]) for r in item_plan.results] == [("failed", "NOT_FOUND")]


def test_a_counter_edit_is_held_for_bidirectional_and_overwritten_with_a_note_otherwise() -> None:
    # Loyverse holds 3.00, we last synced 2.80, ours is now 3.50: someone edited it there
    edited = {"last_synced_price": D("2.80")}
    held = plan.plan_item("i1", _item(), [_row(1, "v1", "a", D("3.50"), sync_direction="BIDIRECTIONAL", **edited)])
    assert held.body is None
    assert [(r["outcome"], r["code"], r["loyverse_price"]) for r in held.results] == [("conflict", "CONFLICT", "3.000")]

    pushed = plan.plan_item("i1", _item(), [_row(1, "v1", "a", D("3.50"), **edited)])
    assert pushed.body is not None
    (_, target, note) = pushed.planned[("v1", "a")]
    assert target == D("3.50") and note["code"] == "CONFLICT_OVERWRITTEN"

    resolved = plan.plan_item("i1", _item(), [_row(1, "v1", "a", D("3.50"), sync_direction="BIDIRECTIONAL",
                                                   source="resolve", **edited)])
    assert resolved.body is not None and resolved.results == []


def test_a_price_of_ours_whose_write_is_in_doubt_is_no_counter_edit() -> None:
    # Loyverse holds 3.00: a claim of ours sent it and its worker died before recording it
    # (the release passed it on as in doubt); we last synced 2.80 and now send 3.50
    row = _row(1, "v1", "a", D("3.50"), sync_direction="BIDIRECTIONAL", last_synced_price=D("2.80"),
               in_doubt_prices=[3.0])
    pushed = plan.plan_item("i1", _item(), [row])
    assert pushed.results == [] and pushed.body is not None
    (_, target, note) = pushed.planned[("v1", "a")]
    assert target == D("3.50") and note == {}


# -- what the write's answer means ------------------------------------------------------------


def _planned(rows: list[dict[str, Any]]) -> plan.ItemPlan:
    item_plan = plan.plan_item("i1", _item(), rows)
    assert item_plan.body is not None
    return item_plan


def test_an_answer_with_our_prices_and_every_restated_field_is_done() -> None:
    item_plan = _planned([_row(1, "v1", "a", D("3.50"), **{"last_synced_price": D("2.80")})])
    answer = copy.deepcopy(item_plan.body)
    outcomes = plan.check_answer("i1", answer, item_plan)
    assert [(r["id"], r["outcome"], r["sent"], r.get("code")) for r in outcomes] == [
        (1, "done", True, "CONFLICT_OVERWRITTEN")]


def test_an_answer_with_another_price_fails_verification() -> None:
    item_plan = _planned([_row(1, "v1", "a", D("3.50"))])
    answer = copy.deepcopy(item_plan.body)
    answer["variants"][0]["stores"][0]["price"] = 3.4
    (outcome,) = plan.check_answer("i1", answer, item_plan)
    assert (outcome["outcome"], outcome["code"], outcome["details"]) == (
        "failed", "VERIFY_FAILED", {"sent": "3.500", "answered": "3.400"})


def test_an_answer_that_changed_a_restated_field_fails_every_row_of_the_item() -> None:
    item_plan = _planned([_row(1, "v1", "a", D("3.50")), _row(2, "v2", "b", D("4.25"))])
    answer = copy.deepcopy(item_plan.body)
    answer["category_id"] = None  # reset by a whole-object reading of the POST
    outcomes = plan.check_answer("i1", answer, item_plan)
    assert [(r["id"], r["outcome"], r["code"]) for r in outcomes] == [
        (1, "failed", "VERIFY_FAILED"), (2, "failed", "VERIFY_FAILED")]
    assert all("category_id" in r["error"] for r in outcomes)


def test_an_unusable_answer_is_retried_as_possibly_sent() -> None:
    item_plan = _planned([_row(1, "v1", "a", D("3.50"))])
    (outcome,) = plan.check_answer("i1", {"id": "i1"}, item_plan)
    assert (outcome["outcome"], outcome["sent"], outcome["code"]) == ("retry", True, "MALFORMED_RESPONSE")


@pytest.mark.parametrize(("exc", "outcome", "sent"), [
    (errors.ServerError(502, path="/items", method="POST"), "retry", True),  # may have been applied
    (errors.TransportFailure(None, "TIMEOUT", method="POST", path="/items"), "retry", True),
    (errors.ValidationError(400, "INVALID_VALUE", field="price"), "failed", False),
    (errors.NotFound(404, "NOT_FOUND"), "failed", False),
    (errors.Forbidden(403, "FORBIDDEN"), "retry", False),  # the account's problem, not the row's
])
def test_a_failed_write_is_retried_only_when_it_may_succeed_or_may_have_been_applied(
    exc: errors.LoyverseError, outcome: str, sent: bool
) -> None:
    item_plan = _planned([_row(1, "v1", "a", D("3.50")), _row(2, "v2", "b", D("4.25"))])
    outcomes = plan.write_failed(exc, item_plan.planned)
    assert [(r["id"], r["outcome"], r["sent"]) for r in outcomes] == [(1, outcome, sent), (2, outcome, sent)]
    assert all(r["code"] for r in outcomes)
