"""What a write to Loyverse restates: the writable fields, and bodies built from the last read.

Nothing public shows whether Loyverse reads a POST with an id as a merge (an omitted field
keeps its value) or as the whole object (an omitted field falls back to its create default,
an omitted variant is deleted; API.md §5 and §13). A body that restates every writable field
exactly as last read is right under both readings. So every item write is built
here, from the read that precedes it, changing only the prices it is asked to change, and
the answer is compared with what was sent, field by field (``differences``).

This is the one definition of "the writable fields"; read-only fields (``handle``, the
timestamps, ``image_url``, ``deleted_at``, a variant's ``item_id`` inside an item) are never
sent. A key absent from the read is not sent either: we cannot restate what we never saw.
"""

from __future__ import annotations

import copy
import decimal
import json
from collections.abc import Collection, Mapping
from typing import Any

#: Writable item fields (POST /items), in Loyverse's key order.
ITEM_FIELDS = (
    "item_name", "reference_id", "description", "category_id", "track_stock", "sold_by_weight",
    "is_composite", "use_production", "components", "primary_supplier_id", "tax_ids",
    "modifier_ids", "form", "color", "option1_name", "option2_name", "option3_name",
)  # fmt: skip
#: Writable variant fields (inline in POST /items), besides ``stores``.
VARIANT_FIELDS = (
    "sku", "reference_variant_id", "option1_value", "option2_value", "option3_value", "barcode",
    "cost", "purchase_cost", "default_pricing_type", "default_price",
)  # fmt: skip
#: Fields of one ``stores[]`` entry of a variant.
STORE_FIELDS = (
    "store_id",
    "pricing_type",
    "price",
    "available_for_sale",
    "optimal_stock",
    "low_stock",
)
#: Item fields compared as sets: their order carries no meaning.
_SET_FIELDS = ("tax_ids", "modifier_ids")

#: (variant_id, store_id) -> the new FIXED price of that store.
Prices = Mapping[tuple[str, str], Any]


def item_body(item: Mapping[str, Any], prices: Prices | None = None) -> dict[str, Any]:
    """POST /items body restating ``item`` as read, with ``prices`` set.

    Every writable item field present in the read, and every variant that is not deleted
    with every writable field and ALL its ``stores[]`` entries. A price for a store the
    variant has no entry for adds one (FIXED, available for sale).
    """
    body: dict[str, Any] = {"id": item["id"]}
    for key in ITEM_FIELDS:
        if key in item:
            body[key] = copy.deepcopy(item[key])
    body["variants"] = [
        _variant(variant, prices or {})
        for variant in item.get("variants") or []
        if not variant.get("deleted_at")
    ]
    return body


def _variant(variant: Mapping[str, Any], prices: Prices) -> dict[str, Any]:
    vid = variant["variant_id"]
    out: dict[str, Any] = {"variant_id": vid}
    for key in VARIANT_FIELDS:
        if key in variant:
            out[key] = copy.deepcopy(variant[key])
    stores = [
        {k: copy.deepcopy(e[k]) for k in STORE_FIELDS if k in e}
        for e in variant.get("stores") or []
    ]
    for (pvid, store_id), price in prices.items():
        if pvid != vid:
            continue
        entry = next((e for e in stores if e.get("store_id") == store_id), None)
        if entry is None:
            entry = {"store_id": store_id, "available_for_sale": True}
            stores.append(entry)
        entry["pricing_type"] = "FIXED"
        entry["price"] = price
    out["stores"] = stores
    return out


def differences(
    sent: Mapping[str, Any],
    answered: Mapping[str, Any],
    *,
    skip_prices: Collection[tuple[str, str]] = (),
) -> list[str]:
    """Every field ``sent`` restated that ``answered`` does not show with the same value.

    ``sent`` is an ``item_body``; ``answered`` the item Loyverse returned (or read back).
    Numbers compare by value (``10`` = ``10.0``), ``tax_ids``/``modifier_ids`` as sets,
    ``components`` in any order, a missing key as null. A variant or store entry that was
    sent and is gone (or deleted) is a difference. ``skip_prices`` are (variant, store)
    pairs whose ``price``/``pricing_type`` the caller checks itself. Fields not sent are not
    compared. Returns messages like ``category_id: "751..." became null``.
    """
    out: list[str] = []
    for key in ITEM_FIELDS:
        if key in sent and not _same(key, sent[key], answered.get(key)):
            out.append(f"{key}: {_show(sent[key])} became {_show(answered.get(key))}")
    got_variants = {
        v.get("variant_id"): v
        for v in answered.get("variants") or []
        if isinstance(v, Mapping) and not v.get("deleted_at")
    }
    for variant in sent.get("variants") or []:
        vid = variant.get("variant_id")
        got = got_variants.get(vid)
        if got is None:
            out.append(f"variant {vid} was deleted")
            continue
        for key in VARIANT_FIELDS:
            if key in variant and not _same(key, variant[key], got.get(key)):
                out.append(
                    f"variant {vid} {key}: {_show(variant[key])} became {_show(got.get(key))}"
                )
        got_stores = {
            e.get("store_id"): e for e in got.get("stores") or [] if isinstance(e, Mapping)
        }
        for entry in variant.get("stores") or []:
            sid = entry.get("store_id")
            have = got_stores.get(sid)
            if have is None:
                out.append(f"variant {vid} store {sid}: the entry is gone")
                continue
            for key in STORE_FIELDS:
                if key == "store_id" or key not in entry:
                    continue
                if key in ("price", "pricing_type") and (vid, sid) in skip_prices:
                    continue
                if not _same(key, entry[key], have.get(key)):
                    out.append(
                        f"variant {vid} store {sid} {key}: {_show(entry[key])} became {_show(have.get(key))}"
                    )
    return out


def _same(key: str, a: Any, b: Any) -> bool:
    if key in _SET_FIELDS and isinstance(a, list) and isinstance(b, list):
        return sorted(map(str, a)) == sorted(map(str, b))
    if key == "components" and isinstance(a, list) and isinstance(b, list):
        return sorted(map(_canon_str, a)) == sorted(map(_canon_str, b))
    return _canon(a) == _canon(b)


def _canon(value: Any) -> Any:
    """Numbers as Decimals (10 == 10.0), containers recursively; the rest as is."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float | decimal.Decimal):
        try:
            return decimal.Decimal(str(value)).normalize()
        except decimal.InvalidOperation:
            return value
    if isinstance(value, Mapping):
        return {k: _canon(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canon(v) for v in value]
    return value


def _canon_str(value: Any) -> str:
    return json.dumps(_canon(value), sort_keys=True, default=str)


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, decimal.Decimal):
        return str(value)
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."
