"""The emulator's back office (a person at the counter) and webhook delivery faults and retries."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from loyverse_emulator import admin, server


class _Receiver(http.server.ThreadingHTTPServer):
    """Answers 500 to the first `fail` requests, then 200; records every body it got."""

    daemon_threads = True

    def __init__(self, fail: int = 0) -> None:
        self.received: list[bytes] = []
        self.fail = fail
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(body)
        failing = self.server.fail > 0
        self.server.fail -= 1
        self.send_response(500 if failing else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def emu() -> Iterator[server.EmulatorServer]:
    with server.EmulatorServer(menu=4, seed=1, stores=1, time_scale=100, webhook_attempts=5) as emu:
        yield emu


def serve(rcv: _Receiver) -> threading.Thread:
    thread = threading.Thread(target=rcv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return thread


def subscribe(emu: server.EmulatorServer, url: str, hook_type: str = "items.update") -> None:
    answer = httpx.post(emu.base_url + "/webhooks", json={"url": url, "type": hook_type, "status": "ENABLED"},
                        headers={"Authorization": f"Bearer {emu.token}"})
    assert answer.status_code == 200


def wait_deliveries(adm: admin.AdminClient, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while len(rows := adm.webhook_deliveries()) < count:
        assert time.monotonic() < deadline, rows
        time.sleep(0.02)
    return rows


def first_variant(emu: server.EmulatorServer) -> tuple[str, str, str]:
    items = emu.state.items()
    item = next(i for i in items if i.get("variants"))
    variant = item["variants"][0]
    return item["id"], variant["variant_id"], variant["stores"][0]["store_id"]


def test_back_office_actions_change_state_and_emit_webhooks_outside_the_api_log(emu):
    rcv = _Receiver()
    thread = serve(rcv)
    item_id, variant_id, store_id = first_variant(emu)
    with emu.admin() as adm:
        subscribe(emu, rcv.url)
        subscribe(emu, rcv.url, "inventory_levels.update")
        api_requests = len(adm.requests())
        adm.set_price(variant_id, store_id, 12.34)
        adm.rename_item(item_id, "Renamed at the counter")
        adm.sell(variant_id, store_id, 2)
        with pytest.raises(admin.AdminError, match="action must be one of"):
            adm.backoffice("paint")
        with pytest.raises(admin.AdminError, match="price must be a non-negative number"):
            adm.set_price(variant_id, store_id, -1)
        adm.delete_item(item_id)
        rows = wait_deliveries(adm, 4)
        assert len(adm.requests()) == api_requests  # none of it went through the API
    rcv.shutdown()
    rcv.server_close()
    thread.join(2)
    bodies = [json.loads(r["body"]) for r in rows]
    assert [b["type"] for b in bodies] == ["items.update", "items.update", "inventory_levels.update",
                                           "items.update"]
    assert bodies[0]["items"][0]["variants"][0]["stores"][0]["price"] == 12.34
    assert bodies[1]["items"][0]["item_name"] == "Renamed at the counter"
    assert bodies[2]["inventory_levels"][0]["in_stock"] == -2
    assert bodies[3]["items"][0]["deleted_at"] is not None
    assert emu.state.variant_price(variant_id, store_id) is not None
    changes = emu.state.price_changes_since(0)
    assert [(c["variant_id"], c["new_price"]) for c in changes] == [(variant_id, 12.34)]


def test_delivery_faults_duplicate_drop_and_reorder(emu):
    rcv = _Receiver()
    thread = serve(rcv)
    _item_id, variant_id, store_id = first_variant(emu)
    with emu.admin() as adm:
        subscribe(emu, rcv.url)
        adm.webhook_faults(duplicate=1)
        adm.set_price(variant_id, store_id, 1)
        adm.webhook_faults(drop=1)
        adm.set_price(variant_id, store_id, 2)
        adm.webhook_faults(reorder=1)
        adm.set_price(variant_id, store_id, 3)
        adm.set_price(variant_id, store_id, 4)
        wait_deliveries(adm, 4)
    rcv.shutdown()
    rcv.server_close()
    thread.join(2)
    prices = [json.loads(b)["items"][0]["variants"][0]["stores"][0]["price"] for b in rcv.received]
    assert prices == [1, 1, 4, 3]  # 1 twice, 2 dropped, 3 held back until after 4


def test_a_failing_receiver_is_retried_on_a_growing_schedule(emu):
    rcv = _Receiver(fail=3)
    thread = serve(rcv)
    _item_id, variant_id, store_id = first_variant(emu)
    with emu.admin() as adm:
        subscribe(emu, rcv.url)
        adm.set_price(variant_id, store_id, 7)
        (row,) = wait_deliveries(adm, 1)
    rcv.shutdown()
    rcv.server_close()
    thread.join(2)
    assert row["status"] == 200 and row["attempts"] == 4 and len(rcv.received) == 4
    assert [emu.dispatcher.retry_delay(n) * 100 for n in (1, 2, 3, 11, 12)] == [1, 2, 4, 900, 900]
