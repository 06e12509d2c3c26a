"""The emulator's back office: what a person does in Loyverse's web back office or at the
counter, outside the API (no token, not in the API request log, no rate budget).

Each action changes the state the way Loyverse would (updated_at of the variant and the
item moves, a price change is in the price-change log), then emits the webhooks Loyverse
would send (``items.update``, ``inventory_levels.update``). Served at
``POST /_emulator/backoffice`` as ``{"merchant_id", "action", ...}``:

* ``set_price``: ``variant_id``, ``store_id``, ``price`` (or ``prices``: a list of those, one
  items.update per item, batched up to 100 items per delivery)
* ``rename_item``: ``item_id``, ``item_name``
* ``delete_item``: ``item_id``
* ``sell``: ``variant_id``, ``store_id``, ``quantity`` (stock goes down; may go below zero)
"""

from __future__ import annotations

import copy
from typing import Any

from loyverse_emulator import resources
from loyverse_emulator import state as st

ACTIONS = ("set_price", "rename_item", "delete_item", "sell")


def _variant(m: st.Merchant, variant_id: Any) -> st.Record:
    rec = m.collections["variants"].get(variant_id) if isinstance(variant_id, str) else None
    if rec is None or rec.deleted:
        raise KeyError(f"variant {variant_id}")
    return rec


def _item(m: st.Merchant, item_id: Any) -> st.Record:
    rec = m.collections["items"].get(item_id) if isinstance(item_id, str) else None
    if rec is None or rec.deleted:
        raise KeyError(f"item {item_id}")
    return rec


def _price(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"price must be a non-negative number, got {value!r}")
    return value


def run(state: st.State, merchant: st.Merchant, doc: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """Apply one back-office action under the state lock; returns (answer, webhook events)."""
    action = doc.get("action")
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    m = merchant
    events: list[tuple[str, dict[str, Any]]] = []
    with state.lock:
        now = state.now_ms(m)  # the merchant's clock (clock_offset_seconds)
        stamp = st.iso_from_ms(now)
        if action == "set_price":
            changes = doc.get("prices") if "prices" in doc else [doc]
            if not isinstance(changes, list) or not changes:
                raise ValueError("prices must be a non-empty list of {variant_id, store_id, price}")
            # validate everything first: all or nothing
            planned = []
            for change in changes:
                vrec = _variant(m, change.get("variant_id"))
                entry = next((e for e in vrec.data.get("stores") or []
                              if e.get("store_id") == change.get("store_id")), None)
                if entry is None:
                    raise KeyError(f"store {change.get('store_id')} of variant {vrec.data['variant_id']}")
                planned.append((vrec, entry, _price(change.get("price"))))
            touched: dict[str, st.Record] = {}
            for vrec, entry, price in planned:
                old = entry.get("price")
                entry["price"] = st.money(price, m.decimal_places)
                entry["pricing_type"] = "FIXED"
                resources._touch(vrec, now)
                state.record_price_change(m.id, vrec.data["variant_id"], entry["store_id"], old, entry["price"], now,
                                          source="backoffice")
                item = _item(m, vrec.data.get("item_id"))
                touched[item.data["id"]] = item
            for item in touched.values():
                resources._touch(item, now)
            rendered = [copy.deepcopy(resources.render_item(m, i)) for i in touched.values()]
            events.append(("items.update", {"items": rendered}))
            return {"changed": len(planned), "items": len(touched), "updated_at": stamp}, events
        if action == "rename_item":
            item = _item(m, doc.get("item_id"))
            name = doc.get("item_name")
            if not isinstance(name, str) or not name.strip():
                raise ValueError("item_name must be a non-empty string")
            item.data["item_name"] = name
            resources._touch(item, now)
            events.append(("items.update", {"items": [copy.deepcopy(resources.render_item(m, item))]}))
            return {"item_id": item.data["id"], "item_name": name, "updated_at": stamp}, events
        if action == "delete_item":
            item = _item(m, doc.get("item_id"))
            ctx = resources.Context(state=state, merchant=m, token="")
            answer = resources.delete(ctx, "items", item.data["id"])
            return answer, list(ctx.events)
        # sell
        vrec = _variant(m, doc.get("variant_id"))
        store_id = doc.get("store_id")
        if store_id not in m.collections["stores"]:
            raise KeyError(f"store {store_id}")
        quantity = doc.get("quantity", 1)
        if isinstance(quantity, bool) or not isinstance(quantity, int | float) or quantity <= 0:
            raise ValueError(f"quantity must be a positive number, got {quantity!r}")
        key = (vrec.data["variant_id"], store_id)
        rec = m.collections["inventory"].get(key)
        stock = (rec.data.get("in_stock") or 0) if rec is not None else 0
        new = stock - quantity
        value = int(new) if float(new).is_integer() else new
        data = {"variant_id": key[0], "store_id": store_id, "in_stock": value, "updated_at": stamp}
        if rec is None:
            m.add("inventory", key, data, created_ms=now)
        else:
            rec.data = data
            rec.updated_ms = now
        events.append(("inventory_levels.update", {"inventory_levels": [copy.deepcopy(data)]}))
        return {"variant_id": key[0], "store_id": store_id, "in_stock": value}, events
