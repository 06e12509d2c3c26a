"""Fixtures for the emulator's own tests: a fresh demo emulator per test, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from loyverse_emulator import admin, server

TOKEN = "emu-test-token"


@pytest.fixture
def emu() -> Iterator[server.EmulatorServer]:
    with server.EmulatorServer(port=0, menu="demo", seed=3, token=TOKEN) as running:
        yield running


@pytest.fixture
def client(emu: server.EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=emu.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ) as http:
        yield http


@pytest.fixture
def adm(emu: server.EmulatorServer) -> Iterator[admin.AdminClient]:
    with admin.AdminClient(emu.admin_url) as client:
        yield client


@pytest.fixture
def mid(emu: server.EmulatorServer) -> str:
    return emu.merchants[0]["merchant_id"]
