"""The /_emulator admin endpoints: log, counters, state dump, price-change log, tokens, reset."""

from __future__ import annotations

import httpx
import pytest

from loyverse_emulator import admin, server


def test_request_log_pages_with_since_and_records_write_bodies(
    client: httpx.Client, adm: admin.AdminClient, mid: str
) -> None:
    client.get("/items", params={"limit": 2})
    client.post("/categories", json={"name": "Logged"})
    rows = adm.requests()
    assert [r["method"] for r in rows] == ["GET", "POST"]
    assert (
        rows[0]["query"] == "limit=2" and rows[0]["status"] == 200 and rows[0]["merchant_id"] == mid
    )
    assert rows[1]["body"] == {"name": "Logged"} and "body" not in rows[0]
    assert adm.requests(since=rows[0]["id"]) == rows[1:]


def test_counters_by_status_and_writes(
    client: httpx.Client, adm: admin.AdminClient, mid: str
) -> None:
    client.get("/merchant/")
    client.get("/items/nope")
    client.post("/categories", json={"name": "Counted"})
    counters = adm.counters()[mid]
    assert counters["requests"] == 3 and counters["writes"] == 1
    assert counters["by_status"] == {"200": 2, "404": 1}
    adm.reset()
    assert adm.counters()[mid]["requests"] == 0 and adm.requests() == []


def test_state_dump_and_price_change_log(
    client: httpx.Client, adm: admin.AdminClient, mid: str, emu: server.EmulatorServer
) -> None:
    dump = adm.state(mid)[mid]
    assert {"items", "categories", "modifiers", "taxes", "stores"} <= set(dump)
    variant = next(
        v
        for i in dump["items"]
        if not i["deleted_at"]
        for v in i["variants"]
        if v["default_pricing_type"] == "FIXED"
    )
    store = variant["stores"][1]
    body = {
        "variant_id": variant["variant_id"],
        "stores": [{"store_id": store["store_id"], "price": 42.5}],
    }
    assert client.post("/variants", json=body).status_code == 200
    changes = adm.price_changes()
    assert len(changes) == 1
    change = changes[0]
    assert (change["merchant_id"], change["variant_id"], change["store_id"]) == (
        mid,
        variant["variant_id"],
        store["store_id"],
    )
    assert (change["old_price"], change["new_price"]) == (store["price"], 42.5)
    assert emu.state.variant_price(variant["variant_id"], store["store_id"]) == 42.5
    assert adm.price_changes(since=change["id"]) == []


def test_revoked_token_is_401(
    client: httpx.Client, adm: admin.AdminClient, emu: server.EmulatorServer
) -> None:
    assert client.get("/merchant/").status_code == 200
    adm.revoke_token(emu.token)
    assert client.get("/merchant/").status_code == 401
    with pytest.raises(admin.AdminError):
        adm.revoke_token("never-existed")


def test_modes_validate_and_report(adm: admin.AdminClient, mid: str) -> None:
    assert adm.modes(mid)[mid]["stores_merge"] == "merge"
    assert (
        adm.set_modes(mid, stores_merge="replace", default_price_moves_stores=True)["stores_merge"]
        == "replace"
    )
    with pytest.raises(admin.AdminError):
        adm.set_modes(mid, stores_merge="sideways")
    with pytest.raises(admin.AdminError):
        adm.set_modes("no-such-merchant", stores_merge="merge")


def test_merchants_and_health(adm: admin.AdminClient, emu: server.EmulatorServer) -> None:
    assert adm.health()["status"] == "ok"
    assert adm.merchants() == emu.merchants
    assert emu.base_url.endswith("/v1.0") and emu.admin_url.endswith("/_emulator")
