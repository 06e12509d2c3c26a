"""What a worker process reuses between drains: pooled connections (db.Connector) and decrypted tokens."""

from __future__ import annotations

import psycopg
import pytest

from loyverse_emulator import server
from loyverse_sync import accounts, crypto, db
from loyverse_sync.pricesync import engine
from tests.support import pricesync as testing

FAST = engine.EngineConfig(http_max_attempts=2, http_timeout=3)
#: a failed row's backoff is its restaurant's setting (production: 2 s, capped at 900 s)
FAST_BACKOFF = {"backoff_base_seconds": 0.01, "backoff_cap_seconds": 0.05}


@pytest.fixture
def emu():
    with server.EmulatorServer(menu=6, seed=1, stores=1, time_scale=100) as emu:
        yield emu


@pytest.fixture
def seed(conn, emu, fernet_key):
    return testing.seed_from_emulator(conn, emu, stores=1, rate_limit_window_seconds=3.0,
                                      settings=FAST_BACKOFF)


def _pid(conn):
    return conn.execute("select pg_backend_pid() as pid").fetchone()["pid"]


def test_drains_reuse_one_pooled_connection_and_record_calls_on_it(conn, dsn, emu, seed):
    # FIXED prices only: a VARIABLE one (entered at the counter) is never queued (issue #18)
    products = [str(r["product_id"]) for r in conn.execute(
        "select product_id from loyverse.loyverse_item_mappings where loyverse_pricing_type = 'FIXED' order by id")]
    opened = []
    requests = 0
    with db.Connector(dsn, role="worker", min_size=1, max_size=4) as connector:
        price_sync = engine.PriceSync(connector, FAST)
        for product_id in products[:2]:
            conn.execute("update public.products set price = price + 1 where id = %s", (product_id,))
            result = price_sync.drain(seed.account_id)
            assert result.counts["done"] == 1
            requests += result.requests
            stats = connector.pool.get_stats()
            opened.append(stats["connections_num"])
            assert stats["pool_available"] == stats["pool_size"] >= 1  # given back, idle
        # one connection per running drain (the client's governor, the API-call records and
        # the claim shared it), and the second drain opened none: it reused one
        assert opened[0] == opened[1] and 1 <= opened[0] <= 2  # 2: the pool's start-up fill raced the first drain
    want = testing.db_prices(conn, seed.account_id)
    have = testing.loyverse_prices(emu, seed.merchant_id)
    assert want and want == {k: have.get(k) for k in want}
    # the API-call statistics went out on the drain's connection
    calls = conn.execute("select coalesce(sum(calls), 0)::int as n from loyverse.loyverse_api_call_stats"
                         " where account_id = %s", (seed.account_id,)).fetchone()["n"]
    assert calls == requests == 4


def test_a_connection_comes_back_idle_and_a_dead_one_is_replaced(conn, connector):
    # psycopg_pool's rule, like `with psycopg.connect()`: an error rolls back what the block
    # left open; a connection that died while idle is replaced when next lent
    with pytest.raises(ZeroDivisionError), connector.connection() as c:
        c.execute("begin")
        c.execute("create temporary table left_behind (x int)")
        first = _pid(c)
        raise ZeroDivisionError
    conn.execute("select pg_terminate_backend(pid) from pg_stat_activity"
                 " where datname = current_database() and pid <> pg_backend_pid()")
    with connector.connection() as c:  # the dead idle ones are noticed and replaced
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE and c.autocommit
        assert _pid(c) != first


def test_account_cache_decrypts_once_and_sees_a_new_token(conn, fernet_key, monkeypatch):
    account_id = accounts.add_account(conn, name="cached", token="token-one", base_url="http://x")
    decrypts = []
    real = crypto.decrypt
    monkeypatch.setattr(crypto, "decrypt", lambda *a, **k: decrypts.append(1) or real(*a, **k))
    cache = accounts.AccountCache()
    assert cache.get(conn, account_id).token == "token-one"
    conn.execute("update loyverse.loyverse_accounts set name = 'renamed' where id = %s", (account_id,))
    again = cache.get(conn, account_id)
    assert (again.token, again.name, len(decrypts)) == ("token-one", "renamed", 1)

    ciphertext, key_id = crypto.encrypt("token-two", [fernet_key])
    conn.execute("update loyverse.loyverse_accounts set token_ciphertext = %s, token_key_id = %s where id = %s",
                 (ciphertext, key_id, account_id))
    assert cache.get(conn, account_id).token == "token-two"
    assert len(decrypts) == 2
    with pytest.raises(accounts.NotFound):
        cache.get(conn, account_id + 1000)
