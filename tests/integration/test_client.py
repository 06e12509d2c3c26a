"""The Loyverse client against the emulator over real HTTP.

Faults are scripted through the emulator's admin API; what the emulator logged is the
ground truth for how many requests were sent and what was applied.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from loyverse_emulator import admin, server
from loyverse_sync import accounts, db
from loyverse_sync.loyverse import client as lv_client
from loyverse_sync.loyverse import errors, restate
from loyverse_sync.loyverse import governor as lv_governor

TOKEN = "tok-9c2e51d4a7f3-secret"


class RecordingGovernor:
    """A governor that lets everything through and counts what the client asked."""

    def __init__(self) -> None:
        self.acquired = 0
        self.penalties: list[float | None] = []
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            self.acquired += 1

    def penalize(self, retry_after: float | None) -> None:
        with self._lock:
            self.penalties.append(retry_after)


@pytest.fixture
def emu() -> Iterator[server.EmulatorServer]:
    with server.EmulatorServer(host="127.0.0.1", port=0, menu="demo", seed=0, token=TOKEN) as e:
        yield e


@pytest.fixture(scope="module")
def big_emu() -> Iterator[server.EmulatorServer]:
    with server.EmulatorServer(host="127.0.0.1", port=0, menu=10_000, seed=0, token=TOKEN) as e:
        yield e


@pytest.fixture
def adm(emu: server.EmulatorServer) -> Iterator[admin.AdminClient]:
    with admin.AdminClient(emu.admin_url) as a:
        yield a


@pytest.fixture
def mid(emu: server.EmulatorServer) -> str:
    return str(emu.merchants[0]["merchant_id"])


def make_client(emu: server.EmulatorServer, **kwargs: Any) -> lv_client.LoyverseClient:
    # a generous timeout: a page of 250 items on a loaded box; the timeout tests set their own
    options: dict[str, Any] = {"backoff_base": 0.01, "backoff_max": 0.05, "timeout": 30.0}
    options.update(kwargs)
    return lv_client.LoyverseClient(emu.base_url, TOKEN, **options)


def api_log(adm: admin.AdminClient, method: str | None = None) -> list[dict[str, Any]]:
    """The emulator's /v1.0 request log, once it has settled.

    The emulator logs a request just after sending its response, so a client can read the
    log a moment before the last entry lands: read until two reads agree.
    """
    rows = adm.requests()
    while True:
        time.sleep(0.03)
        again = adm.requests()
        if len(again) == len(rows):
            break
        rows = again
    api = [r for r in rows if r["path"].startswith("/v1.0")]
    return [r for r in api if method is None or r["method"] == method]


def _new_item(name: str, sku: str) -> dict[str, Any]:
    return {
        "item_name": name,
        "variants": [{"sku": sku, "default_pricing_type": "FIXED", "default_price": 4.5}],
    }


def _items_named(lv: lv_client.LoyverseClient, name: str) -> list[dict[str, Any]]:
    return [i for i in lv.iter_items() if i["item_name"] == name]


def _new_webhook(url: str) -> dict[str, Any]:
    return {"type": "items.update", "url": url, "status": "ENABLED"}


def _create_item_safely(lv: lv_client.LoyverseClient, body: dict[str, Any]) -> dict[str, Any]:
    """An item created through ``create_safely`` (the product creates only webhooks that way):
    the lookup takes the newest item created since ``since`` with the body's name and SKUs."""
    skus = {v["sku"] for v in body["variants"]}

    def find(since: Any) -> dict[str, Any] | None:
        found = [i for i in lv.iter_items(updated_at_min=since) if i["item_name"] == body["item_name"]
                 and skus <= {v.get("sku") for v in i["variants"]}]
        return max(found, key=lambda i: i["created_at"], default=None)

    return lv.create_safely("/items", body, find_existing=find)


# -----------------------------------------------------------------------------------------
# Pagination
# -----------------------------------------------------------------------------------------


@pytest.mark.slow  # a few seconds: left out of the fast lane, run by CI
def test_a_ten_thousand_item_menu_arrives_whole(big_emu: server.EmulatorServer) -> None:
    with admin.AdminClient(big_emu.admin_url) as adm:
        adm.reset()
        expected = {i["id"] for i in next(iter(adm.state().values()))["items"]}
        with make_client(big_emu) as lv:
            pages = list(lv.iter_item_pages(show_deleted=True))
            live = sum(1 for _ in lv.iter_items())
        log = api_log(adm)
    ids = [item["id"] for _, items in pages for item in items]
    assert len(expected) == 10_000
    assert len(ids) == len(set(ids)) == 10_000 and set(ids) == expected
    assert [n for n, _ in pages] == list(range(1, 41))
    assert all(len(items) == 250 for _, items in pages)
    deleted = sum(1 for _, items in pages for i in items if i["deleted_at"])
    assert deleted > 0 and live == 10_000 - deleted  # plain lists hide deleted items
    assert all(r["status"] == 200 for r in log) and len(log) == 40 + -(-live // 250)


def test_get_items_fetches_by_id_in_chunks_of_250(big_emu: server.EmulatorServer) -> None:
    with make_client(big_emu) as lv, admin.AdminClient(big_emu.admin_url) as adm:
        wanted = [
            i["id"]
            for _, page in zip(range(3), lv.iter_item_pages(), strict=False)
            for i in page[1]
        ]
        wanted = wanted[:600][::-1]  # any order: the answer follows it
        adm.reset()
        got = lv.get_items([*wanted, str(uuid.uuid4())])
        log = api_log(adm)
    assert [i["id"] for i in got] == wanted
    assert len(log) == 3
    assert all("items_ids=" in r["query"] for r in log)


def test_dropped_connection_mid_pagination_resumes_at_the_same_page(
    emu: server.EmulatorServer, adm: admin.AdminClient, mid: str
) -> None:
    with make_client(emu) as lv:
        expected = {i["id"] for i in lv.iter_items()}
        adm.reset()
        pages = lv.iter_item_pages(limit=5)
        seen = [i["id"] for _, items in (next(pages), next(pages), next(pages)) for i in items]
        adm.set_faults(mid, fail_next=1, fail_next_kind="drop")
        seen += [i["id"] for _, items in pages for i in items]
    assert len(seen) == len(expected) and set(seen) == expected
    log = api_log(adm)
    assert log[3]["fault"] == "drop" and log[3]["status"] is None
    assert log[4]["query"] == log[3]["query"] and log[4]["status"] == 200  # same cursor again


# -----------------------------------------------------------------------------------------
# Retries of requests that are safe to repeat
# -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("500", 500, "INTERNAL_SERVER_ERROR"),
        ("429", 429, "RATE_LIMITED"),
        ("drop", None, "CONNECTION_DROPPED"),
        ("timeout", None, "TIMEOUT"),
    ],
)
def test_get_is_retried_through_transient_failures(
    emu: server.EmulatorServer,
    adm: admin.AdminClient,
    mid: str,
    kind: str,
    status: int | None,
    code: str,
) -> None:
    adm.set_faults(mid, fail_next=2, fail_next_kind=kind, hang_seconds=1.0)
    records: list[lv_client.RequestRecord] = []
    gov = RecordingGovernor()
    with make_client(emu, timeout=0.25, on_request=records.append, governor=gov) as lv:
        assert lv.get_merchant()["id"] == mid
    assert [(r.status, r.error_code) for r in records] == [(status, code)] * 2 + [(200, None)]
    assert [r.attempt for r in records] == [1, 2, 3]
    assert gov.acquired == 3  # a slot before every attempt, retries included
    assert gov.penalties == ([None, None] if kind == "429" else [])
    assert len(_wait_for_log(adm, 3)) == 3  # a hung request is logged when the server gives up


def test_get_gives_up_after_max_attempts_with_the_typed_error(
    emu: server.EmulatorServer, adm: admin.AdminClient, mid: str
) -> None:
    adm.set_faults(mid, fail_next=10, fail_next_kind="500")
    with make_client(emu, max_attempts=3) as lv, pytest.raises(errors.ServerError) as info:
        lv.list_stores()
    assert str(info.value) == "GET /stores -> 500 INTERNAL_SERVER_ERROR: Injected fault"
    assert not info.value.ambiguous  # a GET changes nothing
    assert len(api_log(adm)) == 3


@pytest.mark.parametrize("fault", ["fail_next", "fail_after_write_next"])
@pytest.mark.parametrize("kind", ["500", "drop"])
def test_post_with_an_id_is_an_upsert_and_is_retried(
    emu: server.EmulatorServer, adm: admin.AdminClient, mid: str, fault: str, kind: str
) -> None:
    with make_client(emu) as lv:
        item = next(i for i in lv.iter_items() if i["variants"] and i["variants"][0].get("stores"))
        variant_id = item["variants"][0]["variant_id"]
        prices = {(variant_id, s["store_id"]): 9.75 for s in item["variants"][0]["stores"]}
        adm.reset()
        kind_key = "fail_next_kind" if fault == "fail_next" else "fail_after_write_kind"
        settings: dict[str, Any] = {fault: 1, kind_key: kind}
        adm.set_faults(mid, methods=["POST"], **settings)
        result = lv.post_item(restate.item_body(item, prices))  # as the price sync writes
        assert _store_prices(result, variant_id) == {9.75}
        assert _store_prices(lv.get_item(item["id"]), variant_id) == {9.75}
    posts = api_log(adm, "POST")
    assert len(posts) == 2 and posts[-1]["status"] == 200


def _store_prices(item: dict[str, Any], variant_id: str) -> set[Any]:
    return {s["price"] for v in item["variants"] if v["variant_id"] == variant_id for s in v["stores"]}


def test_delete_retried_after_the_first_attempt_deleted_counts_as_done(
    emu: server.EmulatorServer, adm: admin.AdminClient, mid: str
) -> None:
    with make_client(emu) as lv:
        hook = lv.create_webhook_safely(_new_webhook("http://127.0.0.1:9/deleted"))
        adm.set_faults(
            mid, methods=["DELETE"], fail_after_write_next=1, fail_after_write_kind="drop"
        )
        assert lv.delete_webhook(hook["id"])["deleted_object_ids"][0] == hook["id"]
        assert hook["id"] not in {h["id"] for h in lv.list_webhooks()}
    assert [r["status"] for r in api_log(adm, "DELETE")] == [None, 404]


# -----------------------------------------------------------------------------------------
# Creates: never blindly repeated
# -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "exc_type"), [("500", errors.ServerError), ("drop", errors.TransportFailure)]
)
def test_post_without_an_id_is_not_retried_after_an_ambiguous_failure(
    emu: server.EmulatorServer,
    adm: admin.AdminClient,
    mid: str,
    kind: str,
    exc_type: type[errors.LoyverseError],
) -> None:
    adm.set_faults(mid, methods=["POST"], fail_after_write_next=1, fail_after_write_kind=kind)
    with make_client(emu) as lv:
        with pytest.raises(exc_type) as info:
            lv.post_item(_new_item("Flat white", "FW-1"))
        assert info.value.ambiguous and info.value.retryable
        assert len(_items_named(lv, "Flat white")) == 1  # applied once, never twice
    assert len(api_log(adm, "POST")) == 1


@pytest.mark.parametrize("kind", ["500", "drop"])
def test_safe_create_finds_the_item_the_failed_post_created(
    emu: server.EmulatorServer, adm: admin.AdminClient, mid: str, kind: str
) -> None:
    with make_client(emu) as lv:
        # A same-named item from before must not be mistaken for the new one.
        old = lv.post_item(_new_item("Cortado", "CO-OLD"))
        adm.reset()
        adm.set_faults(mid, methods=["POST"], fail_after_write_next=1, fail_after_write_kind=kind)
        item = _create_item_safely(lv, _new_item("Cortado", "CO-1"))
        named = _items_named(lv, "Cortado")
    assert item["id"] != old["id"]
    assert [v["sku"] for v in item["variants"]] == ["CO-1"]
    assert sorted(i["id"] for i in named) == sorted([old["id"], item["id"]])
    log = api_log(adm)
    assert len([r for r in log if r["method"] == "POST"]) == 1
    lookups = [r for r in log if r["method"] == "GET" and "updated_at_min=" in r["query"]]
    assert lookups, "create_safely asked the lookup instead of posting again"


def test_safe_create_posts_again_when_the_failed_post_was_not_applied(
    emu: server.EmulatorServer, adm: admin.AdminClient, mid: str
) -> None:
    adm.set_faults(mid, methods=["POST"], fail_next=1, fail_next_kind="500")
    with make_client(emu) as lv:
        item = _create_item_safely(lv, _new_item("Macchiato", "MA-1"))
        assert [i["id"] for i in _items_named(lv, "Macchiato")] == [item["id"]]
    assert [r["status"] for r in api_log(adm, "POST")] == [500, 200]


def test_safe_create_repeats_a_rate_limited_post_without_a_lookup(
    emu: server.EmulatorServer, adm: admin.AdminClient, mid: str
) -> None:
    adm.set_faults(mid, methods=["POST"], fail_next=2, fail_next_kind="429")
    with make_client(emu) as lv:
        _create_item_safely(lv, _new_item("Mocha", "MO-1"))
    log = api_log(adm)
    assert [r["status"] for r in log] == [429, 429, 200]  # a 429 was never applied


def test_safe_create_of_a_webhook_after_fail_after_write(
    emu: server.EmulatorServer, adm: admin.AdminClient, mid: str
) -> None:
    url = "http://127.0.0.1:9/created-once"
    adm.set_faults(mid, methods=["POST"], fail_after_write_next=1, fail_after_write_kind="drop")
    with make_client(emu) as lv:
        hook = lv.create_webhook_safely(_new_webhook(url))
        same = [h for h in lv.list_webhooks() if h["url"] == url]
    assert [h["id"] for h in same] == [hook["id"]]
    assert len(api_log(adm, "POST")) == 1


# -----------------------------------------------------------------------------------------
# Rate limiting
# -----------------------------------------------------------------------------------------


def test_a_429_storm_is_ridden_out(
    emu: server.EmulatorServer, adm: admin.AdminClient, mid: str
) -> None:
    adm.set_modes(mid, retry_after=0.05)
    adm.set_faults(mid, p429=0.6, seed=7)
    gov = RecordingGovernor()
    with make_client(emu, max_attempts=12, governor=gov) as lv:
        items = list(lv.iter_items(limit=5))
    adm.clear_faults(mid)
    log = api_log(adm)
    limited = [r for r in log if r["status"] == 429]
    assert len(items) == len({i["id"] for i in items}) >= 30
    assert len(limited) >= 5
    assert gov.penalties == [0.05] * len(limited)  # every 429 reported to the governor
    assert gov.acquired == len(log)


def test_retry_after_is_honoured_between_attempts(
    emu: server.EmulatorServer, adm: admin.AdminClient, mid: str
) -> None:
    adm.set_modes(mid, retry_after=0.3)
    adm.set_faults(mid, fail_next=1, fail_next_kind="429")
    with make_client(emu) as lv:
        lv.get_merchant()
    first, second = api_log(adm)
    gap_ms = _ms(second["time"]) - _ms(first["time"])
    assert gap_ms >= 290  # log times are whole milliseconds


def test_the_servers_own_rate_limit_is_ridden_out_with_the_shared_governor(
    emu: server.EmulatorServer, adm: admin.AdminClient, mid: str, dsn: str, connector: db.Connector,
    fernet_key: bytes,
) -> None:
    # 40 requests per 1 s on the server, and the account's governor paces to the same budget.
    # The server counts arrivals, the governor send instants: on a loaded box a request delayed
    # in transit can land beside the next one and get a 429, which the client rides out. What
    # must hold whatever the machine's speed: every request succeeds, and in the governor's own
    # clock (the database's) no 1 s window holds more than 40 sends.
    adm.set_modes(mid, rate_limit=40, rate_window_seconds=1.0, retry_after=0.1)
    with connector.connection() as conn:
        account_id = accounts.add_account(conn, name="paced", token=TOKEN, base_url=emu.base_url,
                                          rate_limit_requests=40, rate_limit_window_seconds=1.0)
    sends: list[float] = []

    class Recording(lv_governor.PostgresGovernor):
        def take(self, requests: int = 1) -> float:
            wait = super().take(requests)
            at = self._call("select extract(epoch from refreshed_at)::float8 from"
                            " loyverse.loyverse_account_rate_state where account_id = %(account_id)s",
                            {"account_id": self.account_id})
            sends.append(float(at) + wait)
            return wait

    with make_client(emu, governor=Recording(connector, account_id), max_attempts=8) as lv:
        for _ in range(80):
            lv.get_merchant()
    assert len([r for r in api_log(adm) if r["status"] == 200 and r["path"].endswith("/merchant/")]) == 80
    assert len(sends) >= 80
    busiest = max(sum(1 for t in sends if s <= t < s + 1.0) for s in sends)
    assert busiest <= 40


def test_rate_limited_to_the_end_raises_with_retry_after(
    emu: server.EmulatorServer, adm: admin.AdminClient, mid: str
) -> None:
    adm.set_modes(mid, retry_after=0.01)
    adm.set_faults(mid, fail_next=10, fail_next_kind="429")
    with make_client(emu, max_attempts=3) as lv, pytest.raises(errors.RateLimited) as info:
        lv.get_item("x")
    assert info.value.retry_after == pytest.approx(0.01)
    assert len(api_log(adm)) == 3


# -----------------------------------------------------------------------------------------
# Errors and token hygiene
# -----------------------------------------------------------------------------------------


def test_loyverse_errors_become_typed_exceptions(
    emu: server.EmulatorServer, adm: admin.AdminClient
) -> None:
    missing = str(uuid.uuid4())
    with make_client(emu) as lv:
        with pytest.raises(errors.NotFound) as not_found:
            lv.get_item(missing)
        assert not_found.value.code == "NOT_FOUND"
        assert str(not_found.value).startswith(f"GET /items/{missing} -> 404 NOT_FOUND: ")

        with pytest.raises(errors.ValidationError) as invalid:
            lv.post_item({"item_name": "x", "color": "MAUVE"})
        assert invalid.value.code == "INVALID_VALUE" and invalid.value.field
        assert not invalid.value.retryable and not invalid.value.ambiguous

        with pytest.raises(errors.NotFound):
            lv.post_item({"id": missing, "item_name": "X"})

        with pytest.raises(errors.InvalidCursor):
            list(lv._iter("/items", "items", {"cursor": "not-a-cursor"}))

        with pytest.raises(ValueError, match="limit"):
            list(lv.iter_items(limit=251))  # refused before sending

        adm.revoke_token(TOKEN)
        with pytest.raises(errors.Unauthorized) as unauthorized:
            lv.get_merchant()
        assert unauthorized.value.status == 401
    statuses = [r["status"] for r in api_log(adm)]
    assert statuses == [404, 400, 404, 400, 401]  # none of these is retried


def test_the_token_never_reaches_logs_exceptions_or_records(
    emu: server.EmulatorServer,
    adm: admin.AdminClient,
    mid: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="loyverse_sync")
    records: list[lv_client.RequestRecord] = []
    failures: list[BaseException] = []
    adm.set_faults(mid, fail_next=3, fail_next_kind="drop")
    with make_client(emu, max_attempts=3, on_request=records.append) as lv:
        assert TOKEN not in repr(lv)
        with pytest.raises(errors.TransportFailure) as dropped:
            lv.get_merchant()
        failures.append(dropped.value)
        adm.revoke_token(TOKEN)
        with pytest.raises(errors.Unauthorized) as unauthorized:
            lv.post_item({"item_name": "x"})
        failures.append(unauthorized.value)
    texts = [t for exc in failures for t in (str(exc), repr(exc), repr(vars(exc)))]
    texts += [repr(r) for r in records]
    texts += [r.getMessage() for r in caplog.records]
    texts += [logging.Formatter().format(r) for r in caplog.records]
    assert len(caplog.records) >= 4
    assert [t for t in texts if TOKEN in t] == []


def test_on_request_sees_every_attempt_with_a_templated_endpoint(
    emu: server.EmulatorServer, adm: admin.AdminClient, mid: str
) -> None:
    records: list[lv_client.RequestRecord] = []
    with make_client(emu, on_request=records.append) as lv:
        item_id = next(lv.iter_items())["id"]
        records.clear()
        adm.set_faults(mid, fail_next=1, fail_next_kind="500")
        lv.get_item(item_id)
    assert [(r.method, r.path, r.endpoint, r.status) for r in records] == [
        ("GET", f"/items/{item_id}", "/items/{id}", 500),
        ("GET", f"/items/{item_id}", "/items/{id}", 200),
    ]
    assert all(r.elapsed >= 0 for r in records)


def _wait_for_log(adm: admin.AdminClient, n: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while len(log := api_log(adm)) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return log


def _ms(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso).timestamp() * 1000)
