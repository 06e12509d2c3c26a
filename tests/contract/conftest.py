"""Where the contract tests point: the in-process emulator, or the real Loyverse API.

By default every test runs against an `EmulatorServer` started here (600 items for the first
merchant so pagination has something to walk). With `LOYVERSE_TOKEN` set they run against
`https://api.loyverse.com/v1.0` (or `LOYVERSE_BASE_URL`); tests marked `writes` then need
`LOYVERSE_ALLOW_WRITES=1`, and tests that need emulator-only knobs (modes, faults) skip.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from loyverse_emulator import server

REAL_BASE_URL = "https://api.loyverse.com/v1.0"
MENU_ITEMS = 600


@dataclasses.dataclass
class Target:
    """A base URL and token, plus the emulator when there is one."""

    base_url: str
    token: str
    emulator: server.EmulatorServer | None = None

    @property
    def real(self) -> bool:
        return self.emulator is None

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token or self.token}"},
            timeout=30.0,
        )


@pytest.fixture(scope="session")
def target() -> Iterator[Target]:
    token = os.environ.get("LOYVERSE_TOKEN")
    if token:
        yield Target(os.environ.get("LOYVERSE_BASE_URL", REAL_BASE_URL).rstrip("/"), token)
        return
    emu = server.EmulatorServer(port=0, menu=MENU_ITEMS, seed=7, token="contract-token")
    # The contract suite makes more than 300 requests; the rate-limit test uses its own server.
    for merchant in emu.merchants:
        emu.state.set_modes(merchant["merchant_id"], rate_limit=None)
    with emu:
        yield Target(emu.base_url, emu.token, emu)


@pytest.fixture
def api(target: Target) -> Iterator[httpx.Client]:
    with target.client() as client:
        yield client


@pytest.fixture
def emulator(target: Target) -> server.EmulatorServer:
    """The emulator behind `target`; skips against the real API."""
    if target.emulator is None:
        pytest.skip("needs the emulator (modes/faults are not switchable on the real API)")
    return target.emulator


@pytest.fixture(autouse=True)
def _guard_writes(request: pytest.FixtureRequest) -> None:
    if (
        request.node.get_closest_marker("writes")
        and os.environ.get("LOYVERSE_TOKEN")
        and os.environ.get("LOYVERSE_ALLOW_WRITES") != "1"
    ):
        pytest.skip("writes to the real Loyverse account need LOYVERSE_ALLOW_WRITES=1")


@pytest.fixture
def store_ids(api: httpx.Client) -> list[str]:
    response = api.get("/stores")
    response.raise_for_status()
    return [s["id"] for s in response.json()["stores"] if s.get("deleted_at") is None]


@pytest.fixture
def make_item(api: httpx.Client, store_ids: list[str]) -> Iterator[Any]:
    """Create items with a `Size` option and two priced variants; deleted afterwards."""
    created: list[str] = []

    def make(
        name: str = "Contract test item", prices: tuple[float, float] = (10.0, 12.0)
    ) -> dict[str, Any]:
        body = {
            "item_name": name,
            "option1_name": "Size",
            "variants": [
                {
                    "option1_value": "Small",
                    "default_pricing_type": "FIXED",
                    "default_price": prices[0],
                },
                {
                    "option1_value": "Large",
                    "default_pricing_type": "FIXED",
                    "default_price": prices[1],
                },
            ],
        }
        response = api.post("/items", json=body)
        assert response.status_code == 200, response.text
        item = response.json()
        created.append(item["id"])
        return item

    yield make
    for item_id in created:
        api.delete(f"/items/{item_id}")
