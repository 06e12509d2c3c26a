"""The pure half of the price sync: what to write for one item and what its answer means.

No database and no HTTP here (tests/unit cover it alone): the checks that make a claimed row
unsendable or an item read from Loyverse unusable, the whole-item body built from the item as
last read and the claimed rows (``plan_item``), the outcomes of a write that failed
(``write_failed``) and the whole-object diff of its answer (``check_answer``), and which
Loyverse errors are worth a retry. ``engine.py`` runs the loop around it: claim, read, plan,
write, verify, complete.
"""

from __future__ import annotations

import dataclasses
import decimal
from typing import Any

from loyverse_sync.loyverse import errors, restate

# A price read from Loyverse above this is corrupt data, not a menu price.
MAX_PRICE = decimal.Decimal(10) ** 12
# The largest price we send: what loyverse_item_mappings.last_synced_price (numeric(12, 2))
# can record once it is written. A row above it (our price after a tax factor) fails alone.
MAX_SENDABLE = decimal.Decimal("9999999999.99")

#: (variant id, store id) -> (claimed row, price to send, note for the outcome)
Planned = dict[tuple[str, str], tuple[dict[str, Any], decimal.Decimal, dict[str, Any]]]


@dataclasses.dataclass
class ItemPlan:
    """One item's plan: outcomes decided without a write, and what the write sends."""

    results: list[dict[str, Any]]
    planned: Planned = dataclasses.field(default_factory=dict)
    body: dict[str, Any] | None = None  # None: nothing to write


def money(value: Any) -> decimal.Decimal | None:
    # Only numbers are money: a string, bool, NaN, infinity or out-of-range value is not.
    if value is None or isinstance(value, bool) or not isinstance(value, int | float | decimal.Decimal):
        return None
    try:
        amount = decimal.Decimal(str(value))
        if not amount.is_finite() or abs(amount) > MAX_PRICE:
            return None
        return amount.quantize(decimal.Decimal("0.001"))
    except (decimal.InvalidOperation, ValueError):
        return None


def _kind(value: Any) -> str:
    """How an unexpected JSON value is named in an error message."""
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
             dict: "an object", type(None): "null"}
    text = errors.excerpt(repr(value), 40)
    return f"{text} ({names.get(type(value), type(value).__name__)})"


def _wrong(name: str, container: dict[str, Any], key: str, expected: str = "") -> str:
    """``<name> is missing``, or ``<name> is <value (kind)><expected>`` for a value of the wrong kind."""
    return f"{name} is {_kind(container[key])}{expected}" if key in container else f"{name} is missing"


def item_problem(item_id: str, item: Any) -> str | None:
    """What makes an item read from (or answered by) Loyverse unusable, or None.

    The write restates every variant with its full stores[] from this read, so a read we
    cannot fully trust must not be written back: a variant left out would be deleted, a
    store entry left out or restated wrong would change that store's price.
    """
    if not isinstance(item, dict):
        return f"the item is {_kind(item)}, not an object"
    if item.get("id") != item_id:
        return _wrong("id", item, "id", f", expected {item_id}")
    variants = item.get("variants")
    if not isinstance(variants, list):
        return _wrong("variants", item, "variants", ", not a list")
    seen: set[str] = set()
    for i, variant in enumerate(variants):
        where = f"variants[{i}]"
        if not isinstance(variant, dict):
            return f"{where} is {_kind(variant)}, not an object"
        vid = variant.get("variant_id")
        if not isinstance(vid, str) or not vid:
            return _wrong(f"{where}.variant_id", variant, "variant_id")
        if vid in seen:
            return f"variant {vid} appears twice"
        seen.add(vid)
        if variant.get("deleted_at"):
            continue
        stores = variant.get("stores")
        if not isinstance(stores, list):
            return _wrong(f"{where}.stores", variant, "stores", ", not a list")
        store_ids: set[str] = set()
        for j, entry in enumerate(stores):
            at = f"{where}.stores[{j}]"
            if not isinstance(entry, dict):
                return f"{at} is {_kind(entry)}, not an object"
            sid = entry.get("store_id")
            if not isinstance(sid, str) or not sid:
                return _wrong(f"{at}.store_id", entry, "store_id")
            if sid in store_ids:
                return f"store {sid} appears twice in variant {vid}"
            store_ids.add(sid)
            pricing = entry.get("pricing_type", "FIXED")
            if pricing not in ("FIXED", "VARIABLE"):
                return f"{at}.pricing_type is {_kind(pricing)}"
            price = entry.get("price")
            if price is not None and money(price) is None:
                return f"{at}.price is {_kind(price)}, not a price"
            if price is not None and price < 0:
                return f"{at}.price is negative ({price})"
    return None


def result(row: dict[str, Any], outcome: str, **fields: Any) -> dict[str, Any]:
    out = {"id": row["id"], "outcome": outcome, "sent": False}
    out.update({k: v for k, v in fields.items() if v is not None})
    return out


def error_fields(exc: errors.LoyverseError) -> dict[str, Any]:
    return {
        "error": str(exc),
        "code": exc.code or (f"HTTP_{exc.status}" if exc.status else type(exc).__name__.upper()),
        "details": {"status": exc.status, "code": exc.code, "details": exc.details, "field": exc.field},
    }


def is_retryable(exc: errors.LoyverseError) -> bool:
    # the account's failures are not the row's: keep retrying (then dead-letter); a write
    # that may have been applied is checked again by the next attempt
    return bool(exc.ambiguous or errors.transport_like(exc))


def store_price(entry: dict[str, Any] | None) -> decimal.Decimal | None:
    if entry is None or entry.get("pricing_type", "FIXED") != "FIXED":
        return None
    return money(entry.get("price"))


def row_problem(row: dict[str, Any]) -> tuple[str, str] | None:
    """(code, error) when a claimed row can never be sent, else None."""
    target = money(row.get("price_to_send"))
    if target is None or target < 0:
        return "UNSENDABLE_PRICE", f"price {row.get('price_to_send')!r} cannot be sent to Loyverse"
    if target > MAX_SENDABLE:
        return "PRICE_OUT_OF_RANGE", f"price {target} is above the largest price we send ({MAX_SENDABLE})"
    if not isinstance(row.get("loyverse_item_id"), str) or not isinstance(row.get("loyverse_variant_id"), str):
        return "UNMAPPED", "the product has no Loyverse item and variant"
    return None


def unusable(item_id: str, problem: str, notes: list[str] | None = None) -> str:
    text = f"Loyverse sent item {item_id} unusable: {problem}"
    if notes:
        text += f" (GET /items: {notes[0]})"
    return text[:500]


def plan_item(item_id: str, item: dict[str, Any] | None, rows: list[dict[str, Any]]) -> ItemPlan:
    """What to do with one item's claimed rows, given the item as last read (None: gone).

    Rows that need no write get their outcome now (gone, VARIABLE in Loyverse, a conflict
    to hold, already at our price); the others are planned, and ``body`` restates the whole
    item as read with only their stores' prices changed.
    """
    if item is None or (isinstance(item, dict) and item.get("deleted_at")):
        return ItemPlan([
            result(r, "failed", code="NOT_FOUND", error=f"item {item_id} no longer exists in Loyverse",
                    details={"item_id": item_id})
            for r in rows
        ])
    problem = item_problem(item_id, item)
    if problem is not None:
        # never write back what we could not read: the write restates the whole item
        return ItemPlan([
            result(r, "failed", code="MALFORMED_ITEM", error=unusable(item_id, problem),
                    details={"item_id": item_id, "problem": problem})
            for r in rows
        ])
    variants = [v for v in item["variants"] if not v.get("deleted_at")]
    by_variant = {v.get("variant_id"): v for v in variants}
    results: list[dict[str, Any]] = []
    planned: Planned = {}
    for row in rows:
        variant = by_variant.get(row["loyverse_variant_id"])
        if variant is None:
            results.append(result(row, "failed", code="NOT_FOUND",
                                   error=f"variant {row['loyverse_variant_id']} no longer exists in Loyverse",
                                   details={"item_id": item_id, "variant_id": row["loyverse_variant_id"]}))
            continue
        store_id = row["loyverse_store_id"]
        entry = next((e for e in variant.get("stores") or [] if e.get("store_id") == store_id), None)
        if entry is not None and entry.get("pricing_type") == "VARIABLE" and row["source"] != "make_fixed":
            # entered at the counter: set so in Loyverse since the import; only a person turns
            # it into a fixed price (loyverse.make_price_fixed); the mapping becomes VARIABLE
            results.append(result(row, "failed", code="VARIABLE_IN_LOYVERSE",
                                   error=f"the price of variant {row['loyverse_variant_id']} in store {store_id} is "
                                         "VARIABLE in Loyverse (entered at the counter): not overwritten; "
                                         "make it fixed on purpose with `sync make-fixed`",
                                   details={"item_id": item_id, "variant_id": row["loyverse_variant_id"]}))
            continue
        current = store_price(entry)
        target = money(row["price_to_send"])
        if target is None:  # checked by row_problem; kept as a value, never an assert on data
            results.append(result(row, "failed", code="UNSENDABLE_PRICE",
                                   error=f"price {row['price_to_send']!r} cannot be sent to Loyverse"))
            continue
        last = money(row["last_synced_price"])
        note: dict[str, Any] = {}
        # a price of ours whose write is in doubt (a claim whose worker died) is no edit
        in_doubt = {money(p) for p in row.get("in_doubt_prices") or ()}
        edited = (last is not None and current is not None and current != last and current != target
                  and current not in in_doubt)
        if edited and row["source"] != "resolve":
            if row["sync_direction"] == "BIDIRECTIONAL":
                results.append(result(row, "conflict", loyverse_price=str(current), code="CONFLICT",
                                       error=f"price edited in Loyverse: {current} there, {last} last synced, "
                                             f"{target} ours", details={"last_synced_price": str(last),
                                                                        "our_price": str(target)}))
                continue
            note = {"code": "CONFLICT_OVERWRITTEN",
                    "error": f"overwrote {current} edited in Loyverse (last synced {last})",
                    "details": {"loyverse_price": str(current), "last_synced_price": str(last)}}
        if current == target:
            results.append(result(row, "done", details={"unchanged": True}))
            continue
        planned[(row["loyverse_variant_id"], store_id)] = (row, target, note)
    if not planned:
        return ItemPlan(results)
    # the whole item as read, only our stores' prices changed: right whether Loyverse reads
    # the POST as a merge or as the whole object (loyverse/restate.py)
    body = restate.item_body(item, {key: target for key, (_, target, _) in planned.items()})
    return ItemPlan(results, planned, body)



def write_failed(exc: errors.LoyverseError, planned: Planned) -> list[dict[str, Any]]:
    """The planned rows' outcomes when ``POST /items`` raised ``exc``."""
    retry = is_retryable(exc) and not isinstance(exc, errors.NotFound | errors.ValidationError)
    sent = bool(exc.ambiguous)
    return [
        result(r, "retry" if retry else "failed", sent=sent, **error_fields(exc))
        for r, _, _ in planned.values()
    ]


def check_answer(item_id: str, response: Any, plan: ItemPlan) -> list[dict[str, Any]]:
    """The planned rows' outcomes from Loyverse's answer to the write of ``plan.body``."""
    assert plan.body is not None
    problem = item_problem(item_id, response)
    if problem is not None:
        # The write was accepted but the answer cannot show what it did: the next attempt
        # reads the item again and finds our price there (done) or sends it again.
        error = (f"POST /items answered item {item_id} unusable: {problem}; "
                 "the write may have been applied, checking again")[:500]
        return [
            result(r, "retry", sent=True, code="MALFORMED_RESPONSE", error=error,
                    details={"item_id": item_id, "problem": problem})
            for r, _, _ in plan.planned.values()
        ]
    return verify(response, plan.body, plan.planned)


def verify(
    response: dict[str, Any],
    body: dict[str, Any],
    planned: Planned,
) -> list[dict[str, Any]]:
    """Outcomes from the answer to the write: our price in each planned store, and every
    other field the body restated (other stores' prices, category, taxes, SKUs, ...) as sent;
    a field Loyverse reset or changed fails every row of the item, never done."""
    after = {
        (v.get("variant_id"), e.get("store_id")): money(e.get("price"))
        for v in response.get("variants") or [] for e in v.get("stores") or []
    }
    changed = restate.differences(body, response, skip_prices=planned.keys())
    results = []
    for (vid, sid), (row, target, note) in planned.items():
        got = after.get((vid, sid))
        if got != target:
            results.append(result(row, "failed", sent=True, code="VERIFY_FAILED",
                                   error=f"Loyverse answered price {got} for variant {vid} in store {sid}, "
                                         f"we sent {target}",
                                   details={"sent": str(target), "answered": None if got is None else str(got)}))
        elif changed:
            results.append(result(row, "failed", sent=True, code="VERIFY_FAILED",
                                   error=(f"the write changed {len(changed)} field(s) of item {body['id']} "
                                          "it restated as read: " + "; ".join(changed[:3]))[:500],
                                   details={"changed": changed[:20]}))
        else:
            results.append(result(row, "done", sent=True, **note))
    return results
