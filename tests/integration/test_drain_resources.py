"""What a worker process reuses between drains: idle connections and decrypted tokens."""

from __future__ import annotations

import pytest

from loyverse_emulator import server
from loyverse_sync import accounts, crypto
from loyverse_sync.pricesync import engine
from tests.support import pricesync as testing

FAST = engine.EngineConfig(backoff_base=0.01, backoff_cap=0.05, http_max_attempts=2, http_timeout=3)


@pytest.fixture
def emu():
    with server.EmulatorServer(menu=6, seed=1, stores=1, time_scale=100) as emu:
        yield emu


@pytest.fixture
def seed(conn, emu, fernet_key):
    return testing.seed_from_emulator(conn, emu, stores=1, rate_limit_window_seconds=3.0)


@pytest.fixture
def resources(dsn):
    res = engine.DrainResources(dsn)
    yield res
    res.close()


def _pid(conn):
    return conn.execute("select pg_backend_pid() as pid").fetchone()["pid"]


def test_drains_reuse_one_idle_connection_and_record_calls_on_it(conn, dsn, emu, seed, resources):
    # FIXED prices only: a VARIABLE one (entered at the counter) is never queued (issue #18)
    products = [str(r["product_id"]) for r in conn.execute(
        "select product_id from loyverse.loyverse_item_mappings where loyverse_pricing_type = 'FIXED' order by id")]
    pids = []
    requests = 0
    for product_id in products[:2]:
        conn.execute("update public.products set price = price + 1 where id = %s", (product_id,))
        result = engine.drain_account(dsn, seed.account_id, config=FAST, resources=resources)
        assert result.counts["done"] == 1
        requests += result.requests
        assert len(resources._idle) == 1  # given back, idle
        pids.append(_pid(resources._idle[0][0]))
    assert pids[0] == pids[1]
    want = testing.db_prices(conn, seed.account_id)
    have = testing.loyverse_prices(emu, seed.merchant_id)
    assert want and want == {k: have.get(k) for k in want}
    # the API-call statistics went out on the drain's connection
    calls = conn.execute("select coalesce(sum(calls), 0)::int as n from loyverse.loyverse_api_call_stats"
                         " where account_id = %s", (seed.account_id,)).fetchone()["n"]
    assert calls == requests == 4


def test_a_connection_in_a_transaction_or_dead_is_not_reused(conn, dsn, resources):
    with resources.connection() as c:
        c.execute("begin")  # handed back inside a transaction: closed, not kept
    assert c.closed and resources._idle == []

    with resources.connection() as c:
        first = _pid(c)
    conn.execute("select pg_terminate_backend(%s)", (first,))
    with resources.connection() as c:  # the dead idle one is noticed and replaced
        assert _pid(c) != first
    assert len(resources._idle) == 1


def test_idle_connections_are_closed_after_idle_seconds(dsn):
    res = engine.DrainResources(dsn, idle_seconds=0.0)
    try:
        with res.connection() as c:
            pass
        res.prune()
        assert res._idle == [] and c.closed
    finally:
        res.close()


def test_account_cache_decrypts_once_and_sees_a_new_token(conn, fernet_key, monkeypatch):
    account_id = accounts.add_account(conn, name="cached", token="token-one", base_url="http://x")
    decrypts = []
    real = crypto.decrypt
    monkeypatch.setattr(crypto, "decrypt", lambda *a, **k: decrypts.append(1) or real(*a, **k))
    cache = accounts.AccountCache()
    assert cache.get(conn, account_id).token == "token-one"
    conn.execute("update loyverse.accounts set name = 'renamed' where id = %s", (account_id,))
    again = cache.get(conn, account_id)
    assert (again.token, again.name, len(decrypts)) == ("token-one", "renamed", 1)

    ciphertext, key_id = crypto.encrypt("token-two", [fernet_key])
    conn.execute("update loyverse.accounts set token_ciphertext = %s, token_key_id = %s where id = %s",
                 (ciphertext, key_id, account_id))
    assert cache.get(conn, account_id).token == "token-two"
    assert len(decrypts) == 2
    with pytest.raises(accounts.NotFound):
        cache.get(conn, account_id + 1000)
