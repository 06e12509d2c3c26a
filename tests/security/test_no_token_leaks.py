"""The Loyverse token appears nowhere: database dump, views, worker logs, CLI output, exceptions.

A run that exercises failures first: 500s and hangs past the HTTP timeout while a worker
(json logs, -vv) syncs, `account add` with a token Loyverse rejects, then the token is revoked
(401 on every request) and the worker runs again. Then every place is scanned for the token
and for any 12-character piece of it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from loyverse_emulator import server
from loyverse_sync import accounts
from loyverse_sync.loyverse import client as client_mod
from loyverse_sync.loyverse import errors
from tests import pgtools
from tests.support import chaos as harness
from tests.support import pricesync as testing

TOKEN = "lvtok" + secrets.token_hex(20)
OTHER = "lvbad" + secrets.token_hex(20)  # a token Loyverse rejects, given to `account add`


def pieces(token: str, size: int = 12) -> list[str]:
    return [token[i:i + size] for i in range(0, len(token) - size + 1, 4)]


def leaks(text: str, *tokens: str) -> list[str]:
    return [p for t in tokens for p in pieces(t) if p in text]


@pytest.fixture
def emu():
    with server.EmulatorServer(menu=6, seed=3, stores=2, time_scale=100, token=TOKEN) as emu:
        yield emu


def cli(env, *args, input=None):
    proc = subprocess.run([sys.executable, "-m", "loyverse_sync", "-vv", *args], env=env, input=input,
                          capture_output=True, text=True, timeout=60)
    return proc


@pytest.mark.slow
def test_the_token_leaks_nowhere(dsn, conn, emu, fernet_key, tmp_path):
    assert emu.merchants[0]["tokens"][0] == TOKEN
    seed = testing.seed_from_emulator(conn, emu, stores=2, rate_limit_window_seconds=3.0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(harness.FAST_ENV)
    env.update({"DATABASE_URL": dsn, "OTHER_TOKEN": OTHER})
    outputs: list[str] = []

    # failures while syncing: 500s and hangs past the HTTP timeout
    emu.state.set_faults(seed.merchant_id, p500=0.3, ptimeout=0.2, hang_seconds=1.5, seed=1)
    conn.execute("update public.products set price = price + 1")
    proc = cli(env, "worker", "--one-shot")
    outputs += [proc.stdout, proc.stderr]
    assert proc.returncode == 0, proc.stderr
    assert '"levelname"' in proc.stderr or '"level"' in proc.stderr  # json logs really were on

    # a token Loyverse rejects, at `account add`
    proc = cli(env, "account", "add", "--name", "rejected", "--token-env", "OTHER_TOKEN",
               "--base-url", emu.base_url)
    outputs += [proc.stdout, proc.stderr]
    assert proc.returncode == 2 and "rejected the token" in proc.stderr

    # the account's token is revoked: every request is a 401
    emu.state.set_faults(seed.merchant_id, clear=True)
    with emu.admin() as adm:
        adm.revoke_token(TOKEN)
    conn.execute("update public.products set price = price + 1")
    # rows the faults above left backing off (the restaurant's backoff, 2 s and up) are due
    # now: the one-shot worker below must try them, not find nothing due yet
    conn.execute("update loyverse.loyverse_price_sync_queue set next_attempt_at = now() where status = 'pending'")
    proc = cli(env, "worker", "--one-shot")
    outputs += [proc.stdout, proc.stderr]
    assert proc.returncode == 0, proc.stderr
    errs = conn.execute("select count(*)::int as n from loyverse.loyverse_price_sync_queue"
                        " where last_error_code = 'UNAUTHORIZED'").fetchone()["n"]
    assert errs > 0

    # exceptions raised in-process carry neither the token nor the Authorization header
    with client_mod.LoyverseClient(emu.base_url, TOKEN, max_attempts=1) as lv:
        with pytest.raises(errors.Unauthorized) as caught:
            lv.get_merchant()
        outputs += [repr(lv), str(caught.value), repr(caught.value), repr(vars(caught.value))]
        outputs.append("".join(__import__("traceback").format_exception(caught.value)))
    outputs.append(repr(accounts.get_account(conn, seed.account_id)))

    rid = next(iter(seed.restaurants.values()))
    for args in (["account", "list"], ["account", "list", "--json"], ["restaurant", "list", "--json"],
                 ["sync", "status", "--json"], ["sync", "status"], ["sync", "history", "--json"],
                 ["sync", "history"], ["sync", "settings", "show", "-r", rid, "--json"],
                 ["dashboard", "--once"], ["health", "--json"], ["health"], ["db", "status", "--json"]):
        proc = cli(env, *args)
        assert "Traceback" not in proc.stderr, (args, proc.stderr)
        outputs += [proc.stdout, proc.stderr]
    metrics = subprocess.run([sys.executable, "-m", "loyverse_sync", "metrics"], env=env, capture_output=True,
                             text=True, timeout=60)
    outputs += [metrics.stdout, metrics.stderr]

    # every view of the loyverse schema, and the whole database's data
    views = conn.execute("select table_name from information_schema.views where table_schema = 'loyverse'").fetchall()
    assert views
    for v in views:
        outputs.append(repr(conn.execute(f'select * from loyverse."{v["table_name"]}"').fetchall()))
    dump = pgtools.pg_dump(dsn, "--data-only")
    assert "loyverse_sync_logs" in dump and "UNAUTHORIZED" in dump  # the run's failures are in there
    outputs.append(dump)

    everything = "\n".join(outputs)
    assert leaks(f"Authorization: Bearer {TOKEN}", TOKEN)  # the scan does find a token
    assert leaks(everything, TOKEN, OTHER) == []


@pytest.mark.slow
def test_oauth_secrets_leak_nowhere(dsn, conn, fernet_key, tmp_path):
    """The OAuth client secret, every access token and every refresh token the emulator issued
    (refreshed at first use, after an expiry, then a lost answer and a refused refresh token)
    appear in no CLI output, worker log, view or database dump."""
    with server.EmulatorServer(menu=4, seed=3, stores=1, merchants=1, time_scale=100, oauth_apps=True) as emu:
        app = emu.oauth_apps[0]
        seed = testing.seed_from_emulator(conn, emu, stores=1, rate_limit_window_seconds=3.0)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(harness.FAST_ENV)
        env.update({"DATABASE_URL": dsn, "APP_SECRET": app["client_secret"], "APP_REFRESH": app["refresh_token"],
                    "APP_ACCESS": app["access_token"]})
        outputs: list[str] = []

        def run(*args, ok=True, input=None):
            proc = cli(env, *args, input=input)
            outputs.extend([proc.stdout, proc.stderr])
            assert "Traceback" not in proc.stderr, (args, proc.stderr)
            if ok:
                assert proc.returncode == 0, (args, proc.stderr)
            return proc

        run("account", "reconnect", str(seed.account_id), "--client-id", app["client_id"],
            "--client-secret-env", "APP_SECRET", "--refresh-token-env", "APP_REFRESH", "--token-env", "APP_ACCESS")
        # a refused refresh token at `account add --oauth`, from standard input
        refused = run("account", "add", "--name", "refused", "--oauth", "--client-id", app["client_id"],
                      "--base-url", emu.base_url, ok=False, input=f"{app['client_secret']}\nnot-a-token\n")
        assert refused.returncode == 2
        def count(name):
            return emu.state.oauth.summary()["counters"][name]

        # an expiry (refreshed), a refresh whose answer is lost, then the spent token refused;
        # the worker runs until the step happened (rows that failed are made due again first)
        for step, counter in (("expire", "refreshes"), ("lose", "lost"), ("refused", "rejected")):
            before = count(counter)
            emu.state.oauth.advance(43200)
            if step == "lose":
                emu.state.oauth.configure({"lose_next": 1})
            conn.execute("update public.products set price = price + 1")
            for _ in range(10):
                for rid in seed.restaurants.values():  # due now, whatever the backoff said
                    conn.execute("select loyverse.trigger_price_sync(%s)", (rid,))
                run("worker", "--one-shot")
                if count(counter) > before:
                    break
            assert count(counter) > before, step
        counters = emu.state.oauth.summary()["counters"]
        assert counters["refreshes"] >= 2 and counters["lost"] == 1 and counters["rejected"] >= 2
        assert conn.execute("select count(*)::int as n from loyverse.loyverse_price_sync_queue"
                            " where last_error_code = 'REFRESH_REJECTED'").fetchone()["n"] > 0
        for args in (["account", "list"], ["account", "list", "--json"], ["health", "--json"], ["health"],
                     ["sync", "status", "--json"], ["sync", "history", "--json"]):
            run(*args, ok=False)
        views = conn.execute("select table_name from information_schema.views"
                             " where table_schema = 'loyverse'").fetchall()
        for v in views:
            outputs.append(repr(conn.execute(f'select * from loyverse."{v["table_name"]}"').fetchall()))
        outputs.append(pgtools.pg_dump(dsn, "--data-only"))
        reg = emu.state.oauth
        issued = [*reg.expiry, *reg.spent, *reg.refresh_tokens, app["client_secret"]]
    assert len(issued) >= 6
    everything = "\n".join(outputs)
    assert "refresh token" in everything  # the failures were reported
    assert leaks(everything, *issued) == []
