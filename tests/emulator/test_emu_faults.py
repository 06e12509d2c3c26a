"""Fault injection over real sockets: each kind, next-N, after-write, filters, seeding."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from loyverse_emulator import admin, server


def test_fail_next_500_then_normal(client: httpx.Client, adm: admin.AdminClient, mid: str) -> None:
    adm.set_faults(mid, fail_next=2, fail_next_kind="500")
    assert [client.get("/merchant/").status_code for _ in range(3)] == [500, 500, 200]
    assert client.get("/merchant/").status_code == 200


def test_injected_500_and_429_use_the_error_body(
    client: httpx.Client, adm: admin.AdminClient, mid: str
) -> None:
    adm.set_faults(mid, fail_next=1, fail_next_kind="429")
    response = client.get("/items")
    assert response.status_code == 429
    assert response.json()["errors"][0]["code"] == "RATE_LIMITED"
    assert "Retry-After" not in response.headers
    adm.set_faults(mid, p500=1.0)
    response = client.get("/items")
    assert response.json()["errors"][0]["code"] == "INTERNAL_SERVER_ERROR"


def test_drop_closes_without_response(
    client: httpx.Client, adm: admin.AdminClient, mid: str
) -> None:
    adm.set_faults(mid, fail_next=1, fail_next_kind="drop")
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/merchant/")
    assert client.get("/merchant/").status_code == 200  # the client reconnects
    assert adm.requests()[-2]["fault"] == "drop"


def test_timeout_hangs_then_closes(
    emu: server.EmulatorServer, adm: admin.AdminClient, mid: str
) -> None:
    adm.set_faults(mid, fail_next=1, fail_next_kind="timeout", hang_seconds=0.5)
    with (
        httpx.Client(
            base_url=emu.base_url, headers={"Authorization": f"Bearer {emu.token}"}, timeout=0.2
        ) as fast,
        pytest.raises(httpx.ReadTimeout),
    ):
        fast.get("/merchant/")
    adm.set_faults(mid, fail_next=1, fail_next_kind="timeout", hang_seconds=0.2)
    with httpx.Client(
        base_url=emu.base_url, headers={"Authorization": f"Bearer {emu.token}"}, timeout=5
    ) as patient:
        started = time.perf_counter()
        with pytest.raises(httpx.RemoteProtocolError):
            patient.get("/merchant/")
        assert time.perf_counter() - started >= 0.2


def test_slow_response_is_delayed_but_succeeds(
    client: httpx.Client, adm: admin.AdminClient, mid: str
) -> None:
    adm.set_faults(mid, pslow=1.0, delay_seconds=0.3)
    started = time.perf_counter()
    assert client.get("/merchant/").status_code == 200
    assert time.perf_counter() - started >= 0.3


@pytest.mark.parametrize("kind", ["500", "drop"])
def test_fail_after_write_applies_the_write(
    client: httpx.Client, adm: admin.AdminClient, mid: str, emu: server.EmulatorServer, kind: str
) -> None:
    adm.set_faults(mid, fail_after_write_next=1, fail_after_write_kind=kind)
    before = len(emu.state.dump(mid)[mid]["categories"])
    if kind == "500":
        assert client.post("/categories", json={"name": "Applied anyway"}).status_code == 500
    else:
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/categories", json={"name": "Applied anyway"})
    categories = emu.state.dump(mid)[mid]["categories"]
    assert len(categories) == before + 1 and categories[0]["name"] == "Applied anyway"
    # a naive retry duplicates the object: there is no idempotency
    assert client.post("/categories", json={"name": "Applied anyway"}).status_code == 200
    assert [c["name"] for c in emu.state.dump(mid)[mid]["categories"]].count("Applied anyway") == 2


def test_fail_after_write_probability_leaves_reads_alone(
    client: httpx.Client, adm: admin.AdminClient, mid: str
) -> None:
    adm.set_faults(mid, fail_after_write=1.0)
    assert client.get("/items").status_code == 200
    assert client.post("/categories", json={"name": "x"}).status_code == 500


def test_filters_by_method_and_path_prefix(
    client: httpx.Client, adm: admin.AdminClient, mid: str
) -> None:
    adm.set_faults(mid, p500=1.0, methods=["POST"], path_prefix="/variants")
    assert client.get("/variants").status_code == 200
    assert client.post("/categories", json={"name": "ok"}).status_code == 200
    assert client.post("/variants", json={}).status_code == 500


def test_seeded_probabilities_reproduce(
    client: httpx.Client, adm: admin.AdminClient, mid: str
) -> None:
    def run() -> list[int]:
        adm.set_faults(mid, clear=True, p500=0.5, seed=42)
        return [client.get("/merchant/").status_code for _ in range(30)]

    first = run()
    assert first == run()
    assert 500 in first and 200 in first


def test_faults_are_per_merchant(
    emu: server.EmulatorServer, adm: admin.AdminClient, mid: str
) -> None:
    other = emu.merchants[1]
    adm.set_faults(mid, p500=1.0)
    with httpx.Client(
        base_url=emu.base_url, headers={"Authorization": f"Bearer {other['tokens'][0]}"}
    ) as second:
        assert second.get("/merchant/").status_code == 200


def test_bad_fault_settings_are_rejected(adm: admin.AdminClient, mid: str) -> None:
    for bad in ({"p500": 2}, {"fail_next_kind": "boom"}, {"nonsense": 1}):
        kwargs: dict[str, Any] = dict(bad)
        with pytest.raises(admin.AdminError):
            adm.set_faults(mid, **kwargs)


def test_mangle_edits_drops_and_duplicates_one_item_of_a_list(
    client: httpx.Client, adm: admin.AdminClient, mid: str
) -> None:
    items = client.get("/items", params={"limit": 3}).json()["items"]
    a, b, c = (i["id"] for i in items)
    ids = ",".join([a, b, c])
    adm.set_faults(mid, mangle=[
        {"methods": ["GET"], "path": "^/items$", "target": a,
         "ops": [{"op": "set", "path": "/variants/*/stores/*/price", "value": "abc"},
                 {"op": "remove", "path": "/item_name"}]},
        {"methods": ["GET"], "path": "^/items$", "target": b, "ops": [{"op": "drop"}], "count": 1},
    ])
    got = client.get("/items", params={"items_ids": ids}).json()["items"]
    by_id = {i["id"]: i for i in got}
    assert set(by_id) == {a, c}  # b dropped, a edited: every matching rule applies
    assert "item_name" not in by_id[a]
    assert {e["price"] for v in by_id[a]["variants"] for e in v["stores"]} == {"abc"}
    # the b rule is used up; an untargeted response is left alone
    got = client.get("/items", params={"items_ids": ids}).json()["items"]
    assert {i["id"] for i in got} == {a, b, c}
    assert client.get(f"/items/{c}").json()["item_name"]
    faults = adm.faults(mid)[mid]["mangle"]
    assert [rule["applied"] for rule in faults] == [2, 1]
    assert adm.requests()[-1]["fault"] is None and adm.requests()[-2]["fault"] == "mangle"

    adm.set_faults(mid, mangle={"path": "^/items", "target": c, "ops": [{"op": "duplicate"}]})
    got = client.get("/items", params={"items_ids": ids}).json()["items"]
    assert [i["id"] for i in got].count(c) == 2


@pytest.mark.parametrize(
    ("rule", "status", "body"),
    [
        ({"body": "<html>Bad gateway</html>", "content_type": "text/html"}, 200,
         b"<html>Bad gateway</html>"),
        ({"body": ""}, 200, b""),
        ({"truncate": 7}, 200, None),
        ({"ops": [{"op": "replace", "value": ["x"]}], "status": 202}, 202, b'["x"]'),
    ],
)
def test_mangle_raw_bodies_and_status_on_a_write_that_is_applied(
    client: httpx.Client, adm: admin.AdminClient, mid: str, emu: server.EmulatorServer,
    rule: dict[str, Any], status: int, body: bytes | None,
) -> None:
    item = client.get("/items", params={"limit": 1}).json()["items"][0]
    adm.set_faults(mid, mangle={"methods": ["POST"], "path": "^/items$", "target": item["id"],
                                "count": 1, **rule})
    response = client.post("/items", json={"id": item["id"], "item_name": "Renamed",
                                           "variants": item["variants"]})
    assert response.status_code == status
    if body is not None:
        assert response.content == body
    else:
        assert len(response.content) == 7 and response.content.startswith(b"{")
    if "content_type" in rule:
        assert response.headers["Content-Type"] == "text/html"
    assert emu.state.get_object("items", item["id"], mid)["item_name"] == "Renamed"  # applied
    again = client.post("/items", json={"id": item["id"], "item_name": "Again",
                                        "variants": item["variants"]})
    assert again.json()["item_name"] == "Again"  # count 1: used up


def test_mangle_settings_are_validated(adm: admin.AdminClient, mid: str) -> None:
    for bad in ({"ops": [{"op": "explode"}]}, {"path": "("}, {"ops": [{"op": "drop"}]},
                {"count": -1}, {"status": 42}, {"nope": 1}, "rule"):
        with pytest.raises(admin.AdminError):
            adm.set_faults(mid, mangle=[bad])
    assert adm.set_faults(mid, mangle=None)["mangle"] == []
