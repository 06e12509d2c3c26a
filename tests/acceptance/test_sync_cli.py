"""`loyverse-sync sync ...` and `loyverse-sync worker` as subprocesses, against the emulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from loyverse_sync.emulator import server
from loyverse_sync.pricesync import testing


@pytest.fixture
def emu():
    with server.EmulatorServer(menu=6, seed=4, stores=2, time_scale=100) as emu:
        yield emu


@pytest.fixture
def seed(conn, emu, fernet_key):
    return testing.seed_from_emulator(conn, emu, stores=2, rate_limit_window_seconds=3.0)


@pytest.fixture
def env(dsn, fernet_key):
    return {**os.environ, "DATABASE_URL": dsn}


def run(env, *args, check=True):
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "loyverse-sync"), *args],
                          env=env, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args}: rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_settings_trigger_status_history_and_worker(conn, env, emu, seed):
    rid = next(iter(seed.restaurants.values()))
    out = run(env, "sync", "settings", "set", "--restaurant", rid, "sync_frequency=MANUAL",
              "price_rounding_rule=NEAREST_0.10", "--json")
    assert json.loads(out.stdout)["sync_frequency"] == "MANUAL"
    conn.execute("update public.products set price = price + 0.33 where restaurant_id = %s", (rid,))
    status = json.loads(run(env, "sync", "status", "--restaurant", rid, "--json").stdout)
    assert status[0]["pending"] > 0 and status[0]["due"] == 0
    assert "due now" in run(env, "sync", "trigger", "--restaurant", rid).stdout
    run(env, "worker", "--one-shot", "--concurrency", "2")
    status = json.loads(run(env, "sync", "status", "--restaurant", rid, "--json").stdout)
    assert status[0]["pending"] == 0 and status[0]["synced_last_hour"] > 0
    history = json.loads(run(env, "sync", "history", "--restaurant", rid, "--json").stdout)
    assert {h["sync_type"] for h in history} >= {"PRICE_SYNC", "MANUAL_TRIGGER"}
    assert "ITEMS_TOTAL" in run(env, "sync", "history", "--limit", "5", "--page", "1").stdout
    want = testing.db_prices(conn, seed.account_id)
    have = testing.loyverse_prices(emu, seed.merchant_id)
    assert {k: v for k, v in want.items() if have[k] != v} == {}


def test_bad_input_is_one_line_and_exit_2(env, seed):
    rid = next(iter(seed.restaurants.values()))
    for args, needle in (
        (["sync", "settings", "set", "--restaurant", rid, "sync_frequency=WEEKLY"], "sync_frequency"),
        (["sync", "settings", "set", "--restaurant", rid, "colour=red"], "colour"),
        (["sync", "settings", "set", "--restaurant", rid, "justtext"], "key=value"),
        (["sync", "trigger", "--restaurant", "nowhere"], "nowhere"),
        (["sync", "retry", "--restaurant", rid, "--product", "nope"], "nope"),
        (["sync", "resolve", "--restaurant", rid, "--keep", "ours"], "--all"),
    ):
        proc = run(env, *args, check=False)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert needle in proc.stderr and len(lines) <= 3, proc.stderr


def test_pause_resume_retry_resolve(conn, env, seed):
    rid = next(iter(seed.restaurants.values()))
    assert "Paused" in run(env, "sync", "pause", "--restaurant", rid).stdout
    assert "Already paused" in run(env, "sync", "pause", "--restaurant", rid).stdout
    assert "Resumed" in run(env, "sync", "resume", "--restaurant", rid).stdout
    assert "0 change(s)" in run(env, "sync", "retry", "--failed").stdout
    assert "0 conflict(s)" in run(env, "sync", "resolve", "--restaurant", rid, "--all", "--keep", "theirs").stdout
    shown = json.loads(run(env, "sync", "settings", "show", "--restaurant", rid, "--json").stdout)
    assert shown["paused"] is False


def test_worker_stops_gracefully_on_sigterm(env, seed):
    proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "loyverse-sync"), "worker",
                             "--graceful-timeout", "5"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(2.0)
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=20)
    assert rc == 0 and time.monotonic() - start < 10
