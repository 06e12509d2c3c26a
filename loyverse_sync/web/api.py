"""The plan's JSON endpoints under /api/integrations/loyverse/ (docs/api.md).

Each route: authenticate the key, check the restaurant is the key's, validate the body
(pydantic; unknown fields refused), call one SQL function or view, return JSON. The SQL
functions validate too and name the field; their errors become 4xx here.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Literal

import fastapi
import fastapi.security
import pydantic
from pydantic import AliasChoices, ConfigDict, Field

from loyverse_sync import apikeys
from loyverse_sync import db as lvdb  # `db` is this module's dependency below
from loyverse_sync.importer import runs, snapshot
from loyverse_sync.loyverse import errors as lv_errors
from loyverse_sync.web import base

PREFIX = "/api/integrations/loyverse"


class ErrorDetail(pydantic.BaseModel):
    field: str | None = Field(description="The request field at fault (or authorization, restaurant_id, ...).")
    message: str
    allowed: list[Any] | None = Field(default=None, description="The allowed values, when there is a list.")
    problems: list[dict[str, Any]] | None = Field(default=None, description="Every validation problem found.")


class ErrorResponse(pydantic.BaseModel):
    error: ErrorDetail


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in ((401, "No, unknown or revoked API key"), (403, "The key may not reach that restaurant"),
                         (404, "Not found (or another restaurant's)"), (409, "The state forbids it"),
                         (422, "Invalid input: the field and its allowed values; nothing changed"))
}
router = fastapi.APIRouter(prefix=PREFIX, tags=["loyverse"], responses=_ERRORS)

BIGINT = 2**63 - 1
INT = 2**31 - 1


def _no_nul(value: Any, where: str = "body") -> None:
    """PostgreSQL text cannot hold NUL: refuse it here, naming the field."""
    if isinstance(value, str) and "\x00" in value:
        raise base.ApiError(422, where, "text must not contain NUL characters")
    if isinstance(value, dict):
        for k, v in value.items():
            _no_nul(k, where)
            _no_nul(v, f"{where}.{k}" if where != "body" else str(k))
    if isinstance(value, list):
        for v in value:
            _no_nul(v, where)


class Body(pydantic.BaseModel):
    model_config = ConfigDict(extra="forbid")

    @pydantic.model_validator(mode="before")
    @classmethod
    def _text_ok(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for k, v in data.items():
                if isinstance(k, str) and "\x00" in k:
                    raise ValueError("field names must not contain NUL characters")
                if isinstance(v, str | list | dict) and "\x00" in json.dumps(v):
                    raise ValueError(f"{k}: text must not contain NUL characters")
        return data


RestaurantField = Annotated[
    uuid.UUID | None,
    Field(default=None, validation_alias=AliasChoices("restaurant_id", "restaurantId"),
          description="The restaurant (default: the key's restaurant; required with an admin key)."),
]


# -- access ------------------------------------------------------------------------------------


def db(request: fastapi.Request) -> base.Database:
    database: base.Database = request.app.state.db
    return database


_bearer = fastapi.security.HTTPBearer(auto_error=False, description="An API key from `loyverse-sync apikey create`.")


def api_key(
    request: fastapi.Request,
    credentials: Annotated[fastapi.security.HTTPAuthorizationCredentials | None, fastapi.Depends(_bearer)],
) -> apikeys.Key:
    """The live key of `Authorization: Bearer <key>`; 401 without one."""
    token = credentials.credentials if credentials is not None else ""
    if credentials is None or credentials.scheme.lower() != "bearer" or not token.strip():
        raise base.ApiError(401, "authorization", "send Authorization: Bearer <API key>")
    with db(request).transaction(None) as conn:
        key = apikeys.lookup(conn, token.strip())
    if key is None:
        raise base.ApiError(401, "authorization", "unknown or revoked API key")
    return key


Key = Annotated[apikeys.Key, fastapi.Depends(api_key)]
Db = Annotated[base.Database, fastapi.Depends(db)]


def actor(key: apikeys.Key) -> str:
    return f"api-key:{key.name}"


def restaurant_of(database: base.Database, key: apikeys.Key, restaurant_id: uuid.UUID | str | None) -> str:
    """The restaurant a request is about: the key's by default; another one is refused."""
    if restaurant_id is None:
        if key.restaurant_id is None:
            raise base.ApiError(422, "restaurant_id", "an admin key must name the restaurant")
        return key.restaurant_id
    rid = str(restaurant_id)
    if not key.may_reach(rid):
        raise base.ApiError(403, "restaurant_id", "this API key may not reach that restaurant")
    if key.is_admin and not database.value(None, "restaurant_exists", {"restaurant_id": rid}):
        raise base.ApiError(404, "restaurant_id", f"no restaurant {rid}")
    return rid


def rows_of(database: base.Database, key: apikeys.Key, restaurant_id: uuid.UUID | None, query: str,
            **params: Any) -> list[dict[str, Any]]:
    """The rows of the read ``query`` about the restaurant of the request (``restaurant_of``)."""
    return database.all(None, query, {"restaurant_id": restaurant_of(database, key, restaurant_id), **params})


def json_response(value: Any, status: int = 200) -> fastapi.responses.JSONResponse:
    return fastapi.responses.JSONResponse(base.jsonable(value), status_code=status)


# -- menu import -------------------------------------------------------------------------------


def _tree(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Plan rows (category, item, variant) as a tree with prices, the names Loyverse uses."""
    categories: dict[str, dict[str, Any]] = {}
    for r in rows:
        cat = categories.setdefault(r["category"] or "", {"name": r["category"], "items": {}})
        item = cat["items"].setdefault(r["item_id"], {"item_id": r["item_id"], "name": r["item_name"], "variants": []})
        item["variants"].append({k: r[k] for k in ("variant_id", "name", "sku", "price", "loyverse_price", "is_active",
                                                    "decision", "decision_reason", "match_rule", "matched_name")})
    return [{"name": c["name"], "items": list(c["items"].values())} for c in categories.values()]


def preview_report(connector: lvdb.Connector, restaurant_id: str, options: runs.Options, *, refresh: bool = False,
                   max_age: float = 600.0) -> dict[str, Any]:
    """Fetch (or reuse) the menu and plan it without writing: the API's and the console's preview."""
    try:
        snap = snapshot.get_or_fetch(connector, restaurant_id, max_age=max_age, refresh=refresh)
        report = runs.preview(connector, restaurant_id, snap.id, options)
    except snapshot.NotLinked as exc:
        raise base.ApiError(409, "restaurant_id", str(exc)) from None
    except runs.ImportProblem as exc:
        raise base.ApiError(409 if not exc.usage else 422, "restaurant_id", str(exc)) from None
    except lv_errors.LoyverseError as exc:
        raise base.ApiError(502, None, f"Loyverse: {exc}") from None
    return {
        "restaurant_id": restaurant_id,
        "snapshot": {"id": snap.id, "fetched_at": snap.fetched_at, "counts": snap.counts, "reused": snap.reused},
        "summary": report["summary"],
        "categories": _tree(report["rows"]),
        "conflicts": report["conflicts"],
        "undecided": report["undecided"],
        "issues": report["issues"],
    }


@router.get("/menu/preview", summary="Fetch the Loyverse menu and show what an import would do")
def menu_preview(
    key: Key,
    database: Db,
    restaurant_id: Annotated[uuid.UUID | None, fastapi.Query()] = None,
    category: Annotated[list[str] | None, fastapi.Query(max_length=500, description="Only these categories (id or name).")] = None,
    item: Annotated[list[str] | None, fastapi.Query(max_length=5000, description="Only these items (id or name).")] = None,
    exclude: Annotated[list[str] | None, fastapi.Query(max_length=5000)] = None,
    conflict_resolution: Literal["skip", "update", "duplicate", "manual"] = "skip",
    refresh: bool = False,
    max_age: Annotated[float, fastapi.Query(ge=0, le=86400)] = 600.0,
) -> fastapi.responses.JSONResponse:
    """The category -> item -> variant tree with prices, conflicts with our products, and the
    fidelity report. Writes nothing but a snapshot of the fetched menu."""
    for name, values in (("category", category), ("item", item), ("exclude", exclude)):
        _no_nul(values or [], name)
    rid = restaurant_of(database, key, restaurant_id)
    options = runs.Options(conflict=conflict_resolution, categories=category or [], items=item or [],
                           exclude=exclude or [])
    return json_response(preview_report(database.connector.acting_as(actor(key)), rid, options,
                                        refresh=refresh, max_age=max_age))


class ImportRequest(Body):
    """The plan's import request (its camelCase names are accepted too)."""

    restaurant_id: RestaurantField = None
    selected_categories: list[Annotated[str, Field(max_length=500)]] = Field(
        default_factory=list, max_length=5000, validation_alias=AliasChoices("selected_categories", "selectedCategories"),
        description="Category ids or names (empty: all).")
    selected_items: list[Annotated[str, Field(max_length=500)]] = Field(
        default_factory=list, max_length=50000, validation_alias=AliasChoices("selected_items", "selectedItems"),
        description="Item ids or names (empty: all of the selected categories).")
    exclude: list[Annotated[str, Field(max_length=500)]] = Field(default_factory=list, max_length=50000)
    conflict_resolution: Literal["skip", "update", "duplicate", "manual"] = Field(
        default="skip", validation_alias=AliasChoices("conflict_resolution", "conflictResolution"),
        description="For variants matching one of our products by SKU or name; per-item decisions win.")
    decisions: dict[Annotated[str, Field(max_length=500)], Literal["skip", "update", "duplicate"]] = Field(
        default_factory=dict, max_length=50000, description="Per-item decisions: variant id -> skip|update|duplicate.")
    field_mappings: dict[Annotated[str, Field(max_length=100)], Annotated[str, Field(max_length=100)]] = Field(
        default_factory=dict, max_length=50, validation_alias=AliasChoices("field_mappings", "fieldMappings"),
        description="Loyverse field -> products column (text columns only).")
    missing: Literal["deactivate", "delete", "keep"] = "deactivate"
    unknown_category: Literal["fallback", "reject"] = "fallback"
    batch_size: int | None = Field(
        default=1000, ge=1, le=1_000_000,
        description="Commit every N variants (live progress, resumable); null: one transaction.")
    refresh: bool = Field(default=False, description="Fetch the menu again even if a recent snapshot exists.")
    max_age: float = Field(default=600.0, ge=0, le=86400, description="Reuse a snapshot younger than this (s).")

    def to_sql(self) -> dict[str, Any]:
        return {
            "conflict": self.conflict_resolution, "decisions": self.decisions, "map": self.field_mappings,
            "categories": self.selected_categories, "items": self.selected_items, "exclude": self.exclude,
            "missing": self.missing, "unknown_category": self.unknown_category, "batch_size": self.batch_size,
            "refresh": self.refresh, "max_age": self.max_age,
        }


@router.post("/menu/import", status_code=202, summary="Start an import (a worker job); returns its run id")
def menu_import(body: ImportRequest, key: Key, database: Db) -> fastapi.responses.JSONResponse:
    """Validated, recorded as a PENDING run and deferred to the worker in one transaction
    (loyverse.request_menu_import); follow it with GET menu/status?run_id=."""
    rid = restaurant_of(database, key, body.restaurant_id)
    run_id = database.value(actor(key), "request_import", {"restaurant_id": rid, "request": json.dumps(body.to_sql())})
    return json_response({"run_id": run_id, "status": "PENDING", "restaurant_id": rid,
                          "status_url": f"{PREFIX}/menu/status?run_id={run_id}"}, 202)


def visible_run(database: base.Database, key: apikeys.Key, run_id: int) -> dict[str, Any]:
    """A run of a restaurant the key reaches (another restaurant's run is "not found")."""
    row = database.one(None, "import_run", {"run_id": run_id})
    if row is None or not key.may_reach(str(row["restaurant_id"])):
        raise base.ApiError(404, "run_id", f"no import run {run_id}")
    if row["status"] == "RUNNING" and not row["locked"] and row["snapshot_id"] is not None:
        row["status"] = "INTERRUPTED"
    row.pop("locked", None)
    return row


RunId = Annotated[int, fastapi.Query(ge=1, le=BIGINT)]


@router.get("/menu/status", summary="Progress of an import run, then its per-item results")
def menu_status(
    key: Key,
    database: Db,
    run_id: RunId,
    errors_only: bool = False,
    limit: Annotated[int, fastapi.Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, fastapi.Query(ge=0, le=INT)] = 0,
) -> fastapi.responses.JSONResponse:
    """PENDING (queued or fetching the menu), RUNNING with items_done of items_total, then
    SUCCESS / PARTIAL / FAILED with counts, the fidelity report and a page of per-item outcomes."""
    run = visible_run(database, key, run_id)
    out: dict[str, Any] = {"run": run}
    if run["status"] in ("SUCCESS", "PARTIAL", "FAILED", "UNDONE"):
        out["issues"] = database.all(None, "import_issues", {"run_id": run_id})
        out["items"] = database.all(None, "import_items", {"run_id": run_id, "errors_only": errors_only,
                                                           "limit": limit, "offset": offset})
    return json_response(out)


@router.get("/menu/runs", summary="Recent import runs of a restaurant")
def menu_runs(key: Key, database: Db, restaurant_id: uuid.UUID | None = None,
              limit: Annotated[int, fastapi.Query(ge=1, le=200)] = 20) -> fastapi.responses.JSONResponse:
    return json_response({"runs": rows_of(database, key, restaurant_id, "import_runs", limit=limit)})


class UndoRequest(Body):
    run_id: int = Field(ge=1, le=BIGINT)
    force: bool = Field(default=False, description="Undo even rows changed since the run.")


@router.post("/menu/undo", summary="Undo an import run")
def menu_undo(body: UndoRequest, key: Key, database: Db) -> fastapi.responses.JSONResponse:
    """Restore every row the run touched and remove what it created. Rows changed since the
    run are listed (409) unless `force`."""
    visible_run(database, key, body.run_id)
    try:
        result = runs.undo(database.connector.acting_as(actor(key)), body.run_id, force=body.force)
    except runs.ImportProblem as exc:
        raise base.ApiError(422 if exc.usage else 409, "run_id", str(exc)) from None
    return json_response({"run_id": body.run_id, **result})


# -- price sync --------------------------------------------------------------------------------


@router.get("/sync/status", summary="Queue and success figures")
def sync_status(key: Key, database: Db, restaurant_id: uuid.UUID | None = None) -> fastapi.responses.JSONResponse:
    """The price_sync_status view: pending, due, processing, failed, dead, conflicts, oldest
    pending age, last success, synced and success rate in the last hour. An admin key without
    restaurant_id gets every restaurant."""
    if restaurant_id is None and key.is_admin:
        return json_response({"restaurants": database.all(None, "sync_status_all")})
    return json_response({"restaurants": rows_of(database, key, restaurant_id, "sync_status")})


@router.get("/sync/timeline", summary="Queue depth and processing rate over time (the dashboard's chart)")
def sync_timeline(key: Key, database: Db, restaurant_id: uuid.UUID | None = None,
                  minutes: Annotated[int, fastapi.Query(ge=1, le=10080)] = 60,
                  buckets: Annotated[int, fastapi.Query(ge=1, le=240)] = 12) -> fastapi.responses.JSONResponse:
    return json_response({"timeline": rows_of(database, key, restaurant_id, "timeline", minutes=minutes,
                                              buckets=buckets)})


class TriggerRequest(Body):
    restaurant_id: RestaurantField = None
    full: bool = Field(default=False, description="Also queue every mapped product not known to be in sync.")


@router.post("/sync/trigger", summary="Sync a restaurant now")
def sync_trigger(body: TriggerRequest, key: Key, database: Db) -> fastapi.responses.JSONResponse:
    rid = restaurant_of(database, key, body.restaurant_id)
    due = database.value(actor(key), "trigger", {"restaurant_id": rid, "full": body.full})
    return json_response({"restaurant_id": rid, "due": due})


@router.get("/sync/history", summary="Sync batches, manual triggers and retries, newest first (paginated)")
def sync_history(key: Key, database: Db, restaurant_id: uuid.UUID | None = None,
                 page: Annotated[int, fastapi.Query(ge=1, le=1_000_000)] = 1,
                 per_page: Annotated[int, fastapi.Query(ge=1, le=500)] = 50) -> fastapi.responses.JSONResponse:
    found = rows_of(database, key, restaurant_id, "sync_history", limit=per_page + 1, offset=(page - 1) * per_page)
    return json_response({"page": page, "per_page": per_page, "has_more": len(found) > per_page,
                          "items": found[:per_page]})


@router.get("/sync/problems", summary="Failed, dead and conflicting changes")
def sync_problems(key: Key, database: Db, restaurant_id: uuid.UUID | None = None,
                  limit: Annotated[int, fastapi.Query(ge=1, le=1000)] = 200) -> fastapi.responses.JSONResponse:
    return json_response({"problems": rows_of(database, key, restaurant_id, "sync_problems", limit=limit)})


class RetryRequest(Body):
    restaurant_id: RestaurantField = None
    product_id: uuid.UUID | None = Field(default=None, description="One product (default: all).")
    status: Literal["failed", "dead"] | None = Field(default=None, description="Only failed or only dead (default: both).")


@router.post("/sync/retry", summary="Retry failed and dead changes")
def sync_retry(body: RetryRequest, key: Key, database: Db) -> fastapi.responses.JSONResponse:
    rid = restaurant_of(database, key, body.restaurant_id)
    queued = database.value(actor(key), "retry", {"restaurant_id": rid, "status": body.status,
                                                  "product_id": None if body.product_id is None else str(body.product_id)})
    return json_response({"restaurant_id": rid, "queued": queued})


class ResolveRequest(Body):
    restaurant_id: RestaurantField = None
    keep: Literal["ours", "theirs"]
    product_id: uuid.UUID | None = Field(default=None, description="One product (default: every held conflict).")


@router.post("/sync/resolve", summary="Decide conflicts held for BIDIRECTIONAL restaurants")
def sync_resolve(body: ResolveRequest, key: Key, database: Db) -> fastapi.responses.JSONResponse:
    rid = restaurant_of(database, key, body.restaurant_id)
    resolved = database.value(actor(key), "resolve", {"restaurant_id": rid, "keep": body.keep,
                                                      "product_id": None if body.product_id is None else str(body.product_id)})
    return json_response({"restaurant_id": rid, "resolved": resolved})


@router.get("/sync/held", summary="Price changes held by the guardrails, waiting for a person")
def sync_held(key: Key, database: Db, restaurant_id: uuid.UUID | None = None,
              limit: Annotated[int, fastapi.Query(ge=1, le=1000)] = 200) -> fastapi.responses.JSONResponse:
    """The price_sync_held view: each held change by product name, the price Loyverse holds, ours,
    what would be sent and the guardrail crossed (hold_change_percent, hold_change_amount,
    hold_below_price)."""
    rid = restaurant_of(database, key, restaurant_id)
    return json_response({"restaurant_id": rid, "held": database.all(None, "held", {"restaurant_id": rid, "limit": limit})})


class HeldRequest(Body):
    restaurant_id: RestaurantField = None
    product_id: uuid.UUID | None = Field(default=None, description="One product (default: every held change).")


def _held_product(database: base.Database, rid: str, product_id: uuid.UUID | None) -> str | None:
    """The product, once it is the restaurant's (another restaurant's is "not found")."""
    if product_id is None:
        return None
    if not database.value(None, "product_of_restaurant", {"product_id": str(product_id), "restaurant_id": rid}):
        raise base.ApiError(404, "product_id", f"no product {product_id} in this restaurant")
    return str(product_id)


@router.post("/sync/held/approve", summary="Send held changes as they are, past the guardrails")
def sync_held_approve(body: HeldRequest, key: Key, database: Db) -> fastapi.responses.JSONResponse:
    """loyverse.approve_held_price_changes: each held change (of one product, or all) is sent;
    one superseded by a newer change of its product is cancelled instead. Audited with the key."""
    rid = restaurant_of(database, key, body.restaurant_id)
    product = _held_product(database, rid, body.product_id)
    approved = database.value(actor(key), "approve_held", {"restaurant_id": rid, "product_id": product})
    return json_response({"restaurant_id": rid, "approved": approved})


@router.post("/sync/held/reject", summary="Refuse held changes: never sent")
def sync_held_reject(body: HeldRequest, key: Key, database: Db) -> fastapi.responses.JSONResponse:
    """loyverse.reject_held_price_changes: each held change (of one product, or all) is cancelled;
    our product keeps its price until someone corrects it. Audited with the key."""
    rid = restaurant_of(database, key, body.restaurant_id)
    product = _held_product(database, rid, body.product_id)
    rejected = database.value(actor(key), "reject_held", {"restaurant_id": rid, "product_id": product})
    return json_response({"restaurant_id": rid, "rejected": rejected})


def settings_out(database: base.Database, rid: str) -> dict[str, Any]:
    values = database.value(None, "settings", {"restaurant_id": rid}) or {}
    names = {str(c["id"]): c["name"] for c in database.all(None, "categories", {"restaurant_id": rid})}
    values["include_categories"] = [names.get(str(i), str(i)) for i in values.get("include_category_ids") or []]
    values["exclude_categories"] = [names.get(str(i), str(i)) for i in values.get("exclude_category_ids") or []]
    return {"restaurant_id": rid, "settings": values, "categories": sorted(set(names.values()))}


@router.get("/sync/settings", summary="A restaurant's price-sync settings")
def get_settings(key: Key, database: Db, restaurant_id: uuid.UUID | None = None) -> fastapi.responses.JSONResponse:
    """The settings, with the filtered categories also by name, and the restaurant's category names."""
    return json_response(settings_out(database, restaurant_of(database, key, restaurant_id)))


Frequency = Literal["REALTIME", "BATCH_5MIN", "BATCH_HOURLY", "MANUAL"]


class SettingsUpdate(Body):
    """Only the settings given change. Categories by name (include_categories) or id. The plan's
    camelCase names work too (syncFrequency, includeCategories, notificationEmail, ...)."""

    model_config = ConfigDict(extra="allow")  # newer settings pass to the SQL API, which names an unknown one

    restaurant_id: RestaurantField = None
    enabled: bool | None = None
    sync_direction: Literal["TO_LOYVERSE", "FROM_LOYVERSE", "BIDIRECTIONAL"] | None = Field(
        default=None, validation_alias=AliasChoices("sync_direction", "syncDirection"))
    sync_frequency: Frequency | None = Field(default=None, validation_alias=AliasChoices("sync_frequency", "syncFrequency"))
    price_rounding_rule: Literal["NONE", "NEAREST_0.05", "NEAREST_0.10", "UP", "DOWN"] | None = Field(
        default=None, validation_alias=AliasChoices("price_rounding_rule", "priceRoundingRule"))
    include_categories: list[Annotated[str, Field(max_length=500)]] | None = Field(
        default=None, max_length=1000, description="Category names (empty list: every category).",
        validation_alias=AliasChoices("include_categories", "includeCategories"))
    exclude_categories: list[Annotated[str, Field(max_length=500)]] | None = Field(
        default=None, max_length=1000, validation_alias=AliasChoices("exclude_categories", "excludeCategories"))
    include_category_ids: list[uuid.UUID] | None = Field(default=None, max_length=1000)
    exclude_category_ids: list[uuid.UUID] | None = Field(default=None, max_length=1000)
    notify_on_error: bool | None = Field(default=None, validation_alias=AliasChoices("notify_on_error", "notifyOnError"))
    notification_email: str | None = Field(default=None, max_length=320,
                                           validation_alias=AliasChoices("notification_email", "notificationEmail"))
    max_attempts: int | None = Field(default=None, ge=1, le=50)
    priority: int | None = Field(default=None, ge=-100, le=100)
    prices_include_tax: bool | None = None
    alert_failure_rate: float | None = Field(default=None, gt=0, le=1)
    alert_queue_depth: int | None = Field(default=None, ge=1, le=INT)
    alert_oldest_pending_seconds: int | None = Field(default=None, ge=1, le=INT)
    alert_dead_letters: int | None = Field(default=None, ge=1, le=INT)
    # A failed write is retried after min(cap, base * 2^attempts) seconds, jittered (sql/0350).
    backoff_base_seconds: float | None = Field(
        default=None, ge=0.01, le=3600, description="Seconds before the first retry of a failed write.")
    backoff_cap_seconds: float | None = Field(
        default=None, ge=0.01, le=86400, description="Longest wait between retries (at least backoff_base_seconds).")
    # The guardrails: a change past one is held for a person (GET sync/held); null = no limit.
    hold_change_percent: float | None = Field(
        default=None, ge=1, le=100000, description="Hold a change moving the price by more than this % (null: no limit).")
    hold_change_amount: float | None = Field(
        default=None, ge=0.01, le=99999999, description="Hold a change moving the price by more than this (null: no limit).")
    hold_below_price: float | None = Field(
        default=None, ge=0, le=99999999, description="Hold a change to a price below this (null: no floor).")


def settings_changes(database: base.Database, rid: str, body: dict[str, Any]) -> dict[str, Any]:
    """The SQL API's changes from a request: category names become this restaurant's ids."""
    changes = {k: v for k, v in body.items() if k != "restaurant_id"}
    by_name: dict[str, str] | None = None
    for field in ("include_categories", "exclude_categories"):
        if field not in changes:
            continue
        names = changes.pop(field) or []
        if by_name is None:
            by_name = {c["name"]: str(c["id"]) for c in database.all(None, "categories", {"restaurant_id": rid})}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise base.ApiError(422, field, f"{field}: no category named {unknown[0]!r} in this restaurant",
                                   sorted(by_name))
        changes[field.replace("categories", "category_ids")] = [by_name[n] for n in names]
    return changes


@router.put("/sync/settings", summary="Change a restaurant's price-sync settings")
def put_settings(body: SettingsUpdate, key: Key, database: Db) -> fastapi.responses.JSONResponse:
    """Validated field by field (an error names the field and its allowed values; nothing
    changes). The change is audited with the key's name."""
    rid = restaurant_of(database, key, body.restaurant_id)
    given = body.model_dump(mode="json", exclude_unset=True)
    _no_nul(given)
    changes = settings_changes(database, rid, given)
    database.value(actor(key), "update_settings", {"restaurant_id": rid, "changes": json.dumps(changes)})
    return json_response(settings_out(database, rid))


@router.get("/audit", summary="Who changed what in a restaurant (newest first)")
def audit_trail(key: Key, database: Db, restaurant_id: uuid.UUID | None = None,
                limit: Annotated[int, fastapi.Query(ge=1, le=1000)] = 100) -> fastapi.responses.JSONResponse:
    return json_response({"audit": rows_of(database, key, restaurant_id, "audit", limit=limit)})
