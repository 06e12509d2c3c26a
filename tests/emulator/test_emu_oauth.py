"""The emulator's OAuth apps over HTTP: the token endpoint, expiry on the time scale, rotation."""

from __future__ import annotations

import json

import httpx
import pytest

from loyverse_emulator import server


@pytest.fixture
def emu():
    # time_scale 4320: the 12 h token lives 10 s of wall time; the tests advance the clock
    with server.EmulatorServer(port=0, menu=2, seed=1, time_scale=4320, oauth_apps=True) as running:
        yield running


def refresh(emu, app, refresh_token, **extra):
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token,
            "client_id": app["client_id"], "client_secret": app["client_secret"], **extra}
    return httpx.post(emu.token_url, data=form, timeout=10)


def merchant(emu, token):
    return httpx.get(emu.base_url + "/merchant/", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_an_app_pair_works_until_the_scaled_expiry_then_401(emu):
    assert emu.oauth_apps[0]["expires_in"] == 10  # 43200 s / 4320
    # at time scale 1 (12 h of wall time) the clock moves only when the test advances it
    with server.EmulatorServer(port=0, menu=0, merchants=1, oauth_apps=True) as real_time:
        app = real_time.oauth_apps[0]
        assert app["expires_in"] == 43200
        assert merchant(real_time, app["access_token"]).status_code == 200
        with real_time.admin() as adm:
            adm.advance_oauth_clock(43200 - 600)
            assert merchant(real_time, app["access_token"]).status_code == 200
            adm.advance_oauth_clock(600)
            got = merchant(real_time, app["access_token"])
            assert got.status_code == 401 and got.json()["errors"][0]["code"] == "UNAUTHORIZED"
            assert adm.oauth()["counters"]["expired_401"] == 1


def test_refresh_rotates_the_refresh_token_and_a_used_one_is_refused(emu):
    app = emu.oauth_apps[0]
    first = refresh(emu, app, app["refresh_token"])
    assert first.status_code == 200, first.text
    pair = first.json()
    assert set(pair) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert pair["token_type"] == "Bearer" and pair["expires_in"] == 10
    assert pair["refresh_token"] != app["refresh_token"]
    assert merchant(emu, pair["access_token"]).json()["id"] == app["merchant_id"]
    again = refresh(emu, app, app["refresh_token"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert refresh(emu, app, pair["refresh_token"]).status_code == 200
    with emu.admin() as adm:
        counters = adm.oauth()["counters"]
    assert counters["refreshes"] == 2 and counters["reused"] == 1 and counters["rejected"] == 1


def test_keep_rotation_returns_the_same_refresh_token(emu):
    app = emu.oauth_apps[0]
    with emu.admin() as adm:
        adm.set_oauth(rotation="keep")
    for _ in range(2):
        got = refresh(emu, app, app["refresh_token"])
        assert got.status_code == 200 and got.json()["refresh_token"] == app["refresh_token"]


def test_a_lost_answer_still_spends_the_refresh_token(emu):
    app = emu.oauth_apps[0]
    with emu.admin() as adm:
        adm.set_oauth(lose_next=1)
        lost = refresh(emu, app, app["refresh_token"])
        assert lost.status_code == 500
        assert refresh(emu, app, app["refresh_token"]).json()["error"] == "invalid_grant"
        assert adm.oauth()["counters"]["lost"] == 1


@pytest.mark.parametrize(("change", "status", "error"), [
    ({"client_secret": "wrong"}, 401, "invalid_client"),
    ({"client_id": "nobody"}, 401, "invalid_client"),
    ({"grant_type": "password"}, 400, "unsupported_grant_type"),
    ({"grant_type": ""}, 400, "invalid_request"),
    ({"refresh_token": ""}, 400, "invalid_request"),
])
def test_bad_token_requests_get_rfc6749_errors(emu, change, status, error):
    app = emu.oauth_apps[0]
    form = {"grant_type": "refresh_token", "refresh_token": app["refresh_token"],
            "client_id": app["client_id"], "client_secret": app["client_secret"], **change}
    got = httpx.post(emu.token_url, data=form, timeout=10)
    assert (got.status_code, got.json()["error"]) == (status, error)
    assert refresh(emu, app, app["refresh_token"]).status_code == 200  # nothing was spent


def test_json_body_and_get_are_refused(emu):
    app = emu.oauth_apps[0]
    assert httpx.post(emu.token_url, json={"grant_type": "refresh_token"}, timeout=10).status_code == 400
    assert httpx.get(emu.token_url, timeout=10).status_code == 405
    assert refresh(emu, app, app["refresh_token"]).status_code == 200


def test_admin_settings_are_validated_and_summary_shows_no_secret(emu):
    app = emu.oauth_apps[1]
    with emu.admin() as adm:
        with pytest.raises(Exception, match="rotation must be one of strict, keep"):
            adm.set_oauth(rotation="sometimes")
        with pytest.raises(Exception, match="ttl_seconds must be a positive number"):
            adm.set_oauth(ttl_seconds=0)
        with pytest.raises(Exception, match="seconds must be a positive number"):
            adm.advance_oauth_clock(-1)
        assert adm.set_oauth(ttl_seconds=8640)["expires_in"] == 2
        new = adm.create_oauth_app(app["merchant_id"], client_id="mine")
        assert new["client_id"] == "mine" and new["expires_in"] == 2
        text = str(adm.oauth())
    for secret in (app["client_secret"], app["refresh_token"], app["access_token"], new["refresh_token"]):
        assert secret not in text


def test_the_emulator_oauth_command_sets_advances_and_validates(emu):
    from click.testing import CliRunner

    from loyverse_sync.cli.emulator import emulator

    runner = CliRunner()
    got = runner.invoke(emulator, ["oauth", "--url", emu.admin_url, "--ttl", "8640", "--rotation", "keep",
                                   "--advance", "43200"])
    assert got.exit_code == 0, got.output
    doc = json.loads(got.output)
    assert doc["ttl_seconds"] == 8640 and doc["rotation"] == "keep" and doc["expires_in"] == 2
    assert merchant(emu, emu.oauth_apps[0]["access_token"]).status_code == 401  # advanced past expiry
    bad = runner.invoke(emulator, ["oauth", "--url", emu.admin_url, "--rotation", "sometimes"])
    assert bad.exit_code == 2 and "sometimes" in bad.output
    assert emu.state.oauth.rotation == "keep"
