"""--state-from real payloads served back unchanged, and --state persistence."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import httpx
import pytest

from loyverse_emulator import loader, server

REAL = pathlib.Path("/work/shared/loyverse/real")
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason="real payloads not available")


def _all(http: httpx.Client, path: str, key: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 250, **({"cursor": cursor} if cursor else {})}
        body = http.get(path, params=params).json()
        out += body[key]
        cursor = body.get("cursor")
        if not cursor:
            return out


def test_real_payloads_round_trip_unchanged() -> None:
    expected = loader.read_dir(REAL)
    emu = server.EmulatorServer(port=0, state_from=str(REAL), token="real")
    with emu, httpx.Client(base_url=emu.base_url, headers={"Authorization": "Bearer real"}) as http:
        for path, key in (
            ("/items", "items"),
            ("/categories", "categories"),
            ("/stores", "stores"),
            ("/taxes", "taxes"),
            ("/inventory", "inventory_levels"),
        ):
            served = _all(http, path, key)
            by_key = {json.dumps(o, sort_keys=True) for o in served}
            wanted = {json.dumps(o, sort_keys=True) for o in expected[key]}
            assert by_key == wanted, path
        items = {i["id"]: i for i in _all(http, "/items", "items")}
        # item without `description` keeps not having it; key order is kept too
        splash = next(i for i in items.values() if i["item_name"] == "Splash")
        assert "description" not in splash
        chai = next(i for i in items.values() if i["item_name"] == "Chai Latte")
        raw = json.dumps(chai["variants"][0]["stores"][1])
        assert '"price": 7000' in raw  # integral money stays integral
        variant = http.get(f"/variants/{chai['variants'][0]['variant_id']}").json()
        assert variant == chai["variants"][0]


def test_state_file_persists_across_restarts(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "state.json")
    emu = server.EmulatorServer(port=0, menu=10, token="p", state_file=path)
    with emu, httpx.Client(base_url=emu.base_url, headers={"Authorization": "Bearer p"}) as http:
        created = http.post("/categories", json={"name": "Persisted"}).json()
        before = http.get("/items", params={"limit": 250}).json()
    with server.EmulatorServer(port=0, menu="empty", state_file=path) as emu:
        assert emu.token == "p"
        with httpx.Client(base_url=emu.base_url, headers={"Authorization": "Bearer p"}) as http:
            assert http.get(f"/categories/{created['id']}").json()["name"] == "Persisted"
            assert http.get("/items", params={"limit": 250}).json() == before
            # new SKUs continue after the loaded ones
            item = http.post("/items", json={"item_name": "After restart"}).json()
            skus = [v["sku"] for i in before["items"] for v in i["variants"]]
            assert int(item["variants"][0]["sku"]) > max(int(s) for s in skus)
