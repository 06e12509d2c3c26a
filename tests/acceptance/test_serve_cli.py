"""`loyverse-sync serve` as operators run it: starts, answers, stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from loyverse_sync import accounts, apikeys


@pytest.mark.slow
def test_serve_answers_the_api_and_the_console_and_stops_on_sigterm(dsn, conn, tmp_path, fernet_key):
    rid = accounts.add_restaurant(conn, "Café Nord")
    key = apikeys.create(conn, "nord", restaurant_id=rid, admin=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update({"DATABASE_URL": dsn, "LOYVERSE_SYNC_HOME": str(tmp_path / "home")})
    proc = subprocess.Popen([sys.executable, "-m", "loyverse_sync", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if c.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "serve did not answer"
                time.sleep(0.1)
            assert c.get("/console/login").status_code == 200
            assert c.get("/console/static/console.css").status_code == 200
            r = c.get("/api/integrations/loyverse/sync/settings", headers={"authorization": f"Bearer {key}"})
            assert r.status_code == 404 and r.json()["error"]["field"] == "restaurant"  # not linked yet
            assert c.get("/api/integrations/loyverse/sync/settings").status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises SIGTERM: systemd counts that a clean stop
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
        if proc.stderr:
            proc.stderr.close()
