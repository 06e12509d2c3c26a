"""The JSON API over real HTTP: uvicorn on a free port, a real PostgreSQL, the emulator and a
real worker running the import jobs. One stack for the module (see harness.py)."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.web.harness import API

ROOT = pathlib.Path(__file__).resolve().parents[2]


def check(response: Any, stack: Any, status: int | tuple[int, ...]) -> Any:
    """The response has the status, and no Loyverse token anywhere in it."""
    assert stack.token not in response.text
    wanted = (status,) if isinstance(status, int) else status
    assert response.status_code in wanted, f"{response.status_code}: {response.text[:500]}"
    return response.json()


@pytest.fixture(scope="module")
def imported(stack):
    """Restaurant A's menu imported through the API (the first import of this module)."""
    with stack.client("A") as c:
        preview = check(c.get(f"{API}/menu/preview"), stack, 200)
        started = check(c.post(f"{API}/menu/import", json={"conflictResolution": "update", "batch_size": 4}),
                        stack, 202)
    return preview, started, stack.wait_run(started["run_id"], "A")


def test_openapi_document_is_the_committed_one(stack):
    served = stack.openapi()
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    assert served["paths"], "no paths served"
    assert served == committed, "docs/openapi.json is stale: run `loyverse-sync serve --openapi > docs/openapi.json`"


def test_import_through_the_api_runs_in_the_worker_and_reports_progress(stack, imported):
    preview, started, result = imported
    variants = [v for c in preview["categories"] for i in c["items"] for v in i["variants"]]
    assert variants and all("price" in v for v in variants)
    assert started["status"] == "PENDING"
    run = result["run"]
    assert run["status"] == "SUCCESS", run
    assert run["items_total"] == run["items_done"] > 0
    counts = [run[k] for k in ("created_count", "updated_count", "skipped_count", "duplicated_count", "failed_count")]
    assert run["created_count"] > 0 and sum(counts) <= run["items_total"]
    assert run["requested_by"] == f"api-key:{stack.key_names['A']}"
    assert {s for s, _ in result["seen"]} - {"PENDING", "RUNNING"} == {"SUCCESS"}
    assert len(result["items"]) == min(100, run["items_total"])
    outcomes = [i["outcome"] for i in result["items"]]
    assert outcomes.count("created") == run["created_count"]
    with stack.conn() as conn:
        n = conn.execute("select count(*) as n from public.products p join loyverse.loyverse_item_mappings m"
                         " on m.product_id = p.id where p.restaurant_id = %s", (stack.restaurants["A"],)).fetchone()["n"]
        log = conn.execute("select actor from loyverse.audit_trail where action = 'MENU_IMPORT'"
                           " and restaurant_id = %s", (stack.restaurants["A"],)).fetchone()
    assert n == run["created_count"]
    assert log["actor"] == f"api-key:{stack.key_names['A']}"


@pytest.fixture(scope="module")
def imported_from_sql(stack):
    """Restaurant B's menu imported through the SQL API (what the undo test undoes)."""
    with stack.conn() as conn:
        conn.execute("set loyverse.actor = 'sql-test'")
        run_id = conn.execute("select loyverse.request_menu_import(%s, '{\"batch_size\": 5}') as id",
                              (stack.restaurants["B"],)).fetchone()["id"]
    return stack.wait_run(run_id, "B")


def test_an_import_requested_from_sql_runs_like_one_from_the_api(stack, imported_from_sql):
    result = imported_from_sql
    assert result["run"]["status"] == "SUCCESS"
    assert result["run"]["created_count"] > 0
    assert result["run"]["requested_by"] == "sql-test"


def test_undo_through_the_api(stack, imported_from_sql):
    with stack.client("B") as c:
        runs = check(c.get(f"{API}/menu/runs"), stack, 200)["runs"]
        run_id = next(r["run_id"] for r in runs if r["status"] == "SUCCESS")
        body = check(c.post(f"{API}/menu/undo", json={"run_id": run_id}), stack, 200)
        assert body["deleted"] > 0
        assert check(c.get(f"{API}/menu/status", params={"run_id": run_id}), stack, 200)["run"]["status"] == "UNDONE"
    with stack.conn() as conn:
        assert conn.execute("select count(*) as n from public.products where restaurant_id = %s",
                            (stack.restaurants["B"],)).fetchone()["n"] == 0


def test_sync_status_trigger_history_and_settings(stack, imported):
    a = stack.restaurants["A"]
    with stack.client("A") as c:
        status = check(c.get(f"{API}/sync/status"), stack, 200)["restaurants"]
        assert [s["restaurant_id"] for s in status] == [a]
        settings_ = check(c.get(f"{API}/sync/settings"), stack, 200)
        assert settings_["categories"], "the import created categories"
        category = settings_["categories"][0]
        changed = check(c.put(f"{API}/sync/settings", json={"sync_frequency": "BATCH_5MIN",
                                                            "exclude_categories": [category]}), stack, 200)
        assert changed["settings"]["sync_frequency"] == "BATCH_5MIN"
        assert changed["settings"]["exclude_categories"] == [category]
        plan_names = check(c.put(f"{API}/sync/settings", json={"syncFrequency": "REALTIME", "excludeCategories": []}),
                           stack, 200)  # the plan's PriceSyncSettings names
        assert plan_names["settings"]["sync_frequency"] == "REALTIME" and plan_names["settings"]["exclude_categories"] == []
        due = check(c.post(f"{API}/sync/trigger", json={}), stack, 200)
        assert due["restaurant_id"] == a
        page1 = check(c.get(f"{API}/sync/history", params={"per_page": 1}), stack, 200)
        assert page1["items"] and page1["items"][0]["sync_type"] == "MANUAL_TRIGGER"
        assert check(c.get(f"{API}/sync/timeline"), stack, 200)["timeline"]
        audit = check(c.get(f"{API}/audit"), stack, 200)["audit"]
    settings_rows = [r for r in audit if r["action"] == "SETTINGS_CHANGE"]
    assert len(settings_rows) >= 2
    assert {r["actor"] for r in settings_rows} == {f"api-key:{stack.key_names['A']}"}
    assert "sync_frequency" in settings_rows[-1]["details"]["changes"]


def test_retry_queues_a_dead_change_again(stack, imported):
    a = stack.restaurants["A"]
    with stack.conn() as conn:
        conn.execute("update loyverse.loyverse_price_sync_settings set paused = true where restaurant_id = %s", (a,))
        product = conn.execute("select id from public.products where restaurant_id = %s order by name limit 1",
                               (a,)).fetchone()["id"]
        conn.execute("update public.products set price = price + 1 where id = %s", (product,))
        conn.execute("update loyverse.loyverse_price_sync_queue set status = 'dead', completed_at = now(),"
                     " last_error = 'gave up' where product_id = %s and status = 'pending'", (product,))
    try:
        with stack.client("A") as c:
            problems = check(c.get(f"{API}/sync/problems"), stack, 200)["problems"]
            assert [p["status"] for p in problems] == ["dead"]
            body = check(c.post(f"{API}/sync/retry", json={"product_id": str(product), "status": "dead"}), stack, 200)
        assert body["queued"] == 1
        with stack.conn() as conn:
            statuses = [r["status"] for r in conn.execute(
                "select status from loyverse.loyverse_price_sync_queue where product_id = %s order by id",
                (product,)).fetchall()]
        assert statuses == ["cancelled", "pending"]
    finally:
        with stack.conn() as conn:
            conn.execute("update loyverse.loyverse_price_sync_settings set paused = false where restaurant_id = %s", (a,))


def test_a_held_conflict_is_resolved_by_taking_loyverses_price(stack, imported):
    a = stack.restaurants["A"]
    with stack.conn() as conn:
        conn.execute("update loyverse.loyverse_price_sync_settings set paused = true where restaurant_id = %s", (a,))
        product = conn.execute("select id, name from public.products where restaurant_id = %s order by name desc"
                               " limit 1", (a,)).fetchone()
        conn.execute("update public.products set price = price + 2 where id = %s", (product["id"],))
        conn.execute("update loyverse.loyverse_price_sync_queue set status = 'conflict', completed_at = now(),"
                     " error_details = '{\"loyverse_price\": 3.5}' where product_id = %s and status = 'pending'",
                     (product["id"],))
    try:
        with stack.client("A") as c:
            problems = check(c.get(f"{API}/sync/problems"), stack, 200)["problems"]
            assert [(p["product_name"], p["status"]) for p in problems if p["status"] == "conflict"] == [
                (product["name"], "conflict")]
            body = check(c.post(f"{API}/sync/resolve", json={"keep": "theirs", "product_id": str(product["id"])}),
                         stack, 200)
        assert body["resolved"] == 1
        with stack.conn() as conn:
            assert str(conn.execute("select price from public.products where id = %s",
                                    (product["id"],)).fetchone()["price"]) == "3.50"
    finally:
        with stack.conn() as conn:
            conn.execute("update loyverse.loyverse_price_sync_settings set paused = false where restaurant_id = %s", (a,))


def test_held_changes_are_listed_by_name_approved_and_rejected(stack, imported):
    """GET sync/held shows each held change by product name with why; approve sends one (it is
    pending again), reject refuses the other; another restaurant's product is "not found"."""
    a = stack.restaurants["A"]
    with stack.conn() as conn:
        conn.execute("update loyverse.loyverse_price_sync_settings set paused = true where restaurant_id = %s", (a,))
        products = conn.execute("select id, name from public.products where restaurant_id = %s order by name limit 2",
                                (a,)).fetchall()
        other = conn.execute("select id from public.products where restaurant_id <> %s limit 1", (a,)).fetchone()
        for p in products:
            conn.execute("update public.products set price = price * 20 where id = %s", (p["id"],))
            conn.execute("update loyverse.loyverse_price_sync_queue set status = 'held', last_error_code = 'HELD_CHANGE_PERCENT',"
                         " last_error = 'held: more than 100.00%% (hold_change_percent)'"
                         " where product_id = %s and status = 'pending'", (p["id"],))
    try:
        with stack.client("A") as c:
            held = check(c.get(f"{API}/sync/held"), stack, 200)["held"]
            assert sorted(h["product_name"] for h in held) == sorted(p["name"] for p in products)
            assert {h["reason_code"] for h in held} == {"HELD_CHANGE_PERCENT"}
            if other is not None:
                r = c.post(f"{API}/sync/held/approve", json={"product_id": str(other["id"])})
                assert check(r, stack, (403, 404))["error"]["field"] == "product_id"
            approved = check(c.post(f"{API}/sync/held/approve", json={"product_id": str(products[0]["id"])}),
                             stack, 200)
            rejected = check(c.post(f"{API}/sync/held/reject", json={}), stack, 200)
            assert (approved["approved"], rejected["rejected"]) == (1, 1)
            assert check(c.get(f"{API}/sync/held"), stack, 200)["held"] == []
            assert check(c.post(f"{API}/sync/held/approve", json={"product_id": "nope"}), stack, 422)
        with stack.conn() as conn:
            latest = {str(r["product_id"]): r["status"] for r in conn.execute(
                "select distinct on (product_id) product_id, status from loyverse.loyverse_price_sync_queue"
                " where product_id = any (%s) order by product_id, id desc", ([p["id"] for p in products],))}
            actors = [r["actor"] for r in conn.execute(
                "select actor from loyverse.audit_trail where restaurant_id = %s and action in ('APPROVE', 'REJECT')"
                " order by log_id", (a,))]
        assert latest[str(products[0]["id"])] in ("pending", "processing", "done")
        assert latest[str(products[1]["id"])] == "cancelled"
        assert actors[-2:] == [f"api-key:{stack.key_names['A']}"] * 2
    finally:
        with stack.conn() as conn:
            conn.execute("update loyverse.loyverse_price_sync_settings set paused = false where restaurant_id = %s", (a,))


def _settings_row(stack, rid):
    with stack.conn() as conn:
        return conn.execute("select t::text from loyverse.loyverse_price_sync_settings t where restaurant_id = %s",
                            (rid,)).fetchone()


@pytest.mark.parametrize(("body", "field", "allowed"), [
    ({"sync_frequency": "HOURLY"}, "sync_frequency", ["REALTIME", "BATCH_5MIN", "BATCH_HOURLY", "MANUAL"]),
    ({"price_rounding_rule": "NEAREST_1"}, "price_rounding_rule", ["NONE", "NEAREST_0.05", "NEAREST_0.10", "UP", "DOWN"]),
    ({"max_attempts": 0}, "max_attempts", None),
    ({"hold_change_percent": 0.5}, "hold_change_percent", None),
    ({"hold_below_price": -1}, "hold_below_price", None),
    ({"backoff_base_seconds": 5000}, "backoff_base_seconds", None),
    ({"backoff_cap_seconds": 0}, "backoff_cap_seconds", None),
    ({"notify_on_error": True, "notification_email": None}, "notification_email", None),
    ({"include_categories": ["No Such Category"]}, "include_categories", "names"),
    ({"colour": "red"}, "colour", None),
])
def test_bad_settings_name_the_field_and_change_nothing(stack, imported, body, field, allowed):
    before = _settings_row(stack, stack.restaurants["A"])
    with stack.client("A") as c:
        error = check(c.put(f"{API}/sync/settings", json=body), stack, 422)["error"]
    assert error["field"] == field
    assert field.split("_")[0] in error["message"] or error["message"]
    if allowed == "names":
        assert error["allowed"], "the restaurant's category names"
    elif allowed:
        assert error["allowed"] == allowed
    assert _settings_row(stack, stack.restaurants["A"]) == before


@pytest.mark.parametrize(("body", "field"), [
    ({"conflict_resolution": "merge"}, "conflict_resolution"),
    ({"decisions": {"v1": "keep"}}, "decisions.v1"),
    ({"field_mappings": {"item_name": "price"}}, "map"),
    ({"batch_size": 0}, "batch_size"),
    ({"selectedItems": "not a list"}, "selectedItems"),
])
def test_bad_import_requests_name_the_field_and_start_nothing(stack, body, field):
    with stack.conn() as conn:
        before = conn.execute("select count(*) as n from loyverse.loyverse_import_runs").fetchone()["n"]
    with stack.client("A") as c:
        response = c.post(f"{API}/menu/import", json=body)
    error = check(response, stack, 422)["error"]
    assert error["field"] == field
    if field == "conflict_resolution":
        assert error["allowed"] == ["skip", "update", "duplicate", "manual"]
    with stack.conn() as conn:
        assert conn.execute("select count(*) as n from loyverse.loyverse_import_runs").fetchone()["n"] == before


def _endpoints(stack) -> list[tuple[str, str, dict[str, Any]]]:
    """Every endpoint, aimed at restaurant A's objects (ids of A's run and product)."""
    a = stack.restaurants["A"]
    with stack.conn() as conn:
        run_id = conn.execute("select max(id) as id from loyverse.loyverse_import_runs where restaurant_id = %s",
                              (a,)).fetchone()["id"]
        product = str(conn.execute("select id from public.products where restaurant_id = %s limit 1",
                                   (a,)).fetchone()["id"])
    assert run_id and product
    return [
        ("GET", "/menu/preview", {"params": {"restaurant_id": a}}),
        ("POST", "/menu/import", {"json": {"restaurant_id": a}}),
        ("GET", "/menu/status", {"params": {"run_id": run_id}}),
        ("GET", "/menu/runs", {"params": {"restaurant_id": a}}),
        ("POST", "/menu/undo", {"json": {"run_id": run_id}}),
        ("GET", "/sync/status", {"params": {"restaurant_id": a}}),
        ("GET", "/sync/timeline", {"params": {"restaurant_id": a}}),
        ("POST", "/sync/trigger", {"json": {"restaurant_id": a}}),
        ("GET", "/sync/history", {"params": {"restaurant_id": a}}),
        ("GET", "/sync/problems", {"params": {"restaurant_id": a}}),
        ("POST", "/sync/retry", {"json": {"restaurant_id": a, "product_id": product}}),
        ("POST", "/sync/resolve", {"json": {"restaurant_id": a, "keep": "ours"}}),
        ("GET", "/sync/held", {"params": {"restaurant_id": a}}),
        ("POST", "/sync/held/approve", {"json": {"restaurant_id": a, "product_id": product}}),
        ("POST", "/sync/held/reject", {"json": {"restaurant_id": a}}),
        ("GET", "/sync/settings", {"params": {"restaurant_id": a}}),
        ("PUT", "/sync/settings", {"json": {"restaurant_id": a, "sync_frequency": "MANUAL"}}),
        ("GET", "/audit", {"params": {"restaurant_id": a}}),
    ]


def test_every_endpoint_refuses_a_missing_revoked_or_other_restaurants_key(stack, imported):
    endpoints = _endpoints(stack)
    served = {p.removeprefix(API) for p in stack.openapi()["paths"]}
    assert served == {path for _, path, _ in endpoints}, "the matrix must cover every endpoint"
    a = stack.restaurants["A"]
    # the worker may write PRICE_SYNC rows meanwhile: count what people did
    audited = ("select count(*) as n from loyverse.loyverse_sync_logs where sync_type <> 'PRICE_SYNC'")
    with stack.conn() as conn:
        before = conn.execute(audited).fetchone()["n"]
    before_settings = _settings_row(stack, a)
    refusals = 0
    for who, wanted in ((None, 401), ("revoked", 401), ("B", (403, 404))):
        with stack.client(who) as c:
            for method, path, kw in endpoints:
                response = c.request(method, API + path, **kw)
                body = check(response, stack, wanted)
                assert body["error"]["message"], (who, path)
                refusals += 1
    assert refusals == 3 * len(endpoints)
    with stack.conn() as conn:
        assert conn.execute(audited).fetchone()["n"] == before
    assert _settings_row(stack, a) == before_settings
    # and a bearer of garbage
    with stack.client() as c:
        r = c.get(f"{API}/sync/status", headers={"authorization": "Bearer lvs_" + "x" * 43})
        assert check(r, stack, 401)["error"]["field"] == "authorization"


_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


def _bodies(properties: list[str]) -> st.SearchStrategy[Any]:
    known = st.dictionaries(st.sampled_from(properties), _json, max_size=len(properties)) if properties else st.just({})
    return st.one_of(known, _json, st.dictionaries(st.text(max_size=8), _json, max_size=3))


@pytest.mark.slow
def test_fuzzed_bodies_get_4xx_never_500(stack, imported):
    """Random JSON against each body, random query values against each GET of the OpenAPI
    document, with an admin key: never a 5xx."""
    doc = stack.openapi()
    schemas = doc["components"]["schemas"]
    targets = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            ref = (op.get("requestBody") or {}).get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
            if ref:
                props = list(schemas[ref.rsplit("/", 1)[1]].get("properties", {}))
                targets.append((method.upper(), path, props))
    assert len(targets) == 8  # import, undo, trigger, retry, resolve, held approve/reject, settings
    client = stack.client("admin")
    # the undo endpoint must not undo A's import: point fuzzed run ids at nothing real
    statuses: list[int] = []

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(data=st.data())
    def one(data: st.DataObject) -> None:
        method, path, props = data.draw(st.sampled_from(targets))
        body = data.draw(_bodies(props))
        if isinstance(body, dict) and path.endswith("/menu/undo") and isinstance(body.get("run_id"), int):
            body["run_id"] = 10**12  # never undo the module's real import
        response = client.request(method, path, content=json.dumps(body))
        assert stack.token not in response.text
        assert response.status_code < 500, f"{method} {path} {body!r}: {response.status_code} {response.text[:300]}"
        statuses.append(response.status_code)

    one()

    gets = [(path, [p["name"] for p in op.get("parameters", [])]) for path, ops in doc["paths"].items()
            for method, op in ops.items() if method == "get"]
    assert len(gets) == 10
    _param = st.one_of(st.text(max_size=12), st.integers(min_value=-(2**70), max_value=2**70).map(str),
                       st.sampled_from(["nan", "inf", "-1", "0", "true", stack.restaurants["B"], "\x00"]))

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(data=st.data())
    def one_get(data: st.DataObject) -> None:
        path, names = data.draw(st.sampled_from(gets))
        params = data.draw(st.dictionaries(st.sampled_from(names), _param, max_size=len(names)))
        if path.endswith("/menu/preview"):
            params["restaurant_id"] = "not-a-uuid"  # never fetch a menu here: only validation is fuzzed
        response = client.get(path, params=params)
        assert stack.token not in response.text
        assert response.status_code < 500, f"GET {path} {params!r}: {response.status_code} {response.text[:300]}"
        statuses.append(response.status_code)

    one_get()
    client.close()
    assert any(400 <= s < 500 for s in statuses)


def _console_session(stack, who: str | None):
    """An HTTP client signed in to the console with `who`'s key (None: not signed in), and its CSRF token."""
    import re

    c = stack.client()
    page = c.get("/console/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    if who is not None:
        r = c.post("/console/login", data={"csrf": csrf, "api_key": stack.keys[who]})
        assert r.status_code == (303 if who != "revoked" else 401)
        csrf = re.search(r'name="csrf" value="([^"]+)"', c.get("/console/login").text).group(1)
    return c, csrf


def test_every_console_page_refuses_no_session_a_revoked_key_another_restaurant_and_a_missing_csrf(stack, imported):
    a = stack.restaurants["A"]
    with stack.conn() as conn:
        run_id = conn.execute("select max(id) as id from loyverse.loyverse_import_runs where restaurant_id = %s",
                              (a,)).fetchone()["id"]
    base = f"/console/r/{a}"
    gets = [f"{base}/", f"{base}/settings", f"{base}/import", f"{base}/import/runs/{run_id}"]
    posts = [f"{base}/trigger", f"{base}/retry", f"{base}/resolve", f"{base}/settings", f"{base}/import/select",
             f"{base}/import/conflicts", f"{base}/import/mapping", f"{base}/import/summary", f"{base}/import/start",
             f"{base}/import/runs/{run_id}/undo"]
    audited = "select count(*) as n from loyverse.loyverse_sync_logs where sync_type <> 'PRICE_SYNC'"
    with stack.conn() as conn:
        before = conn.execute(audited).fetchone()["n"]
    for who, wanted in ((None, 303), ("revoked", 303), ("B", 403)):
        c, csrf = _console_session(stack, who)
        try:
            for path in gets:
                r = c.get(path, follow_redirects=False)
                assert r.status_code == wanted, (who, path, r.status_code)
                if wanted == 303:
                    assert r.headers["location"] == "/console/login"
                assert stack.token not in r.text
            for path in posts:
                r = c.post(path, data={"csrf": csrf, "keep": "ours"}, follow_redirects=False)
                assert r.status_code == wanted, (who, path, r.status_code)
        finally:
            c.close()
    # A's own session without the CSRF token: refused, nothing done
    c, csrf = _console_session(stack, "A")
    try:
        for path in posts:
            r = c.post(path, data={"keep": "ours"}, follow_redirects=False)
            assert r.status_code == 403 and "reload the page" in r.text, path
        assert c.get(f"{base}/").status_code == 200  # the session itself works
        with stack.conn() as conn:
            assert conn.execute(audited).fetchone()["n"] == before
        # and with it: Sync now, audited as the console user
        r = c.post(f"{base}/trigger", data={"csrf": csrf}, follow_redirects=True)
        assert r.status_code == 200 and "Sync triggered" in r.text
    finally:
        c.close()
    with stack.conn() as conn:
        last = conn.execute("select action, actor from loyverse.audit_trail order by log_id desc limit 1").fetchone()
    assert (last["action"], last["actor"]) == ("MANUAL_TRIGGER", f"console:{stack.key_names['A']}")


def test_the_server_receives_loyverse_webhooks_beside_the_api(stack):
    """One process: `serve` also takes Loyverse's deliveries (issue #16's receiver), stored as
    received; an unknown URL secret is refused and audited."""
    body = json.dumps({"merchant_id": None, "type": "items.update", "created_at": "2030-01-01T00:00:00Z",
                       "items": []}).encode()
    with stack.conn() as conn:
        account_id = conn.execute("select id from loyverse.loyverse_accounts").fetchone()["id"]
        secret = conn.execute("select url_secret from loyverse.inbound_settings_row(%s)",
                              (account_id,)).fetchone()["url_secret"]
        before = conn.execute("select count(*) as n from loyverse.loyverse_inbox").fetchone()["n"]
        with stack.client() as http:
            ok = http.post(f"/loyverse/webhooks/{secret}", content=body)
            unknown = http.post("/loyverse/webhooks/" + "0" * 64, content=body)
        stored = conn.execute("select account_id, body from loyverse.loyverse_inbox order by id").fetchall()[before:]
    assert ok.status_code == 200 and unknown.status_code == 404
    assert [(r["account_id"], bytes(r["body"])) for r in stored] == [(account_id, body)]
    assert "/loyverse/webhooks/{secret}" not in json.dumps(stack.openapi())  # Loyverse's, not the main app's
