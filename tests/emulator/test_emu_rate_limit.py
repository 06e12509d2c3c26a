"""The sliding-window rate limit: per merchant, shared by tokens, time-scaled, Retry-After."""

from __future__ import annotations

import time

import httpx

from loyverse_emulator import admin, server


def _client(emu: server.EmulatorServer, token: str) -> httpx.Client:
    return httpx.Client(base_url=emu.base_url, headers={"Authorization": f"Bearer {token}"})


def test_budget_recovers_after_the_scaled_window() -> None:
    # time_scale=1000: 300 requests per 0.3 s
    with (
        server.EmulatorServer(port=0, menu="empty", time_scale=1000.0, token="t") as emu,
        _client(emu, "t") as http,
    ):
        with admin.AdminClient(emu.admin_url) as adm:
            adm.set_modes(rate_limit=5)  # keep the burst far shorter than the window
        started = time.monotonic()
        statuses = [http.get("/merchant/").status_code for _ in range(6)]
        if time.monotonic() - started < 0.3:
            assert statuses == [200] * 5 + [429]
        time.sleep(0.35)
        assert http.get("/merchant/").status_code == 200


def test_tokens_of_a_merchant_share_the_budget_other_merchants_do_not(
    emu: server.EmulatorServer, adm: admin.AdminClient, mid: str
) -> None:
    adm.set_modes(mid, rate_limit=3)
    second_token = adm.add_token(mid)
    with (
        _client(emu, emu.token) as first,
        _client(emu, second_token) as second,
        _client(emu, emu.merchants[1]["tokens"][0]) as other,
    ):
        assert [first.get("/merchant/").status_code for _ in range(2)] == [200, 200]
        assert second.get("/merchant/").status_code == 200
        assert second.get("/merchant/").status_code == 429
        assert first.get("/merchant/").status_code == 429
        assert other.get("/merchant/").status_code == 200
    assert adm.counters(mid)[mid]["rate_limited"] == 2
    assert adm.health()["status"] == "ok"  # admin endpoints are never limited


def test_retry_after_only_when_switched_on(
    emu: server.EmulatorServer, adm: admin.AdminClient, mid: str, client: httpx.Client
) -> None:
    adm.set_modes(mid, rate_limit=1)
    client.get("/merchant/")
    assert "Retry-After" not in client.get("/merchant/").headers
    adm.set_modes(mid, retry_after=7)
    response = client.get("/merchant/")
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"


def test_constructor_retry_after() -> None:
    with (
        server.EmulatorServer(port=0, menu="empty", token="t", retry_after=2) as emu,
        _client(emu, "t") as http,
    ):
        emu.state.set_modes(rate_limit=1)
        http.get("/merchant/")
        assert http.get("/merchant/").headers["Retry-After"] == "2"


def test_unauthenticated_requests_do_not_use_budget(
    emu: server.EmulatorServer, adm: admin.AdminClient, mid: str, client: httpx.Client
) -> None:
    adm.set_modes(mid, rate_limit=1)
    with _client(emu, "wrong") as bad:
        assert [bad.get("/merchant/").status_code for _ in range(3)] == [401] * 3
    assert client.get("/merchant/").status_code == 200
