"""Load a merchant from files in Loyverse's own response format (`--state-from DIR`).

The directory holds files such as `items__*.json`, `categories__*.json`, `stores__*.json`,
`taxes__*.json`, `inventory__*.json` (optionally `modifiers__*.json`, `merchant__*.json`),
like /work/shared/loyverse/real/. A file may be the bare array, the API envelope
(`{"items":[...],"cursor":...}`) or a wrapper around it (`{"respBody":{"items":[...]}}`).
Objects are kept exactly as recorded, so they are served back unchanged in shape; objects
repeated across files (pasted duplicates) are kept once.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

from loyverse_emulator import menu as menu_mod
from loyverse_emulator import state as st

# file prefix -> (envelope key, id key)
FILES = {
    "stores": ("stores", "id"),
    "categories": ("categories", "id"),
    "taxes": ("taxes", "id"),
    "modifiers": ("modifiers", "id"),
    "items": ("items", "id"),
    "inventory": ("inventory_levels", None),
}


def _find_list(doc: Any, key: str) -> list[dict[str, Any]] | None:
    if isinstance(doc, list):
        return [d for d in doc if isinstance(d, dict)]
    if isinstance(doc, dict):
        if isinstance(doc.get(key), list):
            return [d for d in doc[key] if isinstance(d, dict)]
        for value in doc.values():
            found = _find_list(value, key)
            if found is not None:
                return found
    return None


def _check(path: pathlib.Path, key: str, index: int, obj: dict[str, Any]) -> None:
    """The keys the emulator files an object under must be there: a recorded object without
    them is refused with its file and place, not a KeyError later."""
    where = f"--state-from {path}: {key}[{index}]"

    def need(obj: Any, place: str, *names: str) -> None:
        for name in names:
            if not isinstance(obj, dict) or not isinstance(obj.get(name), str) or not obj[name]:
                raise ValueError(f"{place}: no {name} (a non-empty string)")

    if key == "inventory_levels":
        need(obj, where, "variant_id", "store_id")
        return
    need(obj, where, "id")
    if key != "items":
        return
    variants = obj.get("variants")
    if variants is None:
        return
    if not isinstance(variants, list):
        raise ValueError(f"{where}.variants: not a list")
    for vi, variant in enumerate(variants):
        need(variant, f"{where}.variants[{vi}]", "variant_id")
        stores = variant.get("stores") or []
        if not isinstance(stores, list):
            raise ValueError(f"{where}.variants[{vi}].stores: not a list")
        for si, entry in enumerate(stores):
            need(entry, f"{where}.variants[{vi}].stores[{si}]", "store_id")


def read_dir(directory: str | pathlib.Path) -> dict[str, Any]:
    """Objects found in a directory, keyed like a generated menu (plus `merchant`)."""
    root = pathlib.Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"--state-from: {root} is not a directory")
    out: dict[str, Any] = {"merchant": None}
    for prefix, (key, id_key) in FILES.items():
        seen: set[Any] = set()
        objects: list[dict[str, Any]] = []
        for path in sorted(root.glob(f"{prefix}__*.json")):
            try:
                found = _find_list(json.loads(path.read_text(encoding="utf-8")), key) or []
            except ValueError as exc:
                raise ValueError(f"--state-from {path}: not JSON ({exc})") from None
            for index, obj in enumerate(found):
                _check(path, key, index, obj)
                ident = obj.get(id_key) if id_key else (obj.get("variant_id"), obj.get("store_id"))
                if ident in seen:
                    continue
                seen.add(ident)
                objects.append(obj)
        out["inventory_levels" if prefix == "inventory" else prefix] = objects
    for path in sorted(root.glob("merchant__*.json")):
        out["merchant"] = json.loads(path.read_text(encoding="utf-8"))
    return out


def load_into(merchant: st.Merchant, directory: str | pathlib.Path) -> None:
    """Replace a merchant's objects (and profile, if a merchant file exists) by a directory's."""
    found = read_dir(directory)
    if found["merchant"]:
        merchant.profile = found["merchant"]
    for kind in merchant.collections:
        merchant.collections[kind].clear()
    merchant._sorted.clear()
    merchant.next_sku = 10000
    if not found["stores"]:  # derive minimal stores from the variants' store entries
        ids = dict.fromkeys(
            entry["store_id"]
            for item in found["items"]
            for v in item.get("variants") or []
            for entry in v.get("stores") or []
        )
        found["stores"] = [
            {"id": sid, "name": f"Store {i + 1}", "address": None, "phone_number": None, "description": None,
             "created_at": st.iso_from_ms(menu_mod.BASE_MS), "updated_at": st.iso_from_ms(menu_mod.BASE_MS), "deleted_at": None}
            for i, sid in enumerate(ids)
        ]  # fmt: skip
    menu_mod.load_into(merchant, found)
