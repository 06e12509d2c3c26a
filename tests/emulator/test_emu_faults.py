"""Fault injection over real sockets: each kind, next-N, after-write, filters, seeding."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from loyverse_sync.emulator import admin, server


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
