"""The /v1.0 resources of the emulator: routing, lists, filters and the write rules.

Everything here runs under `State.lock` and works on one merchant. Functions raise
`state.ApiError` for Loyverse's error answers and never mutate anything before the whole
request body has been validated, so a 400 leaves the state untouched.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import unicodedata
import uuid
from typing import Any

from loyverse_emulator import state as st

ITEM_KEYS = (
    "id", "handle", "reference_id", "item_name", "description", "track_stock", "sold_by_weight",
    "is_composite", "use_production", "category_id", "components", "primary_supplier_id",
    "tax_ids", "modifier_ids", "form", "color", "image_url", "option1_name", "option2_name",
    "option3_name", "created_at", "updated_at", "deleted_at", "variants",
)  # fmt: skip
VARIANT_KEYS = (
    "variant_id", "item_id", "sku", "reference_variant_id", "option1_value", "option2_value",
    "option3_value", "barcode", "cost", "purchase_cost", "default_pricing_type", "default_price",
    "stores", "created_at", "updated_at", "deleted_at",
)  # fmt: skip
STORE_ENTRY_KEYS = (
    "store_id",
    "pricing_type",
    "price",
    "available_for_sale",
    "optimal_stock",
    "low_stock",
)

CATEGORY_COLORS = ("GREY", "RED", "PINK", "ORANGE", "GREEN", "BLUE", "PURPLE")
ITEM_COLORS = ("GREY", "RED", "PINK", "ORANGE", "YELLOW", "GREEN", "BLUE", "PURPLE")
ITEM_FORMS = ("SQUARE", "CIRCLE", "SUN", "OCTAGON")
PRICING_TYPES = ("FIXED", "VARIABLE")
TAX_TYPES = ("INCLUDED", "ADDED")
WEBHOOK_TYPES = (
    "items.update",
    "inventory_levels.update",
    "customers.update",
    "receipts.update",
    "shifts.create",
)
WEBHOOK_STATUSES = ("ENABLED", "DISABLED")
MAX_STOCK = 9999999.999
MAX_LIMIT = 250
DEFAULT_LIMIT = 50

_MISSING: Any = object()
# What only the server sets: kept by an update even when it is read as the whole object.
_ITEM_READ_ONLY = ("id", "handle", "image_url", "created_at", "updated_at", "deleted_at")
_VARIANT_READ_ONLY = ("variant_id", "item_id", "created_at", "updated_at", "deleted_at")


@dataclasses.dataclass
class Context:
    """One authenticated request against one merchant."""

    state: st.State
    merchant: st.Merchant
    token: str
    events: list[tuple[str, dict[str, Any]]] = dataclasses.field(default_factory=list)
    wrote: bool = False


@dataclasses.dataclass(frozen=True)
class _Collection:
    key: str  # URL segment and list key
    id_param: str | None
    paginated: bool
    deleted_get_ok: bool = False  # 200 with deleted_at after DELETE (categories)
    writable: bool = True


COLLECTIONS = {
    "categories": _Collection("categories", "categories_ids", True, deleted_get_ok=True),
    "items": _Collection("items", "items_ids", True),
    "variants": _Collection("variants", "variants_ids", True),
    "modifiers": _Collection("modifiers", "modifier_ids", True),
    "taxes": _Collection("taxes", "tax_ids", False),
    "stores": _Collection("stores", "store_ids", False, deleted_get_ok=True, writable=False),
    "webhooks": _Collection("webhooks", None, False),
    "inventory": _Collection("inventory", None, True),
}


def not_found(object_id: str, field: str | None = None) -> st.ApiError:
    return st.ApiError(404, "NOT_FOUND", f"The resource with ID '{object_id}' not found", field)


def route(ctx: Context, method: str, path: str, query: dict[str, str], body: bytes) -> Any:
    """Answer one /v1.0 request (path relative to /v1.0); returns the 200 JSON body."""
    parts = [p for p in path.split("/") if p]
    if parts == ["merchant"]:
        if method != "GET":
            raise _method_not_allowed(method)
        return copy.deepcopy(ctx.merchant.profile)
    if not parts or parts[0] not in COLLECTIONS or len(parts) > 2:
        raise st.ApiError(404, "NOT_FOUND", f"Path '/v1.0{path}' not found")
    coll = COLLECTIONS[parts[0]]
    if len(parts) == 1:
        if method == "GET":
            return list_collection(ctx, coll, query)
        if method == "POST" and coll.writable:
            return post(ctx, coll.key, parse_body(body))
        raise _method_not_allowed(method)
    if coll.key == "inventory":
        raise st.ApiError(404, "NOT_FOUND", f"Path '/v1.0{path}' not found")
    object_id = parts[1]
    if method == "GET":
        return get_one(ctx, coll, object_id)
    if method == "DELETE" and coll.writable:
        return delete(ctx, coll.key, object_id)
    raise _method_not_allowed(method)


def _method_not_allowed(method: str) -> st.ApiError:
    return st.ApiError(405, "BAD_REQUEST", f"Method {method} is not allowed for this resource")


def parse_body(body: bytes) -> dict[str, Any]:
    """A JSON object body, or 400 BAD_REQUEST."""
    try:
        doc = json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, ValueError):
        raise st.ApiError(400, "BAD_REQUEST", "Request body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise st.ApiError(400, "BAD_REQUEST", "Request body must be a JSON object")
    return doc


# -- rendering ---------------------------------------------------------------------------------


render_item = st.render_item  # defined beside the records it renders (no import cycle)


def _render_modifier(rec: st.Record, show_deleted: bool) -> dict[str, Any]:
    options = rec.data.get("modifier_options") or []
    if show_deleted or all(o.get("deleted_at") is None for o in options):
        return rec.data
    data = dict(rec.data)
    data["modifier_options"] = [o for o in options if o.get("deleted_at") is None]
    return data


def _renderer(ctx: Context, kind: str, show_deleted: bool) -> Any:
    if kind == "items":
        return lambda rec: render_item(ctx.merchant, rec)
    if kind == "modifiers":
        return lambda rec: _render_modifier(rec, show_deleted)
    return lambda rec: rec.data


# -- reads -------------------------------------------------------------------------------------


def _ids(value: str | None) -> set[str] | None:
    if value is None:
        return None
    return {v.strip() for v in value.split(",") if v.strip()}


def _range(query: dict[str, str], prefix: str) -> tuple[int | None, int | None]:
    bounds: list[int | None] = []
    for suffix in ("min", "max"):
        name = f"{prefix}_{suffix}"
        raw = query.get(name)
        if raw is None or raw == "":
            bounds.append(None)
            continue
        try:
            bounds.append(st.ms_from_iso(raw))
        except ValueError:
            raise st.ApiError(
                400, "INVALID_VALUE", f"'{name}' must be an ISO 8601 date-time", name
            ) from None
    low, high = bounds
    if low is not None and high is not None and low > high:
        raise st.ApiError(
            400, "INVALID_RANGE", f"'{prefix}_min' is later than '{prefix}_max'", f"{prefix}_min"
        )
    return low, high


def _limit(query: dict[str, str]) -> int:
    raw = query.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise st.ApiError(
            400, "INVALID_VALUE", "'limit' must be an integer between 1 and 250", "limit"
        ) from None
    if not 1 <= limit <= MAX_LIMIT:
        raise st.ApiError(400, "INVALID_VALUE", "'limit' must be between 1 and 250", "limit")
    return limit


def list_collection(ctx: Context, coll: _Collection, query: dict[str, str]) -> Any:
    """GET on a collection: filters, newest-first order, cursor pagination."""
    m = ctx.merchant
    kind = coll.key
    list_key = "inventory_levels" if kind == "inventory" else kind
    if kind == "webhooks":  # GET /webhooks/ takes no parameters
        secret = ctx.state.oauth_secrets.get(ctx.token)
        hooks = [
            r.data
            for r in m.sorted_desc("webhooks")[0]
            if not r.deleted and (secret is None or r.extra.get("client_secret") == secret)
        ]
        # mode webhooks_list: the reference answers a bare array, an SDK reads an envelope
        return hooks if m.modes["webhooks_list"] == "array" else {"webhooks": hooks}
    show_deleted = query.get("show_deleted", "").lower() == "true"
    created = _range(query, "created_at")
    updated = _range(query, "updated_at")
    filters: list[tuple[str, set[str]]] = []
    if coll.id_param:
        ids = _ids(query.get(coll.id_param))
        if ids is not None:
            filters.append(("variant_id" if kind == "variants" else "id", ids))
    if kind == "variants":
        for param, field in (("items_ids", "item_id"), ("sku", "sku")):
            values = _ids(query.get(param))
            if values is not None:
                filters.append((field, values))
    if kind == "inventory":
        for param, field in (("store_ids", "store_id"), ("variant_ids", "variant_id")):
            values = _ids(query.get(param))
            if values is not None:
                filters.append((field, values))
    limit = _limit(query) if coll.paginated else None
    recs, keys = m.sorted_desc(kind)
    start = st.page_after(recs, keys, query.get("cursor") or None) if coll.paginated else 0
    render = _renderer(ctx, kind, show_deleted)
    variants = m.collections["variants"]
    out: list[Any] = []
    last: st.Record | None = None
    more = False
    for index in range(start, len(recs)):
        rec = recs[index]
        if rec.deleted and not show_deleted:
            continue
        if kind == "inventory":
            vrec = variants.get(rec.data["variant_id"])
            if vrec is not None and vrec.deleted and not show_deleted:
                continue
        data = rec.data
        if filters and not all(data.get(field) in values for field, values in filters):
            continue
        if created != (None, None) and not _within(rec.created_ms, created):
            continue
        if updated != (None, None) and not _within(rec.updated_ms, updated):
            continue
        if limit is not None and len(out) == limit:
            more = True
            break
        out.append(render(rec))
        last = rec
    body: dict[str, Any] = {list_key: out}
    if more and last is not None:
        body["cursor"] = st.encode_cursor(last.created_ms, last.seq)
    return body


def _within(ms: int, bounds: tuple[int | None, int | None]) -> bool:
    low, high = bounds
    return (low is None or ms >= low) and (high is None or ms <= high)


def get_one(ctx: Context, coll: _Collection, object_id: str) -> dict[str, Any]:
    m = ctx.merchant
    rec = m.collections[coll.key].get(object_id)
    if rec is None or (rec.deleted and not coll.deleted_get_ok):
        raise not_found(object_id)
    if coll.key == "webhooks":
        secret = ctx.state.oauth_secrets.get(ctx.token)
        if secret is not None and rec.extra.get("client_secret") != secret:
            raise not_found(object_id)
    rendered: dict[str, Any] = _renderer(ctx, coll.key, False)(rec)
    return rendered


# -- deletes -----------------------------------------------------------------------------------


def delete(ctx: Context, kind: str, object_id: str) -> dict[str, Any]:
    """Soft delete: set deleted_at; an item takes its variants with it."""
    m = ctx.merchant
    rec = m.collections[kind].get(object_id)
    if rec is None or rec.deleted:
        raise not_found(object_id)
    now = ctx.state.now_ms(ctx.merchant)
    stamp = st.iso_from_ms(now)
    deleted = [object_id]
    rec.data["deleted_at"] = stamp
    _touch(rec, now)
    ctx.wrote = True
    if kind == "items":
        for vid in rec.extra.get("variant_ids", ()):
            vrec = m.collections["variants"].get(vid)
            if vrec is not None and not vrec.deleted:
                vrec.data["deleted_at"] = stamp
                _touch(vrec, now)
                deleted.append(vid)
        _emit_item(ctx, rec)
    elif kind == "variants":
        item = m.collections["items"].get(rec.data["item_id"])
        if item is not None:
            _touch(item, now)
            _emit_item(ctx, item)
    elif kind == "modifiers":
        for option in rec.data.get("modifier_options") or []:
            if option.get("deleted_at") is None:
                option["deleted_at"] = stamp
    return {"deleted_object_ids": deleted}


def _touch(rec: st.Record, now: int) -> None:
    rec.updated_ms = now
    if "updated_at" in rec.data:
        rec.data["updated_at"] = st.iso_from_ms(now)


def _emit_item(ctx: Context, rec: st.Record) -> None:
    ctx.events.append(("items.update", {"items": [copy.deepcopy(render_item(ctx.merchant, rec))]}))


# -- validation helpers ------------------------------------------------------------------------


class _Obj:
    """Typed access to one JSON object of a request body, with Loyverse field paths."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise st.ApiError(400, "INCORRECT_VALUE_TYPE", f"'{path}' must be an object", path)
        self.data = data
        self.path = path

    def field(self, key: str) -> str:
        return f"{self.path}.{key}"

    def has(self, key: str) -> bool:
        return key in self.data

    def _raw(self, key: str, required: bool, nullable: bool) -> Any:
        if key not in self.data:
            if required:
                raise st.ApiError(
                    400, "MISSING_REQUIRED_PARAMETER", f"'{key}' is required", self.field(key)
                )
            return _MISSING
        value = self.data[key]
        if value is None and not nullable:
            if required:
                raise st.ApiError(
                    400, "MISSING_REQUIRED_PARAMETER", f"'{key}' is required", self.field(key)
                )
            raise st.ApiError(400, "INVALID_VALUE", f"'{key}' cannot be null", self.field(key))
        return value

    def string(
        self,
        key: str,
        *,
        required: bool = False,
        nullable: bool = True,
        max_len: int | None = None,
        choices: tuple[str, ...] | None = None,
    ) -> Any:
        value = self._raw(key, required, nullable)
        if value is _MISSING or value is None:
            return value
        if not isinstance(value, str):
            raise st.ApiError(
                400, "INCORRECT_VALUE_TYPE", f"'{key}' must be a string", self.field(key)
            )
        if choices is not None and value not in choices:
            raise st.ApiError(
                400,
                "INVALID_VALUE",
                f"'{key}' must be one of {', '.join(choices)}",
                self.field(key),
            )
        if not value or (max_len is not None and len(value) > max_len):
            raise st.ApiError(
                400,
                "INVALID_VALUE",
                f"'{key}' length must be between 1 and {max_len}",
                self.field(key),
            )
        return value

    def boolean(self, key: str, *, required: bool = False) -> Any:
        value = self._raw(key, required, nullable=False)
        if value is not _MISSING and not isinstance(value, bool):
            raise st.ApiError(
                400, "INCORRECT_VALUE_TYPE", f"'{key}' must be a boolean", self.field(key)
            )
        return value

    def number(
        self,
        key: str,
        *,
        required: bool = False,
        nullable: bool = True,
        minimum: float | None = 0,
        maximum: float | None = None,
    ) -> Any:
        value = self._raw(key, required, nullable)
        if value is _MISSING or value is None:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise st.ApiError(
                400, "INCORRECT_VALUE_TYPE", f"'{key}' must be a number", self.field(key)
            )
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise st.ApiError(400, "INVALID_VALUE", f"'{key}' is out of range", self.field(key))
        return value

    def integer(self, key: str) -> Any:
        value = self._raw(key, False, nullable=False)
        if value is not _MISSING and (isinstance(value, bool) or not isinstance(value, int)):
            raise st.ApiError(
                400, "INCORRECT_VALUE_TYPE", f"'{key}' must be an integer", self.field(key)
            )
        return value

    def str_list(self, key: str) -> Any:
        value = self._raw(key, False, nullable=True)
        if value is _MISSING:
            return value
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise st.ApiError(
                400, "INCORRECT_VALUE_TYPE", f"'{key}' must be an array of strings", self.field(key)
            )
        return list(dict.fromkeys(value))

    def obj_list(self, key: str, *, required: bool = False) -> Any:
        value = self._raw(key, required, nullable=True)
        if value is _MISSING or value is None:
            return value
        if not isinstance(value, list):
            raise st.ApiError(
                400, "INCORRECT_VALUE_TYPE", f"'{key}' must be an array", self.field(key)
            )
        return [_Obj(v, f"{self.path}.{key}[{i}]") for i, v in enumerate(value)]


def _slug(name: str) -> str:
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-") or "item"


def _new_id() -> str:
    return str(uuid.uuid4())


def _whole(ctx: Context, rec: st.Record | None) -> bool:
    """True for an update read as the whole object (mode post_semantics=whole): what the
    body leaves out falls back to the create default instead of keeping its value."""
    return rec is not None and ctx.merchant.modes["post_semantics"] == "whole"


def _existing(ctx: Context, kind: str, obj: _Obj, key: str = "id") -> st.Record | None:
    """The record named by the body's id (None: create); 404 for an unknown/deleted id."""
    object_id = obj.string(key)
    if object_id is _MISSING or object_id is None:
        return None
    rec = ctx.merchant.collections[kind].get(object_id)
    if rec is None or (rec.deleted and kind != "categories"):
        raise not_found(object_id, obj.field(key))
    return rec


def _check_refs(ctx: Context, kind: str, ids: list[str], old: list[str], field: str) -> None:
    """Ids newly referenced by a write must exist (ids already stored are kept as they are)."""
    coll = ctx.merchant.collections[kind]
    for index, ref in enumerate(ids):
        if ref in old:
            continue
        rec = coll.get(ref)
        if rec is None or rec.deleted:
            raise not_found(
                ref,
                f"{field}[{index}]"
                if field.endswith("_ids") or field.endswith("stores")
                else field,
            )


def _store_list(ctx: Context, obj: _Obj, key: str, old: list[str] | None) -> Any:
    ids = obj.str_list(key)
    if ids is _MISSING:
        return ctx.merchant.store_ids() if old is None else _MISSING
    _check_refs(ctx, "stores", ids, old or [], obj.field(key))
    return ids


def post(ctx: Context, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST on a collection: create, or update when the body names an existing id."""
    handler = {
        "categories": post_category,
        "items": post_item,
        "variants": post_variant,
        "modifiers": post_modifier,
        "taxes": post_tax,
        "inventory": post_inventory,
        "webhooks": post_webhook,
    }[kind]
    result = handler(ctx, _Obj(body, "object"))
    ctx.wrote = True
    return result


def _commit(
    ctx: Context,
    kind: str,
    rec: st.Record | None,
    data: dict[str, Any],
    now: int,
    extra: dict[str, Any] | None = None,
) -> tuple[st.Record, bool]:
    """Store `data` (create when rec is None); bump updated_at only on a real change."""
    m = ctx.merchant
    if rec is None:
        key = data["variant_id"] if kind == "variants" else data["id"]
        return m.add(kind, key, data, created_ms=now, extra=extra), True
    if data == rec.data:
        return rec, False
    rec.data = data
    _touch(rec, now)
    return rec, True


def _new_base(now: int) -> dict[str, Any]:
    stamp = st.iso_from_ms(now)
    return {"created_at": stamp, "updated_at": stamp, "deleted_at": None}


# -- categories, taxes, modifiers --------------------------------------------------------------


def post_category(ctx: Context, obj: _Obj) -> dict[str, Any]:
    rec = _existing(ctx, "categories", obj)
    creating = rec is None
    whole = _whole(ctx, rec)
    name = obj.string("name", required=creating or whole, nullable=False, max_len=64)
    color = obj.string("color", nullable=False, choices=CATEGORY_COLORS)
    now = ctx.state.now_ms(ctx.merchant)
    if whole and color is _MISSING:
        color = "GREY"
    if creating:
        data = {
            "id": _new_id(),
            "name": name,
            "color": "GREY" if color is _MISSING else color,
            "created_at": st.iso_from_ms(now),
            "deleted_at": None,
        }
    else:
        assert rec is not None
        data = dict(rec.data)
        for key, value in (("name", name), ("color", color)):
            if value is not _MISSING:
                data[key] = value
    rec, _ = _commit(ctx, "categories", rec, data, now)
    return rec.data


def post_tax(ctx: Context, obj: _Obj) -> dict[str, Any]:
    rec = _existing(ctx, "taxes", obj)
    creating = rec is None
    whole = _whole(ctx, rec)
    name = obj.string("name", required=creating or whole, nullable=False, max_len=64)
    tax_type = obj.string("type", required=creating or whole, nullable=False, choices=TAX_TYPES)
    rate = obj.number("rate", required=creating or whole, nullable=False, minimum=0, maximum=100)
    stores = _store_list(ctx, obj, "stores", None if creating else rec.data.get("stores"))  # type: ignore[union-attr]
    if whole and stores is _MISSING:
        stores = ctx.merchant.store_ids()
    now = ctx.state.now_ms(ctx.merchant)
    if creating:
        data = {
            "id": _new_id(),
            "name": name,
            "type": tax_type,
            "rate": rate,
            "stores": stores,
            **_new_base(now),
        }
    else:
        assert rec is not None
        data = dict(rec.data)
        for key, value in (("name", name), ("type", tax_type), ("rate", rate), ("stores", stores)):
            if value is not _MISSING:
                data[key] = value
    rec, _ = _commit(ctx, "taxes", rec, data, now)
    return rec.data


def post_modifier(ctx: Context, obj: _Obj) -> dict[str, Any]:
    rec = _existing(ctx, "modifiers", obj)
    creating = rec is None
    whole = _whole(ctx, rec)
    name = obj.string("name", required=creating or whole, nullable=False, max_len=40)
    position = obj.integer("position")
    stores = _store_list(ctx, obj, "stores", None if creating else rec.data.get("stores"))  # type: ignore[union-attr]
    options = obj.obj_list("modifier_options", required=creating or whole)
    if whole:
        position = 0 if position is _MISSING else position
        stores = ctx.merchant.store_ids() if stores is _MISSING else stores
    if options is not _MISSING and not options:
        raise st.ApiError(
            400,
            "INVALID_VALUE",
            "'modifier_options' must have at least one option",
            obj.field("modifier_options"),
        )
    now = ctx.state.now_ms(ctx.merchant)
    stamp = st.iso_from_ms(now)
    old_options = {} if creating else {o["id"]: o for o in rec.data.get("modifier_options") or []}  # type: ignore[union-attr]
    new_options: Any = _MISSING
    if options is not _MISSING:
        new_options = []
        kept: set[str] = set()
        for index, opt in enumerate(options):
            opt_id = opt.string("id")
            old = None
            if opt_id is not _MISSING and opt_id is not None:
                old = old_options.get(opt_id)
                if old is None or old.get("deleted_at") is not None:
                    raise not_found(opt_id, opt.field("id"))
                kept.add(opt_id)
            opt_name = opt.string("name", required=old is None or whole, nullable=False, max_len=40)
            price = opt.number("price", nullable=False, minimum=None)
            opt_pos = opt.integer("position")
            if old is not None and whole:  # omitted option fields fall back to the defaults
                price = 0 if price is _MISSING else price
                opt_pos = index if opt_pos is _MISSING else opt_pos
            if old is None:
                entry = {
                    "id": _new_id(),
                    "name": opt_name,
                    "price": st.money(
                        0 if price is _MISSING else price, ctx.merchant.decimal_places
                    ),
                    "position": index if opt_pos is _MISSING else opt_pos,
                    **_new_base(now),
                }
            else:
                entry = dict(old)
                if opt_name is not _MISSING:
                    entry["name"] = opt_name
                if price is not _MISSING:
                    entry["price"] = st.money(price, ctx.merchant.decimal_places)
                if opt_pos is not _MISSING:
                    entry["position"] = opt_pos
                if entry != old:
                    entry["updated_at"] = stamp
            new_options.append(entry)
        for opt_id, old in old_options.items():
            if opt_id not in kept:
                gone = dict(old)
                if gone.get("deleted_at") is None:
                    gone["deleted_at"] = stamp
                    gone["updated_at"] = stamp
                new_options.append(gone)
    if creating:
        data = {
            "id": _new_id(),
            "name": name,
            "position": 0 if position is _MISSING else position,
            "stores": stores,
            "modifier_options": new_options,
            **_new_base(now),
        }
    else:
        assert rec is not None
        data = dict(rec.data)
        for key, value in (
            ("name", name),
            ("position", position),
            ("stores", stores),
            ("modifier_options", new_options),
        ):
            if value is not _MISSING:
                data[key] = value
    rec, _ = _commit(ctx, "modifiers", rec, data, now)
    return _render_modifier(rec, False)


# -- items and variants ------------------------------------------------------------------------


def _default_entry(store_id: str, pricing_type: str, price: Any) -> dict[str, Any]:
    return {
        "store_id": store_id,
        "pricing_type": pricing_type,
        "price": price,
        "available_for_sale": True,
        "optimal_stock": None,
        "low_stock": None,
    }


def _build_variant(
    ctx: Context,
    obj: _Obj,
    old: st.Record | None,
    item_id: str,
    option_names: list[Any],
    *,
    via_items: bool,
    now: int,
) -> dict[str, Any]:
    """Validate one variant body and return the variant's new data (nothing is stored yet)."""
    m = ctx.merchant
    dp = m.decimal_places
    creating = old is None
    whole = _whole(ctx, old)
    sku = obj.string("sku", nullable=False, max_len=40)
    ref = obj.string("reference_variant_id", max_len=128)
    barcode = obj.string("barcode", max_len=128)
    values = [obj.string(f"option{n}_value", max_len=20) for n in (1, 2, 3)]
    cost = obj.number("cost")  # null in a recorded payload (mwingi): restating it must pass
    purchase_cost = obj.number("purchase_cost")
    dpt = obj.string("default_pricing_type", nullable=False, choices=PRICING_TYPES)
    dprice = obj.number("default_price")
    entries = obj.obj_list("stores")

    if creating or whole:
        data: dict[str, Any] = {
            "variant_id": _new_id(), "item_id": item_id, "sku": None, "reference_variant_id": None,
            "option1_value": None, "option2_value": None, "option3_value": None, "barcode": None,
            "cost": 0, "purchase_cost": None, "default_pricing_type": "VARIABLE", "default_price": None,
            "stores": [], **_new_base(now),
        }  # fmt: skip
        if whole:
            assert old is not None
            data.update({k: old.data[k] for k in _VARIANT_READ_ONLY if k in old.data})
    else:
        assert old is not None
        data = dict(old.data)
    for key, value in (
        ("reference_variant_id", ref),
        ("barcode", barcode),
        ("purchase_cost", purchase_cost),
    ):
        if value is not _MISSING:
            data[key] = st.money(value, dp) if key == "purchase_cost" else value
    if sku is not _MISSING:
        data["sku"] = sku
    elif creating or whole:  # whole: an omitted SKU is a new one, as on create
        data["sku"] = str(m.next_sku)
        m.next_sku += 1
    if cost is not _MISSING:
        data["cost"] = st.money(cost, dp)
    for n, value in enumerate(values, start=1):
        key = f"option{n}_value"
        if value is not _MISSING:
            data[key] = value
        if option_names[n - 1] is None:
            if via_items:
                data[key] = None  # the item has no such option: nothing to keep
            elif value not in (_MISSING, None):
                raise st.ApiError(
                    400,
                    "INVALID_VALUE",
                    "You cannot add or delete options for an existing item with variants.",
                    obj.field(key),
                )
        elif data[key] is None:
            raise st.ApiError(
                400,
                "MISSING_REQUIRED_PARAMETER",
                f"'{key}' is required because the item has option{n}_name",
                obj.field(key),
            )
    old_default = data["default_price"] if old is None else old.data.get("default_price")
    if dpt is not _MISSING:
        data["default_pricing_type"] = dpt
    if dprice is not _MISSING:
        data["default_price"] = st.money(dprice, dp)
    if data["default_pricing_type"] == "VARIABLE":
        data["default_price"] = None
    data["stores"] = _build_store_entries(ctx, data, old, entries, obj, old_default, whole=whole)
    return data


def _build_store_entries(
    ctx: Context,
    data: dict[str, Any],
    old: st.Record | None,
    entries: Any,
    obj: _Obj,
    old_default: Any,
    *,
    whole: bool = False,
) -> list[dict[str, Any]]:
    m = ctx.merchant
    dp = m.decimal_places
    dpt, dprice = data["default_pricing_type"], data["default_price"]
    old_entries = {e["store_id"]: e for e in (old.data["stores"] if old is not None else [])}
    given: dict[str, dict[str, Any]] = {}
    if entries is not _MISSING and entries is not None:
        known = set(m.store_ids()) | set(old_entries)
        for entry in entries:
            store_id = entry.string("store_id", required=True, nullable=False)
            if store_id not in known:
                raise not_found(store_id, entry.field("store_id"))
            fields: dict[str, Any] = {}
            for key, value in (
                (
                    "pricing_type",
                    entry.string("pricing_type", nullable=False, choices=PRICING_TYPES),
                ),
                ("price", entry.number("price")),
                ("available_for_sale", entry.boolean("available_for_sale")),
                ("optimal_stock", entry.number("optimal_stock", maximum=MAX_STOCK)),
                ("low_stock", entry.number("low_stock", maximum=MAX_STOCK)),
            ):
                if value is not _MISSING:
                    fields[key] = st.money(value, dp) if key == "price" else value
            given[store_id] = fields
    # "replace" applies only when the body carries stores[]; an omitted list keeps the stored one.
    # The whole reading replaces always: an omitted list is every store at the defaults.
    replace = (
        old is None
        or whole
        or (m.modes["stores_merge"] == "replace" and entries not in (_MISSING, None))
    )
    moves = old is not None and m.modes["default_price_moves_stores"] and old_default != dprice
    store_ids = m.store_ids()
    order = list(old_entries) + [s for s in store_ids if s not in old_entries]
    order += [s for s in given if s not in order]
    result = []
    for store_id in order:
        base = old_entries.get(store_id)
        if base is None or (replace and (store_id in given or store_id in store_ids)):
            base = _default_entry(store_id, dpt, dprice)
        entry = {key: base.get(key) for key in STORE_ENTRY_KEYS}
        if store_id in given:
            entry.update(given[store_id])
        elif moves and entry["pricing_type"] == "FIXED" and entry["price"] == old_default:
            entry["price"] = dprice
        result.append(entry)
    return result


def _price_changes(ctx: Context, old: dict[str, Any] | None, new: dict[str, Any], now: int) -> None:
    before = {e["store_id"]: e.get("price") for e in (old["stores"] if old else [])}
    for entry in new["stores"]:
        old_price = before.get(entry["store_id"])
        if entry.get("price") != old_price:
            ctx.state.record_price_change(
                ctx.merchant.id,
                new["variant_id"],
                entry["store_id"],
                old_price,
                entry.get("price"),
                now,
            )


def post_item(ctx: Context, obj: _Obj) -> dict[str, Any]:
    m = ctx.merchant
    rec = _existing(ctx, "items", obj)
    creating = rec is None
    whole = _whole(ctx, rec)
    old = {} if creating else rec.data  # type: ignore[union-attr]
    fields: dict[str, Any] = {
        # `handle` is read-only in the reference: the whole reading ignores a write to it
        "handle": _MISSING if whole else obj.string("handle", nullable=False, max_len=255),
        "reference_id": obj.string("reference_id", max_len=128),
        "item_name": obj.string(
            "item_name", required=creating or whole, nullable=False, max_len=64
        ),
        "description": obj.string("description", max_len=32768),
        "track_stock": obj.boolean("track_stock"),
        "sold_by_weight": obj.boolean("sold_by_weight"),
        "is_composite": obj.boolean("is_composite"),
        "use_production": obj.boolean("use_production"),
        "category_id": obj.string("category_id"),
        "components": obj.obj_list("components"),
        "primary_supplier_id": obj.string("primary_supplier_id"),
        "tax_ids": obj.str_list("tax_ids"),
        "modifier_ids": obj.str_list("modifier_ids"),
        "form": obj.string("form", nullable=False, choices=ITEM_FORMS),
        "color": obj.string("color", nullable=False, choices=ITEM_COLORS),
        "option1_name": obj.string("option1_name", max_len=64),
        "option2_name": obj.string("option2_name", max_len=64),
        "option3_name": obj.string("option3_name", max_len=64),
    }
    # `modifiers_ids` (the docs' spelling) is accepted and silently ignored, as live.
    if fields["components"] is not _MISSING:
        comps = []
        for comp in fields["components"] or []:
            comps.append(
                {
                    "variant_id": comp.string("variant_id", required=True, nullable=False),
                    "quantity": comp.number("quantity", required=True, nullable=False),
                }
            )
        fields["components"] = comps
    category = fields["category_id"]
    if category not in (_MISSING, None) and category != old.get("category_id"):
        _check_refs(ctx, "categories", [category], [], obj.field("category_id"))
    if fields["tax_ids"] is not _MISSING:
        _check_refs(ctx, "taxes", fields["tax_ids"], old.get("tax_ids") or [], obj.field("tax_ids"))
    if fields["modifier_ids"] is not _MISSING:
        _check_refs(
            ctx,
            "modifiers",
            fields["modifier_ids"],
            old.get("modifier_ids") or [],
            obj.field("modifier_ids"),
        )
        mods = m.collections["modifiers"]
        # A modifier available in no store does not attach: Loyverse drops it silently.
        fields["modifier_ids"] = [
            mid for mid in fields["modifier_ids"] if mid not in mods or mods[mid].data.get("stores")
        ]
    variants = obj.obj_list("variants")
    if variants is _MISSING:
        variants = None
    if not creating and not variants:
        raise st.ApiError(
            400, "INVALID_VALUE", "Could not update variants to []", obj.field("variants")
        )

    now = ctx.state.now_ms(ctx.merchant)
    if creating or whole:
        item_id = _new_id() if creating else rec.data["id"]  # type: ignore[union-attr]
        data: dict[str, Any] = {
            "id": item_id, "handle": _slug(fields["item_name"]), "reference_id": None,
            "item_name": fields["item_name"], "description": None, "track_stock": False,
            "sold_by_weight": False, "is_composite": False, "use_production": False,
            "category_id": None, "components": [], "primary_supplier_id": None, "tax_ids": [],
            "modifier_ids": [], "form": "SQUARE", "color": "GREY", "image_url": None,
            "option1_name": None, "option2_name": None, "option3_name": None,
            **_new_base(now), "variants": None,
        }  # fmt: skip
        if whole:  # the create defaults, but what only the server sets stays
            data.update({k: old[k] for k in _ITEM_READ_ONLY if k in old})
    else:
        assert rec is not None
        item_id = rec.data["id"]
        data = dict(rec.data)
    for key, value in fields.items():
        if value is not _MISSING:
            data[key] = value
    if list(data) != [k for k in ITEM_KEYS if k in data] and set(data) <= set(ITEM_KEYS):
        data = {k: data[k] for k in ITEM_KEYS if k in data}
    option_names = [data["option1_name"], data["option2_name"], data["option3_name"]]

    # Validate every variant before storing anything.
    old_vids = [] if creating else list(rec.extra.get("variant_ids", []))  # type: ignore[union-attr]
    built: list[tuple[st.Record | None, dict[str, Any]]] = []
    seen: set[str] = set()
    entries = variants or [_Obj({}, "object.variants[0]")]
    if not any(option_names) and len(entries) > 1:
        raise st.ApiError(
            400,
            "INVALID_VALUE",
            "An item without options can have only one variant",
            obj.field("variants"),
        )
    for entry in entries:
        vid = entry.string("variant_id")
        vrec = None
        if vid not in (_MISSING, None):
            vrec = m.collections["variants"].get(vid)
            if vrec is None or vrec.deleted or vid not in old_vids or vid in seen:
                raise not_found(vid, entry.field("variant_id"))
            seen.add(vid)
        built.append(
            (vrec, _build_variant(ctx, entry, vrec, item_id, option_names, via_items=True, now=now))
        )

    changed = creating
    vids: list[str] = []
    for vrec, vdata in built:
        before = None if vrec is None else vrec.data
        _price_changes(ctx, before, vdata, now)
        _, did = _commit(ctx, "variants", vrec, vdata, now)
        changed = changed or did
        vids.append(vdata["variant_id"])
    stamp = st.iso_from_ms(now)
    for vid in old_vids:
        if vid not in seen:  # not restated: the variant is removed from the item
            vrec = m.collections["variants"].get(vid)
            if vrec is not None and not vrec.deleted:
                vrec.data = {**vrec.data, "deleted_at": stamp}
                _touch(vrec, now)
                changed = True
            vids.append(vid)
    if creating:
        rec = m.add("items", item_id, data, created_ms=now, extra={"variant_ids": vids})
    else:
        assert rec is not None
        rec.extra["variant_ids"] = vids
        if data != rec.data or changed:
            rec.data = data
            _touch(rec, now)
            changed = True
    if changed:
        _emit_item(ctx, rec)
    return render_item(m, rec)


def post_variant(ctx: Context, obj: _Obj) -> dict[str, Any]:
    m = ctx.merchant
    vrec = _existing(ctx, "variants", obj, "variant_id")
    if vrec is None:
        item_id = obj.string("item_id", required=True, nullable=False)
        item = m.collections["items"].get(item_id)
        if item is None or item.deleted:
            raise not_found(item_id, obj.field("item_id"))
        if not any(item.data.get(f"option{n}_name") for n in (1, 2, 3)):
            raise st.ApiError(
                400,
                "INVALID_VALUE",
                f"Could not add variant to item with id '{item_id}' because it has no options.",
                obj.field("item_id"),
            )
    else:
        item = m.collections["items"][vrec.data["item_id"]]
    option_names = [item.data.get(f"option{n}_name") for n in (1, 2, 3)]
    now = ctx.state.now_ms(ctx.merchant)
    data = _build_variant(ctx, obj, vrec, item.data["id"], option_names, via_items=False, now=now)
    _price_changes(ctx, None if vrec is None else vrec.data, data, now)
    vrec, changed = _commit(ctx, "variants", vrec, data, now)
    vids = item.extra.setdefault("variant_ids", [])
    if data["variant_id"] not in vids:
        vids.append(data["variant_id"])
    if changed:
        _touch(item, now)  # an item's updated_at follows its variants
        _emit_item(ctx, item)
    return vrec.data


# -- inventory and webhooks --------------------------------------------------------------------


def post_inventory(ctx: Context, obj: _Obj) -> dict[str, Any]:
    m = ctx.merchant
    levels = obj.obj_list("inventory_levels", required=True)
    if not levels:
        raise st.ApiError(
            400,
            "MISSING_REQUIRED_PARAMETER",
            "'inventory_levels' is required",
            obj.field("inventory_levels"),
        )
    parsed = []
    for level in levels:
        vid = level.string("variant_id", required=True, nullable=False)
        vrec = m.collections["variants"].get(vid)
        if vrec is None or vrec.deleted:
            raise not_found(vid, level.field("variant_id"))
        sid = level.string("store_id", required=True, nullable=False)
        if sid not in m.collections["stores"]:
            raise not_found(sid, level.field("store_id"))
        stock = level.number(
            "stock_after", required=True, nullable=False, minimum=-MAX_STOCK, maximum=MAX_STOCK
        )
        parsed.append((vid, sid, stock))
    now = ctx.state.now_ms(ctx.merchant)
    stamp = st.iso_from_ms(now)
    out = []
    for vid, sid, stock in parsed:
        value = int(stock) if float(stock).is_integer() else stock
        data = {"variant_id": vid, "store_id": sid, "in_stock": value, "updated_at": stamp}
        rec = m.collections["inventory"].get((vid, sid))
        if rec is None:
            rec = m.add("inventory", (vid, sid), data, created_ms=now)
        else:
            rec.data = data
            rec.updated_ms = now
        out.append(rec.data)
    ctx.events.append(("inventory_levels.update", {"inventory_levels": copy.deepcopy(out)}))
    return {"inventory_levels": out}


def post_webhook(ctx: Context, obj: _Obj) -> dict[str, Any]:
    m = ctx.merchant
    rec = _existing(ctx, "webhooks", obj)
    creating = rec is None
    whole = _whole(ctx, rec)
    url = obj.string("url", required=creating or whole, nullable=False, max_len=2048)
    hook_type = obj.string("type", required=creating or whole, nullable=False)
    if hook_type is not _MISSING and hook_type not in WEBHOOK_TYPES:
        raise st.ApiError(
            400, "INVALID_VALUE", f"Unsupported webhook type '{hook_type}'", obj.field("type")
        )
    status = obj.string("status", required=True, nullable=False, choices=WEBHOOK_STATUSES)
    if url is not _MISSING and not re.match(r"^https?://", url):
        raise st.ApiError(400, "INVALID_VALUE", "'url' must be an http(s) URL", obj.field("url"))
    if url is not _MISSING and m.modes["webhook_https_only"] and not url.startswith("https://"):
        # mode webhook_https_only: the reference delivers to HTTPS URLs only
        raise st.ApiError(400, "INVALID_VALUE", "'url' must be an https URL", obj.field("url"))
    now = ctx.state.now_ms(ctx.merchant)
    if creating:
        data = {
            "id": _new_id(),
            "merchant_id": m.id,
            "url": url,
            "type": hook_type,
            "status": status,
            **_new_base(now),
        }
    else:
        assert rec is not None
        data = dict(rec.data)
        for key, value in (("url", url), ("type", hook_type), ("status", status)):
            if value is not _MISSING:
                data[key] = value
    for other in m.collections["webhooks"].values():
        if (
            other is not rec
            and not other.deleted
            and (other.data["type"], other.data["url"]) == (data["type"], data["url"])
        ):
            raise st.ApiError(
                400,
                "INVALID_VALUE",
                "A webhook with this type and url already exists",
                obj.field("url"),
            )
    extra = {"client_secret": ctx.state.oauth_secrets.get(ctx.token)}
    rec, _ = _commit(ctx, "webhooks", rec, data, now, extra=extra)
    return rec.data
