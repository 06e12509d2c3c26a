"""Chaos harness of tests/chaos/: the shared rig (worker processes, cron, updater, convergence
checks) is bench/rig.py's, re-exported here, because bench/chaos.py and bench/many_accounts.py
run the same; the checks only the tests make (no-op writes, rate windows, whole-object
fingerprints) are here.
"""

from __future__ import annotations

import copy
import datetime as dt
import decimal
from collections.abc import Iterable
from typing import Any

from bench.rig import (
    FAST_BACKOFF,
    FAST_ENV,
    FAULT_CODES,
    Cron,
    Updater,
    WorkerPool,
    applied_writes,
    connect,
    diverged,
    fault_counts,
    grow_menu,
    queue_counts,
    stale_last_changes,
    stale_last_writes,
    wait_drained,
)

D = decimal.Decimal

__all__ = [
    "FAST_BACKOFF", "FAST_ENV", "FAULT_CODES", "Cron", "Updater", "WorkerPool", "applied_writes", "connect", "diverged",
    "fault_counts", "fingerprint_changes", "grow_menu", "item_fingerprints", "noop_writes", "queue_counts",
    "stale_last_changes", "stale_last_writes", "wait_drained", "window_peaks",
]


def noop_writes(emu: Any, merchant_id: str, initial: dict[tuple[str, str], Any]) -> int:
    """Applied item writes that changed no price at all: a version sent again (replayed in log order)."""
    current = {k: (None if v is None else D(str(v)).quantize(D("0.001"))) for k, v in initial.items()}
    noop = 0
    for e in applied_writes(emu, merchant_id):
        changed = False
        for v in e["body"].get("variants") or []:
            for s in v.get("stores") or []:
                key = (v["variant_id"], s["store_id"])
                price = None if s.get("price") is None else D(str(s["price"])).quantize(D("0.001"))
                if current.get(key) != price:
                    changed = True
                current[key] = price
        noop += not changed
    return noop



def window_peaks(emu: Any, merchant_id: str, window: float) -> int:
    """The most requests of one merchant inside any sliding window of `window` seconds."""
    times = sorted(dt.datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp()
                   for e in emu.state.requests_since(0, merchant_id) if e.get("status") is not None
                   and e.get("status") != 401)
    peak, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        peak = max(peak, hi - lo + 1)
    return peak


# -- whole-object writes: nothing but the synced store prices may change ----------------------

def item_fingerprints(emu: Any, merchant_id: str, mapped: Iterable[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """item id -> every field of the item as the emulator holds it (deleted items too), without
    `updated_at` and without the `price`/`pricing_type` of the mapped (variant, store) entries:
    whatever a price sync may change. A key holding null counts as absent (an old item without
    `description` that a whole-object write gives `description: null` is unchanged)."""
    skip = set(mapped)

    def clean(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if v is not None and k != "updated_at"}

    out: dict[str, dict[str, Any]] = {}
    for item in emu.state.items(merchant_id, include_deleted=True):
        item = copy.deepcopy(item)
        variants = []
        for variant in item.get("variants") or []:
            stores = []
            for entry in variant.get("stores") or []:
                if (variant["variant_id"], entry["store_id"]) in skip:
                    entry = {k: v for k, v in entry.items() if k not in ("price", "pricing_type")}
                stores.append(clean(entry))
            variants.append({**clean(variant), "stores": stores})
        out[item["id"]] = {**clean(item), "variants": variants}
    return out


def fingerprint_changes(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> list[str]:
    """What differs between two `item_fingerprints`: one line per changed field, item or variant."""
    out: list[str] = []
    for item_id in sorted(set(before) | set(after)):
        old, new = before.get(item_id), after.get(item_id)
        if old is None or new is None:
            out.append(f"item {item_id}: {'appeared' if old is None else 'vanished'}")
            continue
        for key in sorted(set(old) | set(new)):
            if key == "variants":
                old_v = {v["variant_id"]: v for v in old["variants"]}
                new_v = {v["variant_id"]: v for v in new["variants"]}
                for vid in sorted(set(old_v) | set(new_v)):
                    a, b = old_v.get(vid), new_v.get(vid)
                    if a != b:
                        keys = sorted(k for k in set(a or {}) | set(b or {}) if (a or {}).get(k) != (b or {}).get(k))
                        out.append(f"item {item_id} variant {vid}: {keys}"
                                   + (f" {a and a.get(keys[0])!r} -> {b and b.get(keys[0])!r}" if keys else ""))
            elif old.get(key) != new.get(key):
                out.append(f"item {item_id} {key}: {old.get(key)!r} -> {new.get(key)!r}")
    return out
