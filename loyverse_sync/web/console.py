"""The managers' console: server-rendered pages (Jinja2) over the same SQL as the JSON API.

Sign in with an API key (its hash is kept in a signed session cookie and looked up again on
every request, so revoking a key ends its sessions); every form carries the session's CSRF
token. No JavaScript is needed: the import's progress page refreshes itself (meta refresh).
Things are shown by name, never by UUID.
"""

from __future__ import annotations

import decimal
import hmac
import json
import math
import os
import pathlib
import secrets
import urllib.parse
import uuid
from typing import Any

import fastapi
from fastapi import responses, staticfiles, templating
from starlette.middleware import sessions

from loyverse_sync import apikeys
from loyverse_sync.importer import runs
from loyverse_sync.web import api, base

HERE = pathlib.Path(__file__).resolve().parent
templates = templating.Jinja2Templates(directory=str(HERE / "templates"))
router = fastapi.APIRouter(prefix="/console", include_in_schema=False)

STEPS = ["Menu", "Select", "Conflicts", "Field mapping", "Summary", "Import", "Results"]
MAPPABLE_FIELDS = ["item_name", "handle", "reference_id", "description", "form", "color", "image_url", "option1_name",
                   "option2_name", "option3_name", "sku", "barcode", "reference_variant_id", "option1_value",
                   "option2_value", "option3_value"]


def install(app: fastapi.FastAPI, secret: str) -> None:
    """Sessions (signed cookie, 12 h) and the shipped static assets."""
    # Behind TLS (LOYVERSE_SYNC_CONSOLE_URL=https://...) the cookie is sent over HTTPS only.
    https_only = os.environ.get("LOYVERSE_SYNC_CONSOLE_URL", "").startswith("https://")
    app.add_middleware(sessions.SessionMiddleware, secret_key=secret, session_cookie="lvs_console",
                       max_age=12 * 3600, same_site="strict", https_only=https_only)
    app.mount("/console/static", staticfiles.StaticFiles(directory=str(HERE / "static")), name="static")


def refused(request: fastapi.Request, exc: base.ApiError) -> responses.Response:
    if exc.status == 401:
        return responses.RedirectResponse("/console/login", status_code=303)
    return templates.TemplateResponse(request, "error.html", {"message": exc.message, "key": None}, status_code=exc.status)


# -- session, key, CSRF ------------------------------------------------------------------------


def csrf_token(request: fastapi.Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return str(token)


async def check_csrf(request: fastapi.Request) -> dict[str, Any]:
    """The form, once its CSRF token matches the session's (403 otherwise)."""
    form = await request.form()
    sent = str(form.get("csrf") or "")
    expected = str(request.session.get("csrf") or "")
    if not expected or not hmac.compare_digest(sent, expected):
        raise base.ApiError(403, "csrf", "the form expired or did not come from this console; reload the page")
    out: dict[str, Any] = {}
    for k, v in form.multi_items():
        if isinstance(v, str):
            if "\x00" in v:
                raise base.ApiError(422, k, "text must not contain NUL characters")
            out.setdefault(k, []).append(v)
    return {k: v[0] if len(v) == 1 else v for k, v in out.items()}


def console_key(request: fastapi.Request) -> apikeys.Key:
    hex_hash = request.session.get("key_hash")
    key = None
    if isinstance(hex_hash, str) and len(hex_hash) == 64:
        with api.db(request).transaction(None) as conn:
            key = apikeys.lookup_hash(conn, bytes.fromhex(hex_hash))
    if key is None:
        request.session.pop("key_hash", None)
        raise base.ApiError(401, "key", "sign in")
    return key


def actor(key: apikeys.Key) -> str:
    return f"console:{key.name}"


def restaurant(request: fastapi.Request, key: apikeys.Key, rid: str) -> dict[str, Any]:
    try:
        uuid.UUID(rid)
    except ValueError:
        raise base.ApiError(404, "restaurant", "no such restaurant") from None
    if not key.may_reach(rid):
        raise base.ApiError(403, "restaurant", "this key may not reach that restaurant")
    row = api.db(request).one(None, "restaurants", {"restaurant_id": rid})
    if row is None:
        raise base.ApiError(404, "restaurant", "no such restaurant")
    return row


async def posted(request: fastapi.Request, rid: str) -> tuple[dict[str, Any], apikeys.Key, dict[str, Any]]:
    """A form posted about restaurant ``rid``: the form (its CSRF token checked), the signed-in
    key, and the restaurant, which that key must reach."""
    form = await check_csrf(request)
    key = console_key(request)
    return form, key, restaurant(request, key, rid)


def page(request: fastapi.Request, name: str, key: apikeys.Key | None, http_status: int = 200,
         **ctx: Any) -> responses.Response:
    ctx.update(key=key, csrf=csrf_token(request), steps=STEPS)
    return templates.TemplateResponse(request, name, ctx, status_code=http_status)


def back(path: str, message: str | None = None) -> responses.RedirectResponse:
    suffix = "?" + urllib.parse.urlencode({"done": message}) if message else ""
    return responses.RedirectResponse(path + suffix, status_code=303)


# -- sign in -----------------------------------------------------------------------------------


@router.get("/login")
def login_form(request: fastapi.Request) -> responses.Response:
    return page(request, "login.html", None, error=None)


@router.post("/login")
async def login(request: fastapi.Request) -> responses.Response:
    form = await check_csrf(request)
    raw = str(form.get("api_key") or "").strip()
    with api.db(request).transaction(None) as conn:
        key = apikeys.lookup(conn, raw)
    if key is None:
        return page(request, "login.html", None, http_status=401, error="Unknown or revoked API key.")
    request.session["key_hash"] = apikeys.digest(raw).hex()
    request.session["csrf"] = secrets.token_urlsafe(24)  # a new token per sign-in
    return back("/console/")


@router.post("/logout")
async def logout(request: fastapi.Request) -> responses.Response:
    await check_csrf(request)
    request.session.clear()
    return back("/console/login")


@router.get("/")
def home(request: fastapi.Request) -> responses.Response:
    key = console_key(request)
    if not key.is_admin:
        return back(f"/console/r/{key.restaurant_id}/")
    return page(request, "home.html", key, restaurants=api.db(request).all(None, "restaurants", {"restaurant_id": None}))


# -- dashboard ---------------------------------------------------------------------------------


def chart(points: list[dict[str, Any]], width: int = 640, height: int = 180) -> dict[str, Any]:
    """An inline SVG line chart of queue depth and bars of changes synced per slice."""
    n = max(len(points) - 1, 1)
    top = max([1] + [int(p["queue_depth"]) for p in points] + [int(p["synced"]) + int(p["failed"]) for p in points])
    scale = 10 ** max(0, int(math.log10(top)))
    top = int(math.ceil(top / scale) * scale)
    left, bottom, inner_w, inner_h = 44, height - 24, width - 76, height - 40

    def x(i: int) -> float:
        return left + inner_w * i / n

    def y(v: float) -> float:
        return bottom - inner_h * v / top

    line = " ".join(f"{x(i):.1f},{y(int(p['queue_depth'])):.1f}" for i, p in enumerate(points))
    bar_w = max(inner_w / (n + 1) * 0.5, 2)
    bars = [{"x": x(i) - bar_w / 2, "y": y(int(p["synced"])), "h": bottom - y(int(p["synced"])), "w": bar_w,
             "fy": y(int(p["synced"]) + int(p["failed"])), "fh": y(int(p["synced"])) - y(int(p["synced"]) + int(p["failed"])),
             "label": f"{p['bucket_end']:%H:%M}: depth {p['queue_depth']}, synced {p['synced']}, failed {p['failed']}"}
            for i, p in enumerate(points)]
    ticks = [{"y": y(v), "v": v} for v in (0, top // 2, top)]
    xlabels = [{"x": x(i), "t": f"{p['bucket_end']:%H:%M}"} for i, p in enumerate(points) if i % max(1, n // 6) == 0]
    return {"width": width, "height": height, "line": line, "bars": bars, "ticks": ticks, "xlabels": xlabels,
            "left": left, "bottom": bottom, "right": left + inner_w, "points": points}


@router.get("/r/{rid}/")
def dashboard(request: fastapi.Request, rid: str, done: str | None = None) -> responses.Response:
    key = console_key(request)
    r = restaurant(request, key, rid)
    database = api.db(request)
    status = database.one(None, "sync_status", {"restaurant_id": rid})
    problems = database.all(None, "sync_problems", {"restaurant_id": rid, "limit": 200})
    return page(
        request, "dashboard.html", key, r=r, status=status, done=done,
        chart=chart(database.all(None, "timeline", {"restaurant_id": rid, "minutes": 60, "buckets": 12})),
        history=database.all(None, "sync_history", {"restaurant_id": rid, "limit": 15, "offset": 0}),
        failed=[p for p in problems if p["status"] in ("failed", "dead")],
        conflicts=[p for p in problems if p["status"] == "conflict"],
        held=database.all(None, "held", {"restaurant_id": rid, "limit": 200}),
        audit=database.all(None, "audit", {"restaurant_id": rid, "limit": 10}),
        runs=database.all(None, "import_runs", {"restaurant_id": rid, "limit": 5}),
    )


def _product(form: dict[str, Any]) -> str | None:
    value = str(form.get("product_id") or "")
    if not value:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise base.ApiError(422, "product_id", "not a product of this restaurant") from None


@router.post("/r/{rid}/trigger")
async def trigger(request: fastapi.Request, rid: str) -> responses.Response:
    form, key, _ = await posted(request, rid)
    due = api.db(request).value(actor(key), "trigger", {"restaurant_id": rid, "full": form.get("full") == "1"})
    return back(f"/console/r/{rid}/", f"Sync triggered: {due} change(s) due now.")


@router.post("/r/{rid}/retry")
async def retry(request: fastapi.Request, rid: str) -> responses.Response:
    form, key, _ = await posted(request, rid)
    status = form.get("status") if form.get("status") in ("failed", "dead") else None
    queued = api.db(request).value(actor(key), "retry", {"restaurant_id": rid, "product_id": _product(form),
                                                         "status": status})
    return back(f"/console/r/{rid}/", f"{queued} change(s) queued again.")


@router.post("/r/{rid}/resolve")
async def resolve(request: fastapi.Request, rid: str) -> responses.Response:
    form, key, _ = await posted(request, rid)
    keep = form.get("keep")
    if keep not in ("ours", "theirs"):
        raise base.ApiError(422, "keep", "keep must be ours or theirs", ["ours", "theirs"])
    n = api.db(request).value(actor(key), "resolve", {"restaurant_id": rid, "keep": keep, "product_id": _product(form)})
    return back(f"/console/r/{rid}/", f"{n} conflict(s) resolved: kept {keep}.")


@router.post("/r/{rid}/held/{verb}")
async def held(request: fastapi.Request, rid: str, verb: str) -> responses.Response:
    """Approve (send past the guardrails) or reject (never send) held changes: one product or all."""
    form, key, _ = await posted(request, rid)
    if verb not in ("approve", "reject"):
        raise base.ApiError(404, "verb", "approve or reject", ["approve", "reject"])
    database = api.db(request)
    product = _product(form)
    if product is not None and not database.value(None, "product_of_restaurant",
                                                  {"product_id": product, "restaurant_id": rid}):
        raise base.ApiError(404, "product_id", "not a product of this restaurant")
    n = database.value(actor(key), f"{verb}_held", {"restaurant_id": rid, "product_id": product})
    what = "approved: sending" if verb == "approve" else "rejected: never sent"
    return back(f"/console/r/{rid}/", f"{n} held change(s) {what}.")


# -- settings ----------------------------------------------------------------------------------

CHOICES = {
    "sync_direction": ["TO_LOYVERSE", "FROM_LOYVERSE", "BIDIRECTIONAL"],
    "sync_frequency": ["REALTIME", "BATCH_5MIN", "BATCH_HOURLY", "MANUAL"],
    "price_rounding_rule": ["NONE", "NEAREST_0.05", "NEAREST_0.10", "UP", "DOWN"],
}
BOOLEANS = ["enabled", "notify_on_error", "prices_include_tax"]
NUMBERS = {"max_attempts": int, "priority": int, "alert_failure_rate": float, "alert_queue_depth": int,
           "alert_oldest_pending_seconds": int, "alert_dead_letters": int, "backoff_base_seconds": float,
           "backoff_cap_seconds": float}
# The guardrails (a change past one is held for a person): blank = no limit; (lowest, highest, what
# blank means), the ranges of the table's CHECKs (sql/0155), checked here to answer at the field.
GUARDRAILS = {
    "hold_change_percent": (decimal.Decimal("1"), decimal.Decimal("100000"), "no limit"),
    "hold_change_amount": (decimal.Decimal("0.01"), decimal.Decimal("99999999"), "no limit"),
    "hold_below_price": (decimal.Decimal("0"), decimal.Decimal("99999999"), "no floor"),
}
GUARDRAIL_LABELS = {
    "hold_change_percent": "Hold a change moving a price by more than (%)",
    "hold_change_amount": "Hold a change moving a price by more than (amount)",
    "hold_below_price": "Hold a change to a price below",
}


def guardrail(field: str, raw: str) -> tuple[float | None, str | None]:
    """A guardrail typed in the form: (value, None) or (None, the error shown at the field)."""
    low, high, blank = GUARDRAILS[field]
    if not raw:
        return None, None
    try:
        value = decimal.Decimal(raw)
    except decimal.InvalidOperation:
        value = decimal.Decimal("NaN")
    if not value.is_finite() or not low <= value <= high or value != value.quantize(decimal.Decimal("0.01"),
                                                                                      context=decimal.Context(prec=40)):
        return None, f"a number from {low} to {high} with at most 2 decimals, or blank for {blank}"
    return float(value), None


def settings_page(request: fastapi.Request, key: apikeys.Key, r: dict[str, Any], *, errors: dict[str, str] | None = None,
                  values: dict[str, Any] | None = None, done: str | None = None, status: int = 200) -> responses.Response:
    current = api.settings_out(api.db(request), str(r["restaurant_id"]))
    shown = dict(current["settings"])
    for field in GUARDRAILS:  # 50.0 from the jsonb document reads 50
        if isinstance(shown.get(field), int | float):
            shown[field] = format(decimal.Decimal(str(shown[field])).normalize(), "f")
    shown.update(values or {})
    return page(request, "settings.html", key, r=r, s=shown, categories=current["categories"], choices=CHOICES,
                booleans=BOOLEANS, numbers=list(NUMBERS), guardrails=GUARDRAIL_LABELS, errors=errors or {}, done=done,
                http_status=status)


@router.get("/r/{rid}/settings")
def settings_form(request: fastapi.Request, rid: str, done: str | None = None) -> responses.Response:
    key = console_key(request)
    return settings_page(request, key, restaurant(request, key, rid), done=done)


@router.post("/r/{rid}/settings")
async def settings_save(request: fastapi.Request, rid: str) -> responses.Response:
    form, key, r = await posted(request, rid)
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field, allowed in CHOICES.items():
        value = form.get(field)
        if value not in allowed:
            errors[field] = f"choose one of {', '.join(allowed)}"
        changes[field] = value
    for field in BOOLEANS:
        changes[field] = form.get(field) == "on"
    typed: dict[str, str] = {}  # what was typed, shown back when it is refused
    for field, cast in NUMBERS.items():
        raw = str(form.get(field) or "").strip()
        try:
            changes[field] = cast(raw)
        except ValueError:
            errors[field] = f"a {'whole ' if cast is int else ''}number is needed"
            typed[field] = raw
    for field in GUARDRAILS:
        raw = str(form.get(field) or "").strip()
        changes[field], problem = guardrail(field, raw)
        if problem:
            errors[field] = problem
            typed[field] = raw
    email = str(form.get("notification_email") or "").strip()
    changes["notification_email"] = email or None
    for field in ("include_categories", "exclude_categories"):
        v = form.get(field) or []
        changes[field] = [v] if isinstance(v, str) else list(v)
    shown = {**changes, **typed}
    if errors:
        return settings_page(request, key, r, errors=errors, values=shown, status=422)
    database = api.db(request)
    try:
        sql_changes = api.settings_changes(database, rid, changes)
        database.value(actor(key), "update_settings", {"restaurant_id": rid, "changes": json.dumps(sql_changes)})
    except base.ApiError as exc:
        if exc.status in (401, 403):
            raise
        field = (exc.field or "settings").replace("_ids", "s").replace("category_s", "categories")
        return settings_page(request, key, r, errors={field: exc.message}, values=shown, status=422)
    return back(f"/console/r/{rid}/settings", "Settings saved.")


# -- import wizard -----------------------------------------------------------------------------


def _state(form: dict[str, Any]) -> dict[str, Any]:
    try:
        state = json.loads(str(form.get("state") or "{}"))
    except ValueError:
        state = {}
    return state if isinstance(state, dict) else {}


def _list(form: dict[str, Any], name: str) -> list[str]:
    v = form.get(name)
    return [] if v is None else [v] if isinstance(v, str) else list(v)


def _options(state: dict[str, Any]) -> runs.Options:
    return runs.Options(conflict=str(state.get("conflict") or "skip"), decisions=dict(state.get("decisions") or {}),
                        map=dict(state.get("map") or {}), categories=list(state.get("categories") or []),
                        items=list(state.get("items") or []))


def _preview(request: fastapi.Request, key: apikeys.Key, rid: str, state: dict[str, Any], *,
             refresh: bool = False) -> dict[str, Any]:
    return api.preview_report(api.db(request).connector.acting_as(actor(key)), rid, _options(state),
                              refresh=refresh)


def wizard(request: fastapi.Request, key: apikeys.Key, r: dict[str, Any], step: int, state: dict[str, Any],
           status: int = 200, **ctx: Any) -> responses.Response:
    return page(request, "import.html", key, r=r, step=step, state=json.dumps(state), st=state, http_status=status,
                **ctx)


@router.get("/r/{rid}/import")
def import_menu(request: fastapi.Request, rid: str, refresh: bool = False) -> responses.Response:
    """Step 1: the Loyverse menu tree with prices."""
    key = console_key(request)
    r = restaurant(request, key, rid)
    report = _preview(request, key, rid, {}, refresh=refresh)
    return wizard(request, key, r, 1, {}, report=report,
                  runs=api.db(request).all(None, "import_runs", {"restaurant_id": rid, "limit": 5}))


@router.post("/r/{rid}/import/select")
async def import_select(request: fastapi.Request, rid: str) -> responses.Response:
    """Step 2: choose categories and items (by name)."""
    form, key, r = await posted(request, rid)
    state = _state(form)
    return wizard(request, key, r, 2, state, report=_preview(request, key, rid, {}), error=None)


@router.post("/r/{rid}/import/conflicts")
async def import_conflicts(request: fastapi.Request, rid: str) -> responses.Response:
    """Step 3: conflicts side by side, a choice per item."""
    form, key, r = await posted(request, rid)
    state = _state(form)
    if "category" in form or "item" in form or form.get("from") == "select":
        state["categories"], state["items"] = _list(form, "category"), _list(form, "item")
        if not state["categories"] and not state["items"]:
            return wizard(request, key, r, 2, state, status=422, report=_preview(request, key, rid, {}),
                          error="Select at least one category or item.")
    report = _preview(request, key, rid, state)
    return wizard(request, key, r, 3, state, report=report)


@router.post("/r/{rid}/import/mapping")
async def import_mapping(request: fastapi.Request, rid: str) -> responses.Response:
    """Step 4: field mapping (Loyverse field -> products column)."""
    form, key, r = await posted(request, rid)
    state = _state(form)
    if form.get("from") == "conflicts":
        state["conflict"] = form.get("conflict") if form.get("conflict") in runs.DECISION_CHOICES else "skip"
        state["decisions"] = {k[len("decision:"):]: v for k, v in form.items()
                              if k.startswith("decision:") and v in runs.DECISION_CHOICES}
    return wizard(request, key, r, 4, state, fields=MAPPABLE_FIELDS, errors=[])


@router.post("/r/{rid}/import/summary")
async def import_summary(request: fastapi.Request, rid: str) -> responses.Response:
    """Step 5: what will change, and the fidelity report."""
    form, key, r = await posted(request, rid)
    state = _state(form)
    if form.get("from") == "mapping":
        mapping = {}
        for field, column in zip(_list(form, "map_field"), _list(form, "map_column"), strict=False):
            if field and column.strip():
                mapping[field] = column.strip()
        problems = runs.field_map_problems(api.db(request).connector, mapping)
        if problems:
            return wizard(request, key, r, 4, state, status=422, fields=MAPPABLE_FIELDS, errors=problems,
                          mapping=mapping)
        state["map"] = mapping
    return wizard(request, key, r, 5, state, report=_preview(request, key, rid, state))


@router.post("/r/{rid}/import/start")
async def import_start(request: fastapi.Request, rid: str) -> responses.Response:
    """Step 6 begins: the import is requested (a worker job) and its progress shown."""
    form, key, _ = await posted(request, rid)
    state = _state(form)
    body = api.ImportRequest(selected_categories=state.get("categories") or [], selected_items=state.get("items") or [],
                             conflict_resolution=state.get("conflict") or "skip", decisions=state.get("decisions") or {},
                             field_mappings=state.get("map") or {})
    run_id = api.db(request).value(actor(key), "request_import", {"restaurant_id": rid,
                                                                  "request": json.dumps(body.to_sql())})
    return back(f"/console/r/{rid}/import/runs/{run_id}")


@router.get("/r/{rid}/import/runs/{run_id}")
def import_run(request: fastapi.Request, rid: str, run_id: int, done: str | None = None) -> responses.Response:
    """Steps 6 and 7: live progress (the page refreshes itself), then results and undo."""
    key = console_key(request)
    r = restaurant(request, key, rid)
    database = api.db(request)
    run = api.visible_run(database, key, run_id) if 0 < run_id < api.BIGINT else None
    if run is None or str(run["restaurant_id"]) != rid:
        raise base.ApiError(404, "run_id", f"no import run {run_id}")
    finished = run["status"] in ("SUCCESS", "PARTIAL", "FAILED", "UNDONE", "INTERRUPTED")
    ctx: dict[str, Any] = {"run": run, "finished": finished, "done": done}
    if finished:
        ctx["issues"] = database.all(None, "import_issues", {"run_id": run_id})
        ctx["failed_items"] = database.all(None, "import_items", {"run_id": run_id, "errors_only": True,
                                                                 "limit": 200, "offset": 0})
    return wizard(request, key, r, 7 if finished else 6, {}, **ctx)


@router.post("/r/{rid}/import/runs/{run_id}/undo")
async def import_undo(request: fastapi.Request, rid: str, run_id: int) -> responses.Response:
    form, key, _ = await posted(request, rid)
    run = api.visible_run(api.db(request), key, run_id)
    if str(run["restaurant_id"]) != rid:
        raise base.ApiError(404, "run_id", f"no import run {run_id}")
    try:
        result = runs.undo(api.db(request).connector.acting_as(actor(key)), run_id,
                           force=form.get("force") == "1")
    except runs.ImportProblem as exc:
        return back(f"/console/r/{rid}/import/runs/{run_id}", f"Not undone: {exc}")
    return back(f"/console/r/{rid}/import/runs/{run_id}",
                f"Undone: {result['deleted']} removed, {result['restored']} restored.")
