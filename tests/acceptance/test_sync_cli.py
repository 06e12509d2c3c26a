"""`loyverse-sync sync ...` and `loyverse-sync worker` as subprocesses, against the emulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from loyverse_emulator import server
from tests.support import pricesync as testing


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


def test_prices_changed_while_sync_was_off_reach_loyverse_when_it_is_on_again(conn, env, emu, seed):
    # Before 0057 Loyverse kept the old prices until each product's price changed again.
    rid = next(iter(seed.restaurants.values()))
    run(env, "sync", "settings", "set", "--restaurant", rid, "enabled=false")
    conn.execute("update public.products set price = price + 1 where restaurant_id = %s", (rid,))
    run(env, "worker", "--one-shot", "--concurrency", "2")
    want = testing.db_prices(conn, seed.account_id)
    have = testing.loyverse_prices(emu, seed.merchant_id)
    stale = {k for k, v in want.items() if have[k] != v}
    assert stale  # nothing was sent while sync was off
    out = run(env, "sync", "settings", "set", "--restaurant", rid, "enabled=true").stdout
    assert f"pending price changes: 0 -> {len(stale)}" in out
    run(env, "worker", "--one-shot", "--concurrency", "2")
    have = testing.loyverse_prices(emu, seed.merchant_id)
    assert {k: v for k, v in want.items() if have[k] != v} == {}


@pytest.mark.slow  # a few seconds: left out of the fast lane, run by CI
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
    assert "ITEMS" in run(env, "sync", "history", "--limit", "5", "--page", "1").stdout
    want = testing.db_prices(conn, seed.account_id)
    have = testing.loyverse_prices(emu, seed.merchant_id)
    assert {k: v for k, v in want.items() if have[k] != v} == {}


@pytest.mark.slow  # a few seconds: left out of the fast lane, run by CI
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


def test_worker_stops_gracefully_on_sigterm(conn, env, seed):
    before = conn.execute("select coalesce(max(id), 0) as n from procrastinate_workers").fetchone()["n"]
    proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "loyverse-sync"), "worker",
                             "--graceful-timeout", "5"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    # SIGTERM once the worker runs (it has registered), not after a guessed delay: on a loaded
    # box the interpreter may still be importing after 2 s, and the signal would kill it outright
    deadline = time.monotonic() + 60
    while conn.execute("select count(*) as n from procrastinate_workers where id > %s", (before,)).fetchone()["n"] < 1:
        assert proc.poll() is None and time.monotonic() < deadline, "the worker never registered"
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0  # how soon is procrastinate's graceful timeout's business


def test_worker_above_16_jobs_runs_fetch_loops_side_by_side_and_stops_on_sigterm(conn, dsn, fernet_key):
    """`worker --concurrency 20` runs two procrastinate workers in one process (each fetches
    its own jobs): both register, every account's prices reach Loyverse, and SIGTERM stops
    the process gracefully (exit 0)."""
    with server.EmulatorServer(menu=4, seed=5, stores=1, merchants=3, time_scale=100) as emu:
        seeds = [testing.seed_from_emulator(conn, emu, merchant_index=n, rate_limit_window_seconds=3.0,
                                            account_name=f"acct{n}") for n in range(3)]
        before = conn.execute("select coalesce(max(id), 0) as n from procrastinate_workers").fetchone()["n"]
        proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "loyverse-sync"), "worker",
                                 "--concurrency", "20", "--graceful-timeout", "5"],
                                env={**os.environ, "DATABASE_URL": dsn}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while conn.execute("select count(*) as n from procrastinate_workers where id > %s",
                               (before,)).fetchone()["n"] < 2:
                assert proc.poll() is None and time.monotonic() < deadline, "two fetch loops never registered"
                time.sleep(0.1)
            conn.execute("update public.products set price = price + 1.25")
            want = {s.account_id: testing.db_prices(conn, s.account_id) for s in seeds}
            deadline = time.monotonic() + 30
            while any(testing.loyverse_prices(emu, s.merchant_id) != {**testing.loyverse_prices(emu, s.merchant_id),
                                                                       **want[s.account_id]} for s in seeds):
                assert time.monotonic() < deadline, "prices did not reach Loyverse"
                time.sleep(0.2)
            assert conn.execute("select count(*) as n from procrastinate_workers where id > %s",
                                (before,)).fetchone()["n"] == 2
        finally:
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=60)
        assert rc == 0


def test_one_shot_worker_with_fetch_loops_exits_once_caught_up(conn, env, emu, seed):
    conn.execute("update public.products set price = price + 0.5")
    run(env, "worker", "--one-shot", "--concurrency", "20")
    assert testing.loyverse_prices(emu, seed.merchant_id) == {
        **testing.loyverse_prices(emu, seed.merchant_id), **testing.db_prices(conn, seed.account_id)}
    assert conn.execute("select count(*) as n from loyverse.loyverse_price_sync_queue"
                        " where status <> 'done'").fetchone()["n"] == 0


@pytest.mark.slow  # a few seconds: left out of the fast lane, run by CI
def test_history_of_one_restaurant_counts_its_items_only(conn, env, emu, seed):
    """Two restaurants on one account share batches (one request per item serves both
    stores); `history --restaurant` counts each one's rows, and the two add up to the batch."""
    rids = list(seed.restaurants.values())
    assert len(rids) == 2
    mapped = {rid: [r["id"] for r in conn.execute(
        "select p.id from public.products p join loyverse.loyverse_item_mappings m on m.product_id = p.id"
        " where p.restaurant_id = %s and not m.needs_attention order by p.id", (rid,)).fetchall()] for rid in rids}
    # every product of the first, all but one of the second: a swapped restaurant would show
    changed = {rids[0]: mapped[rids[0]], rids[1]: mapped[rids[1]][1:]}
    assert len(changed[rids[1]]) > 0
    for ids in changed.values():
        conn.execute("update public.products set price = price + 0.5 where id = any(%s)", (ids,))
    run(env, "worker", "--one-shot", "--concurrency", "2")
    whole = [h for h in json.loads(run(env, "sync", "history", "--json").stdout) if h["sync_type"] == "PRICE_SYNC"]
    shared = [h for h in whole if len(h["restaurant_ids"]) == 2]
    assert shared, whole  # the batches mixed both restaurants
    per = {rid: {h["log_id"]: h for h in json.loads(run(env, "sync", "history", "-r", rid, "--json").stdout)
                 if h["sync_type"] == "PRICE_SYNC"} for rid in rids}
    for batch in shared:
        mine = [per[rid][batch["log_id"]] for rid in rids]
        assert not any(m["whole_batch"] for m in mine)
        for key in ("items_total", "items_succeeded", "items_failed", "items_skipped"):
            assert sum(m[key] for m in mine) == batch[key], (key, batch, mine)
    for rid in rids:
        assert sum(h["items_succeeded"] for h in per[rid].values()) == len(changed[rid])
    # people read units: took 0.42s, local times; not 0:00:00.421337
    text = run(env, "sync", "history", "-r", rids[0]).stdout
    assert "TOOK" in text and "0:00:" not in text and any(line.split()[-1].endswith("s") for line in text.splitlines()[1:])
    text = run(env, "sync", "status").stdout
    assert "OK 1H" in text and "%" in text and "0:00:" not in text
