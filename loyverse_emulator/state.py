"""In-memory state of the Loyverse emulator: merchants, their objects, logs and counters.

Every object is a `Record` whose `data` is the JSON shape Loyverse returns (key order
included); emulator-only bookkeeping (insertion sequence, parsed timestamps, an item's
variant ids) lives beside it so it never leaks into a response. One re-entrant lock guards
the whole state: the API is small and a single lock keeps every rule trivially atomic.
"""

from __future__ import annotations

import base64
import bisect
import collections
import copy
import dataclasses
import datetime
import functools
import hashlib
import json
import secrets
import threading
import time
from typing import Any

from loyverse_emulator import faults

# Loyverse's documented budget: 300 requests per 300 s per merchant account.
RATE_LIMIT = 300
RATE_WINDOW_SECONDS = 300.0

STORES_MERGE_CHOICES = ("merge", "replace")
#: How a POST with an id reads what it leaves out: "merge" keeps it, "whole" resets it.
POST_SEMANTICS_CHOICES = ("merge", "whole")
#: The shape of GET /webhooks/: {"webhooks": [...]} or a bare array.
WEBHOOKS_LIST_CHOICES = ("object", "array")

#: Defaults of the switchable [UNKNOWN] behaviours (see docs/emulator.md).
DEFAULT_MODES: dict[str, Any] = {
    "stores_merge": "merge",
    "default_price_moves_stores": False,
    "retry_after": None,
    "rate_limit": RATE_LIMIT,
    "rate_window_seconds": None,  # None: RATE_WINDOW_SECONDS / time_scale
    "post_semantics": "merge",
    "webhooks_list": "object",
    "webhook_https_only": False,
    "clock_offset_seconds": 0,
}

KINDS = ("stores", "categories", "items", "variants", "modifiers", "taxes", "webhooks", "inventory")

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_CURSOR_KEY = b"loyverse-emulator-cursor"


class ApiError(Exception):
    """An error answered with Loyverse's body `{"errors":[{"code","details","field"}]}`."""

    def __init__(self, status: int, code: str, details: str, field: str | None = None) -> None:
        super().__init__(f"{status} {code}: {details}")
        self.status = status
        self.code = code
        self.details = details
        self.field = field

    def body(self) -> dict[str, Any]:
        """The JSON error body."""
        return error_body(self.code, self.details, self.field)


def error_body(code: str, details: str, field: str | None = None) -> dict[str, Any]:
    """Loyverse's error envelope with a single error."""
    return {"errors": [{"code": code, "details": details, "field": field}]}


def iso_from_ms(ms: int) -> str:
    """Format epoch milliseconds as Loyverse does: `2020-03-30T18:30:00.000Z`."""
    seconds, millis = divmod(ms, 1000)
    return f"{_iso_seconds(seconds)}.{millis:03d}Z"


@functools.lru_cache(maxsize=65536)
def _iso_seconds(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def ms_from_iso(text: str) -> int:
    """Parse an ISO-8601 timestamp (with or without `Z`/milliseconds) to epoch ms."""
    dt = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace(" ", "+"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.UTC)
    return int((dt - _EPOCH) // datetime.timedelta(milliseconds=1))


def money(value: Any, decimal_places: int) -> Any:
    """Round to the currency's decimals; integral values become JSON integers (`7000`)."""
    if value is None:
        return None
    rounded = round(float(value), decimal_places)
    return int(rounded) if rounded == int(rounded) else rounded


def encode_cursor(created_ms: int, seq: int) -> str:
    """A short opaque cursor naming the last row of a page (16 base64url characters)."""
    raw = created_ms.to_bytes(6, "big", signed=False) + seq.to_bytes(4, "big")
    check = hashlib.blake2b(raw, key=_CURSOR_KEY, digest_size=2).digest()
    return base64.urlsafe_b64encode(raw + check).decode()


def decode_cursor(cursor: str) -> tuple[int, int]:
    """Inverse of `encode_cursor`; raises ApiError INVALID_CURSOR for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raw = b""
    if (
        len(raw) != 12
        or hashlib.blake2b(raw[:10], key=_CURSOR_KEY, digest_size=2).digest() != raw[10:]
    ):
        raise ApiError(400, "INVALID_CURSOR", "Invalid cursor", "cursor")
    return int.from_bytes(raw[:6], "big"), int.from_bytes(raw[6:10], "big")


@dataclasses.dataclass(slots=True)
class Record:
    """One stored object: `data` is exactly what the API returns (minus inline children)."""

    data: dict[str, Any]
    seq: int
    created_ms: int
    updated_ms: int
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def deleted(self) -> bool:
        return self.data.get("deleted_at") is not None


class Merchant:
    """One Loyverse account: profile, tokens, objects, modes, faults, rate-limit window."""

    def __init__(self, profile: dict[str, Any], *, time_scale: float = 1.0) -> None:
        self.profile = profile
        self.tokens: list[str] = []
        self.collections: dict[str, dict[Any, Record]] = {kind: {} for kind in KINDS}
        self.modes: dict[str, Any] = dict(DEFAULT_MODES)
        self.faults = faults.FaultConfig()
        self.time_scale = time_scale
        self.window: collections.deque[float] = collections.deque()
        self.counters: dict[str, Any] = {}
        self.reset_counters()
        self.next_sku = 10000
        self._seq = 0
        self._sorted: dict[str, tuple[list[Record], list[tuple[int, int]]]] = {}

    @property
    def id(self) -> str:
        return str(self.profile["id"])

    @property
    def decimal_places(self) -> int:
        return int(self.profile["currency"]["decimal_places"])

    def reset_counters(self) -> None:
        self.counters = {"requests": 0, "by_status": {}, "rate_limited": 0, "writes": 0}

    def add(
        self,
        kind: str,
        key: Any,
        data: dict[str, Any],
        *,
        created_ms: int,
        updated_ms: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Record:
        """Insert a new record (newest sequence number)."""
        self._seq += 1
        rec = Record(
            data,
            self._seq,
            created_ms,
            updated_ms if updated_ms is not None else created_ms,
            extra or {},
        )
        self.collections[kind][key] = rec
        self._sorted.pop(kind, None)
        return rec

    def restore(self, kind: str, key: Any, rec: Record) -> None:
        """Insert a record loaded from a state file, keeping its sequence number."""
        self.collections[kind][key] = rec
        self._seq = max(self._seq, rec.seq)
        self._sorted.pop(kind, None)

    def sorted_desc(self, kind: str) -> tuple[list[Record], list[tuple[int, int]]]:
        """Records newest-first by (created_at, insertion), with bisectable keys."""
        cached = self._sorted.get(kind)
        if cached is None:
            recs = sorted(
                self.collections[kind].values(), key=lambda r: (r.created_ms, r.seq), reverse=True
            )
            keys = [(-r.created_ms, -r.seq) for r in recs]
            cached = (recs, keys)
            self._sorted[kind] = cached
        return cached

    def store_ids(self, *, include_deleted: bool = False) -> list[str]:
        recs, _ = self.sorted_desc("stores")
        return [r.data["id"] for r in reversed(recs) if include_deleted or not r.deleted]

    def summary(self) -> dict[str, Any]:
        """The dict exposed as `EmulatorServer.merchants[i]`."""
        return {
            "merchant_id": self.id,
            "business_name": self.profile.get("business_name"),
            "currency": dict(self.profile["currency"]),
            "tokens": list(self.tokens),
            "store_ids": self.store_ids(),
        }

    def rate_window_seconds(self) -> float:
        configured = self.modes.get("rate_window_seconds")
        if configured is not None:
            return float(configured)
        return RATE_WINDOW_SECONDS / self.time_scale

    def take_rate_budget(self, now: float) -> bool:
        """Sliding window: True if this request fits; only admitted requests use budget."""
        limit = self.modes.get("rate_limit")
        if limit is None:
            return True
        horizon = now - self.rate_window_seconds()
        window = self.window
        while window and window[0] <= horizon:
            window.popleft()
        if len(window) >= int(limit):
            return False
        window.append(now)
        return True


def page_after(recs: list[Record], keys: list[tuple[int, int]], cursor: str | None) -> int:
    """Index in a newest-first list where the page after `cursor` starts."""
    if not cursor:
        return 0
    created_ms, seq = decode_cursor(cursor)
    return bisect.bisect_right(keys, (-created_ms, -seq))


class State:
    """All merchants plus the request log, counters and the price-change write log."""

    def __init__(self, *, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.lock = threading.RLock()
        self.time_scale = time_scale
        self.merchants: dict[str, Merchant] = {}
        self.tokens: dict[str, str] = {}  # token -> merchant id
        self.oauth_secrets: dict[str, str] = {}  # token -> OAuth app client secret
        self.revoked: set[str] = set()
        self.request_log: collections.deque[dict[str, Any]] = collections.deque(maxlen=200_000)
        self.price_changes: list[dict[str, Any]] = []
        self.webhook_deliveries: list[dict[str, Any]] = []
        self._log_id = 0
        self._change_id = 0
        self._last_ms = 0
        from loyverse_emulator import oauth

        self.oauth = oauth.Registry(self)  # OAuth apps and their expiring tokens

    # -- clock -----------------------------------------------------------------------------

    def now_ms(self, merchant: Merchant | None = None) -> int:
        """Wall-clock ms, strictly increasing so every change visibly bumps updated_at; on the
        merchant's clock (the wall clock plus its `clock_offset_seconds` mode) when given."""
        with self.lock:
            ms = time.time_ns() // 1_000_000
            if ms <= self._last_ms:
                ms = self._last_ms + 1
            self._last_ms = ms
            if merchant is not None:
                ms += round(float(merchant.modes.get("clock_offset_seconds") or 0) * 1000)
            return ms

    # -- merchants and tokens --------------------------------------------------------------

    def add_merchant(self, merchant: Merchant) -> Merchant:
        with self.lock:
            merchant.time_scale = self.time_scale
            self.merchants[merchant.id] = merchant
            for token in merchant.tokens:
                self.tokens[token] = merchant.id
            return merchant

    def merchant(self, merchant_id: str | None = None) -> Merchant:
        """A merchant by id; None means the first merchant. Raises KeyError."""
        with self.lock:
            if merchant_id is None:
                return next(iter(self.merchants.values()))
            return self.merchants[merchant_id]

    def add_token(
        self, merchant_id: str, token: str | None = None, *, client_secret: str | None = None
    ) -> str:
        """Give a merchant another token; with `client_secret` it acts as an OAuth app token."""
        with self.lock:
            merchant = self.merchant(merchant_id)
            token = token or secrets.token_hex(16)
            if token not in merchant.tokens:
                merchant.tokens.append(token)
            self.tokens[token] = merchant.id
            self.revoked.discard(token)
            if client_secret is not None:
                self.oauth_secrets[token] = client_secret
            return token

    def mark_oauth(self, token: str, client_secret: str) -> None:
        """Mark an existing token as issued to an OAuth app with this client secret."""
        with self.lock:
            if token not in self.tokens:
                raise KeyError(token)
            self.oauth_secrets[token] = client_secret

    def revoke_token(self, token: str) -> bool:
        """Revoke a token at once (as deleting it in the Back Office does)."""
        with self.lock:
            merchant_id = self.tokens.pop(token, None)
            if merchant_id is None:
                return False
            self.revoked.add(token)
            merchant = self.merchants[merchant_id]
            if token in merchant.tokens:
                merchant.tokens.remove(token)
            return True

    def authenticate(self, authorization: str | None) -> tuple[Merchant, str] | None:
        if not authorization:
            return None
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        token = token.strip()
        with self.lock:
            merchant_id = self.tokens.get(token)
            if merchant_id is None or self.oauth.expired(token):
                return None
            return self.merchants[merchant_id], token

    # -- logs ------------------------------------------------------------------------------

    def log_request(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self._log_id += 1
            entry["id"] = self._log_id
            self.request_log.append(entry)

    def requests_since(
        self, since: int = 0, merchant_id: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Request-log entries with id > since (oldest first)."""
        with self.lock:
            out = [
                dict(e)
                for e in self.request_log
                if e["id"] > since and (merchant_id is None or e.get("merchant_id") == merchant_id)
            ]
        return out[:limit] if limit else out

    def record_price_change(
        self, merchant_id: str, variant_id: str, store_id: str, old: Any, new: Any, at_ms: int,
        source: str = "api",
    ) -> None:
        """Log one applied store-price change; `source` is "api" (a request) or "backoffice"."""
        with self.lock:
            self._change_id += 1
            self.price_changes.append(
                {
                    "id": self._change_id,
                    "time": iso_from_ms(at_ms),
                    "merchant_id": merchant_id,
                    "variant_id": variant_id,
                    "store_id": store_id,
                    "old_price": old,
                    "new_price": new,
                    "source": source,
                }
            )

    def price_changes_since(
        self, since: int = 0, merchant_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Applied store-price changes with id > since (oldest first)."""
        with self.lock:
            return [
                dict(c)
                for c in self.price_changes
                if c["id"] > since and (merchant_id is None or c["merchant_id"] == merchant_id)
            ]

    def reset(
        self,
        *,
        log: bool = True,
        counters: bool = True,
        rate_limit: bool = True,
        price_changes: bool = True,
    ) -> None:
        """Clear the request log, counters, rate-limit windows and/or the price-change log."""
        with self.lock:
            if log:
                self.request_log.clear()
                self.webhook_deliveries.clear()
            if price_changes:
                self.price_changes.clear()
            for merchant in self.merchants.values():
                if counters:
                    merchant.reset_counters()
                if rate_limit:
                    merchant.window.clear()

    def counters(self) -> dict[str, Any]:
        """Per merchant: requests, responses by status, 429s, writes."""
        with self.lock:
            return {mid: copy.deepcopy(m.counters) for mid, m in self.merchants.items()}

    # -- modes and faults ------------------------------------------------------------------

    def set_modes(self, merchant_id: str | None = None, **modes: Any) -> dict[str, Any]:
        """Switch the [UNKNOWN] behaviours for one merchant; returns the merchant's modes."""
        with self.lock:
            merchant = self.merchant(merchant_id)
            validated = validate_modes(modes)
            merchant.modes.update(validated)
            return dict(merchant.modes)

    def set_faults(
        self, merchant_id: str | None = None, *, clear: bool = False, **settings: Any
    ) -> dict[str, Any]:
        """Configure fault injection for one merchant; `clear=True` resets first."""
        with self.lock:
            merchant = self.merchant(merchant_id)
            if clear:
                merchant.faults = faults.FaultConfig()
            merchant.faults.update(**settings)
            return merchant.faults.to_dict()

    # -- read accessors for tests ------------------------------------------------------------

    def dump(self, merchant_id: str | None = None) -> dict[str, Any]:
        """Per merchant: items with variants and store prices, categories, modifiers, ..."""

        with self.lock:
            merchants = (
                [self.merchant(merchant_id)] if merchant_id else list(self.merchants.values())
            )
            out = {}
            for m in merchants:
                out[m.id] = {
                    "merchant": copy.deepcopy(m.profile),
                    "tokens": list(m.tokens),
                    "modes": dict(m.modes),
                    "faults": m.faults.to_dict(),
                    "stores": [copy.deepcopy(r.data) for r in reversed(m.sorted_desc("stores")[0])],
                    "categories": [copy.deepcopy(r.data) for r in m.sorted_desc("categories")[0]],
                    "items": [
                        copy.deepcopy(render_item(m, r))
                        for r in m.sorted_desc("items")[0]
                    ],
                    "modifiers": [copy.deepcopy(r.data) for r in m.sorted_desc("modifiers")[0]],
                    "taxes": [copy.deepcopy(r.data) for r in m.sorted_desc("taxes")[0]],
                    "inventory_levels": [
                        copy.deepcopy(r.data) for r in m.sorted_desc("inventory")[0]
                    ],
                    "webhooks": [copy.deepcopy(r.data) for r in m.sorted_desc("webhooks")[0]],
                }
            return out

    def items(
        self, merchant_id: str | None = None, *, include_deleted: bool = False
    ) -> list[dict[str, Any]]:
        """Deep copies of a merchant's items (newest first) with their variants inline."""

        with self.lock:
            m = self.merchant(merchant_id)
            return [
                copy.deepcopy(render_item(m, r))
                for r in m.sorted_desc("items")[0]
                if include_deleted or not r.deleted
            ]

    def get_object(
        self, kind: str, object_id: str, merchant_id: str | None = None
    ) -> dict[str, Any] | None:
        """A deep copy of one object (items with variants inline), deleted or not."""

        with self.lock:
            m = self.merchant(merchant_id)
            rec = m.collections[kind].get(object_id)
            if rec is None:
                return None
            data = render_item(m, rec) if kind == "items" else rec.data
            return copy.deepcopy(data)

    def variant_price(self, variant_id: str, store_id: str, merchant_id: str | None = None) -> Any:
        """The stored price of a variant in a store (None if the entry is missing)."""
        with self.lock:
            rec = self.merchant(merchant_id).collections["variants"][variant_id]
            for entry in rec.data["stores"]:
                if entry["store_id"] == store_id:
                    return entry["price"]
            return None

    # -- persistence -----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        with self.lock:
            merchants = []
            for m in self.merchants.values():
                colls = {}
                for kind, recs in m.collections.items():
                    colls[kind] = [
                        [rec.seq, rec.created_ms, rec.updated_ms, rec.data, rec.extra]
                        for rec in recs.values()
                    ]
                merchants.append(
                    {
                        "profile": m.profile,
                        "tokens": m.tokens,
                        "oauth": {t: s for t, s in self.oauth_secrets.items() if t in m.tokens},
                        "modes": m.modes,
                        "faults": m.faults.to_dict(),
                        "next_sku": m.next_sku,
                        "collections": colls,
                    }
                )
            return {"format": "loyverse-emulator-state", "version": 1, "merchants": merchants}

    def save(self, path: str) -> None:
        with self.lock:
            text = json.dumps(self.to_json(), ensure_ascii=False)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)

    @classmethod
    def from_json(cls, doc: dict[str, Any], *, time_scale: float = 1.0) -> State:
        """A state saved by ``save``; a document that is not one raises ValueError naming the
        first bad place (e.g. ``merchants[0].collections.variants[3]: no variant_id``)."""
        check_state_document(doc)
        state = cls(time_scale=time_scale)
        for md in doc["merchants"]:
            m = Merchant(md["profile"], time_scale=time_scale)
            m.tokens = list(md["tokens"])
            m.modes.update(md.get("modes", {}))
            m.next_sku = int(md.get("next_sku", 10000))
            for kind, rows in md["collections"].items():
                for seq, created_ms, updated_ms, data, extra in rows:
                    key: Any = (
                        (data["variant_id"], data["store_id"])
                        if kind == "inventory"
                        else data["variant_id"] if kind == "variants" else data["id"]
                    )
                    m.restore(kind, key, Record(data, seq, created_ms, updated_ms, extra))
            state.add_merchant(m)
            state.oauth_secrets.update(md.get("oauth", {}))
        return state


#: the key each collection's records are stored under (inventory: two keys)
_STATE_KEYS = {"variants": ("variant_id",), "inventory": ("variant_id", "store_id")}


def check_state_document(doc: Any) -> None:
    """Raise ValueError naming the first place where ``doc`` is not a saved emulator state."""

    def bad(where: str, what: str) -> ValueError:
        return ValueError(f"{where}: {what}")

    if not isinstance(doc, dict) or not isinstance(doc.get("merchants"), list):
        raise bad("(top)", "not an emulator state (expected {\"merchants\": [...]}, as `--state` saves)")
    for mi, md in enumerate(doc["merchants"]):
        where = f"merchants[{mi}]"
        if not isinstance(md, dict):
            raise bad(where, "not an object")
        if not isinstance(md.get("profile"), dict) or not isinstance(md["profile"].get("id"), str):
            raise bad(f"{where}.profile", "no merchant id")
        if not isinstance(md.get("tokens"), list) or not all(isinstance(t, str) for t in md["tokens"]):
            raise bad(f"{where}.tokens", "not a list of strings")
        collections = md.get("collections")
        if not isinstance(collections, dict):
            raise bad(f"{where}.collections", "not an object")
        for kind, rows in collections.items():
            if not isinstance(rows, list):
                raise bad(f"{where}.collections.{kind}", "not a list")
            for ri, row in enumerate(rows):
                place = f"{where}.collections.{kind}[{ri}]"
                if not (isinstance(row, list) and len(row) == 5 and isinstance(row[3], dict)
                        and all(isinstance(n, int) for n in row[:3])):
                    raise bad(place, "not [seq, created_ms, updated_ms, object, extra]")
                for key in _STATE_KEYS.get(kind, ("id",)):
                    value = row[3].get(key)
                    if not isinstance(value, str) or not value:
                        raise bad(place, f"no {key} (a non-empty string)")


def validate_modes(modes: dict[str, Any]) -> dict[str, Any]:
    """Check mode names and values; raises ValueError with a one-line message."""
    out: dict[str, Any] = {}
    for name, value in modes.items():
        if name not in DEFAULT_MODES:
            raise ValueError(f"unknown mode {name!r}; known: {', '.join(DEFAULT_MODES)}")
        if name == "stores_merge" and value not in STORES_MERGE_CHOICES:
            raise ValueError(f"stores_merge must be one of {STORES_MERGE_CHOICES}")
        if name == "post_semantics" and value not in POST_SEMANTICS_CHOICES:
            raise ValueError(f"post_semantics must be one of {POST_SEMANTICS_CHOICES}")
        if name == "webhooks_list" and value not in WEBHOOKS_LIST_CHOICES:
            raise ValueError(f"webhooks_list must be one of {WEBHOOKS_LIST_CHOICES}")
        if name in ("default_price_moves_stores", "webhook_https_only") and not isinstance(
            value, bool
        ):
            raise ValueError(f"{name} must be a boolean")
        if name in ("retry_after", "rate_window_seconds") and _not_positive(value, float):
            raise ValueError(f"{name} must be a positive number or null")
        if name == "clock_offset_seconds" and (
            isinstance(value, bool) or not isinstance(value, int | float) or not abs(value) <= 86400 * 366
        ):
            raise ValueError("clock_offset_seconds must be a number of seconds between -31622400 and 31622400")
        if name == "rate_limit" and _not_positive(value, int):
            raise ValueError("rate_limit must be a positive integer or null")
        out[name] = value
    return out


def _not_positive(value: Any, kind: type) -> bool:
    """True for a value that is neither null nor a positive number of `kind`."""
    if value is None:
        return False
    allowed = (int, float) if kind is float else (int,)
    return isinstance(value, bool) or not isinstance(value, allowed) or value <= 0


def render_item(m: Merchant, rec: Record) -> dict[str, Any]:
    """An item as the API returns it, with its variants inline."""
    data = dict(rec.data)
    variants = m.collections["variants"]
    out = []
    for vid in rec.extra.get("variant_ids", ()):
        vrec = variants.get(vid)
        if vrec is not None and (rec.deleted or not vrec.deleted):
            out.append(vrec.data)
    data["variants"] = out
    return data
