"""items.update webhooks, received by a tiny local HTTP server; signed only for OAuth apps."""

from __future__ import annotations

import hashlib
import hmac
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
    daemon_threads = True

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def wait(self, count: int, timeout: float = 5.0) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.received


class _ReceiverHandler(http.server.BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((dict(self.headers), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    rcv = _Receiver()
    thread = threading.Thread(target=rcv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield rcv
    rcv.shutdown()
    rcv.server_close()
    thread.join(2)


def test_personal_token_subscription_is_unsigned(
    client: httpx.Client, receiver: _Receiver, mid: str
) -> None:
    hook = client.post(
        "/webhooks/", json={"url": receiver.url, "type": "items.update", "status": "ENABLED"}
    )
    assert hook.status_code == 200, hook.text
    item = client.post("/items", json={"item_name": "Hooked"}).json()
    headers, body = receiver.wait(1)[0]
    payload = json.loads(body)
    assert list(payload)[:3] == ["merchant_id", "type", "created_at"]
    assert payload["merchant_id"] == mid and payload["type"] == "items.update"
    assert payload["items"][0]["id"] == item["id"]
    assert "X-Loyverse-Signature" not in headers


def test_oauth_app_subscription_is_signed_hex_hmac_sha1(
    emu: server.EmulatorServer,
    adm: admin.AdminClient,
    client: httpx.Client,
    receiver: _Receiver,
    mid: str,
) -> None:
    app_token = adm.add_token(mid, client_secret="s3cret")
    with httpx.Client(
        base_url=emu.base_url, headers={"Authorization": f"Bearer {app_token}"}
    ) as app:
        assert (
            app.post(
                "/webhooks", json={"url": receiver.url, "type": "items.update", "status": "ENABLED"}
            ).status_code
            == 200
        )
    item = client.get("/items", params={"limit": 1}).json()["items"][0]
    assert client.delete(f"/items/{item['id']}").status_code == 200
    headers, body = receiver.wait(1)[0]
    expected = hmac.new(b"s3cret", body, hashlib.sha1).hexdigest()
    assert headers["X-Loyverse-Signature"] == expected
    assert json.loads(body)["items"][0]["deleted_at"] is not None
    deadline = time.monotonic() + 5
    while not adm.webhook_deliveries() and time.monotonic() < deadline:
        time.sleep(0.02)  # the log row is written after the receiver has answered
    assert adm.webhook_deliveries()[0]["signed"] is True


def test_disabled_subscription_gets_nothing(client: httpx.Client, receiver: _Receiver) -> None:
    client.post(
        "/webhooks/", json={"url": receiver.url, "type": "items.update", "status": "DISABLED"}
    )
    client.post("/items", json={"item_name": "Quiet"})
    time.sleep(0.2)
    assert receiver.received == []


def test_webhook_validation(client: httpx.Client, receiver: _Receiver) -> None:
    missing = client.post("/webhooks/", json={"url": receiver.url, "type": "items.update"})
    assert missing.status_code == 400
    assert missing.json()["errors"][0] == {
        "code": "MISSING_REQUIRED_PARAMETER",
        "details": "'status' is required",
        "field": "object.status",
    }
    bad_type = client.post(
        "/webhooks/", json={"url": receiver.url, "type": "inventory.update", "status": "ENABLED"}
    )
    assert bad_type.status_code == 400
    assert (
        client.post(
            "/webhooks/", json={"url": receiver.url, "type": "items.update", "status": "ENABLED"}
        ).status_code
        == 200
    )
    duplicate = client.post(
        "/webhooks/", json={"url": receiver.url, "type": "items.update", "status": "ENABLED"}
    )
    assert duplicate.status_code == 400
    hooks = client.get("/webhooks/", params={"limit": 1}).json()["webhooks"]
    assert len(hooks) == 1 and set(hooks[0]) == {
        "id",
        "merchant_id",
        "url",
        "type",
        "status",
        "created_at",
        "updated_at",
        "deleted_at",
    }
    assert client.delete(f"/webhooks/{hooks[0]['id']}").status_code == 200
    assert client.get(f"/webhooks/{hooks[0]['id']}").status_code == 404
