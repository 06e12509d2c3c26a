"""An OAuth account keeps syncing across three token expiries, with its worker SIGKILLed once
right after a refresh (issue #14).

A real worker process syncs price changes of an OAuth account into the emulator. Access tokens
live 43200 s of emulated time (time scale 4320: 10 s of wall time), and before each round the
test moves the emulator's clock past the expiry, so every round starts with a refused token
(expiries happen because the test says so, not because the machine is slow). In the second
round every API request hangs once the token is refreshed, so the worker is stuck right after
its refresh committed: it is SIGKILLed there, and a new worker takes over with the stored pair.

What is asserted is the emulator's and the database's state: prices equal, at least three
refreshes, none refused (no refresh token spent twice: nobody locked out), every pair Loyverse
issued stored (our count equals the emulator's), the stored refresh token still live, and no
token in the worker logs.
"""

from __future__ import annotations

import json
import time

import pytest

from loyverse_emulator import server
from loyverse_sync import crypto, oauth
from tests.support import chaos as harness
from tests.support import pricesync as testing

pytestmark = pytest.mark.slow


@pytest.fixture
def emu():
    with server.EmulatorServer(menu=6, seed=5, stores=2, merchants=1, time_scale=4320,
                               oauth_apps=True) as emu:
        yield emu


def refreshes(conn, account_id):
    return conn.execute("select token_refreshes from loyverse.loyverse_accounts where id = %s",
                        (account_id,)).fetchone()["token_refreshes"]


def converge(conn, emu, seed, timeout=60.0):
    deadline = time.monotonic() + timeout
    while harness.diverged(conn, emu, seed):
        assert time.monotonic() < deadline, harness.diverged(conn, emu, seed)
        time.sleep(0.1)


def test_oauth_account_syncs_across_three_expiries_with_a_kill_after_a_refresh(dsn, conn, emu, fernet_key,
                                                                             tmp_path):
    seed = testing.seed_from_emulator(conn, emu, stores=2, rate_limit_window_seconds=3.0)
    app = emu.oauth_apps[0]
    # the account switches to the OAuth app (the personal token is no longer stored; the test
    # keeps reading the emulator with it)
    oauth.connect_account(conn, seed.account_id, client_id=app["client_id"], client_secret=app["client_secret"],
                          refresh_token=app["refresh_token"])
    cron = harness.Cron(dsn, interval=1.0)  # re-pends the rows of the killed worker's lease
    cron.start()
    pool = harness.WorkerPool(dsn, str(tmp_path / "logs"), concurrency=2,
                              env={"LOYVERSE_SYNC_LEASE_SECONDS": "3"})
    try:
        pool.start(1)
        # round 1: the first use refreshes (no access token yet), then the token expires
        conn.execute("update public.products set price = price + 1")
        converge(conn, emu, seed)
        assert refreshes(conn, seed.account_id) >= 1
        emu.state.oauth.advance(43200)
        conn.execute("update public.products set price = price + 1")
        converge(conn, emu, seed)

        # round 2: expired again; every API request hangs (past the worker's 1 s HTTP timeout)
        # once the token is refreshed, so the worker is SIGKILLed right after its refresh
        before = refreshes(conn, seed.account_id)
        emu.state.set_faults(seed.merchant_id, clear=True, ptimeout=1.0, hang_seconds=2.0)
        emu.state.oauth.advance(43200)
        conn.execute("update public.products set price = price + 1")
        deadline = time.monotonic() + 60
        while refreshes(conn, seed.account_id) == before:
            assert time.monotonic() < deadline, "the worker never refreshed"
            time.sleep(0.02)
        pool.kill(0)  # SIGKILL, and a new worker starts
        emu.state.set_faults(seed.merchant_id, clear=True)
        converge(conn, emu, seed)

        # round 3: a third expiry, the new worker refreshes with the pair the killed one stored
        emu.state.oauth.advance(43200)
        conn.execute("update public.products set price = price + 1")
        converge(conn, emu, seed)
        harness.wait_drained(conn, 60, [seed.account_id])
    finally:
        pool.stop()
        cron.stop()

    summary = emu.state.oauth.summary()
    counters = summary["counters"]
    assert harness.diverged(conn, emu, seed) == {}
    assert counters["refreshes"] >= 3 and counters["expired_401"] >= 3 and pool.kills == 1
    assert counters["rejected"] == 0 and counters["reused"] == 0 and counters["lost"] == 0
    row = conn.execute("select * from loyverse.loyverse_accounts where id = %s", (seed.account_id,)).fetchone()
    assert row["token_refreshes"] == counters["refreshes"]  # every pair Loyverse issued was stored
    assert row["token_valid"] is True
    secrets_doc = json.loads(crypto.decrypt(row["oauth_ciphertext"], row["token_key_id"], crypto.load_keys()))
    assert emu.state.oauth.live(secrets_doc["refresh_token"])  # not locked out
    problems = conn.execute("select status, count(*)::int as n from loyverse.loyverse_price_sync_queue"
                            " where status in ('failed', 'dead', 'conflict') group by status").fetchall()
    assert problems == []
    logs = pool.output()
    assert "access token refreshed" in logs
    issued = list(emu.state.oauth.expiry) + list(emu.state.oauth.spent) + [secrets_doc["refresh_token"],
                                                                          app["client_secret"]]
    assert len(issued) >= 8
    assert [t for t in issued if t[:16] in logs] == []
