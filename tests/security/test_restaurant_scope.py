"""One restaurant's operations (SQL API and CLI) never touch another restaurant's queue or settings.

Restaurants A and B share one Loyverse account (two stores). Both have pending, failed, dead
and conflict rows. Every restaurant-scoped operation is run for A (and with B's products
under A's name); B's queue rows, settings, products and mappings stay byte-for-byte the same.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys

import psycopg
import pytest

from loyverse_emulator import server
from tests.support import pricesync as testing


@pytest.fixture
def emu():
    with server.EmulatorServer(menu=6, seed=4, stores=2, time_scale=100) as emu:
        yield emu


@pytest.fixture
def setup(conn, emu, fernet_key):
    seed = testing.seed_from_emulator(conn, emu, stores=2, rate_limit_window_seconds=3.0)
    a, b = list(seed.restaurants.values())
    for rid in (a, b):
        conn.execute("select loyverse.update_price_sync_settings(%s, '{\"sync_direction\": \"BIDIRECTIONAL\"}')",
                     (rid,))
        conn.execute("update public.products set price = price + 1 where restaurant_id = %s", (rid,))
        ids = [r["id"] for r in conn.execute("select id from loyverse.loyverse_price_sync_queue"
                                             " where restaurant_id = %s order by id", (rid,)).fetchall()]
        assert len(ids) >= 4
        for status, qid in zip(("failed", "dead", "conflict"), ids, strict=False):
            conn.execute("update loyverse.loyverse_price_sync_queue set status = %s, completed_at = now(),"
                         " last_error = 'x', error_details = '{\"loyverse_price\": 3.5}' where id = %s",
                         (status, qid))
    return seed, a, b


def snapshot(conn, rid):
    return {
        "queue": conn.execute("select t::text from loyverse.loyverse_price_sync_queue t where restaurant_id = %s"
                              " order by id", (rid,)).fetchall(),
        "settings": conn.execute("select t::text from loyverse.loyverse_price_sync_settings t where restaurant_id = %s",
                                 (rid,)).fetchall(),
        "products": conn.execute("select t::text from public.products t where restaurant_id = %s order by id",
                                 (rid,)).fetchall(),
        "mappings": conn.execute("select t::text from loyverse.loyverse_item_mappings t where restaurant_id = %s"
                                 " order by product_id", (rid,)).fetchall(),
    }


def b_product(conn, b):
    return str(conn.execute("select product_id from loyverse.loyverse_price_sync_queue where restaurant_id = %s"
                            " and status = 'conflict'", (b,)).fetchone()["product_id"])


def test_sql_api_for_one_restaurant_leaves_the_other_alone(conn, setup):
    _, a, b = setup
    before = snapshot(conn, b)
    snapshot_before_a = snapshot(conn, a)
    pb = b_product(conn, b)
    calls = [
        ("select loyverse.retry_price_sync(%s, null, null)", (a,)),
        ("select loyverse.retry_price_sync(%s, null, 'dead')", (a,)),
        ("select loyverse.trigger_price_sync(%s)", (a,)),
        ("select loyverse.trigger_price_sync(%s, true)", (a,)),
        ("select loyverse.update_price_sync_settings(%s, '{\"price_rounding_rule\": \"UP\", \"priority\": 5,"
         " \"sync_frequency\": \"MANUAL\"}')", (a,)),
        ("select loyverse.resolve_price_sync_conflicts(%s, 'ours')", (a,)),
        ("select loyverse.pause_price_sync(%s)", (a,)),
        ("select loyverse.resume_price_sync(%s)", (a,)),
        ("select loyverse.update_price_sync_settings(%s, '{\"enabled\": false}')", (a,)),
    ]
    for sql, params in calls:
        conn.execute(sql, params)
    # B's product named under A's restaurant: refused or a no-op, never B's row
    for sql in ("select loyverse.retry_price_sync(%s, %s, null)",
                "select loyverse.resolve_price_sync_conflicts(%s, 'theirs', %s)"):
        with contextlib.suppress(psycopg.errors.NoDataFound):
            conn.execute(sql, (a, pb))
    assert snapshot(conn, b) == before
    assert snapshot(conn, a) != snapshot_before_a  # A's calls did act on A


def test_retry_with_another_restaurants_product_is_refused(conn, setup):
    _, a, b = setup
    with pytest.raises(psycopg.errors.NoDataFound, match="product"):
        conn.execute("select loyverse.retry_price_sync(%s, %s, null)", (a, b_product(conn, b)))


@pytest.mark.slow  # a few seconds: left out of the fast lane, run by CI
def test_cli_for_one_restaurant_leaves_the_other_alone(conn, dsn, setup):
    _, a, b = setup
    before = snapshot(conn, b)
    pb = b_product(conn, b)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["DATABASE_URL"] = dsn

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "loyverse_sync", *args], env=env, capture_output=True,
                              text=True, timeout=60)

    for args in (["sync", "retry", "-r", a], ["sync", "retry", "-r", a, "--dead"], ["sync", "trigger", "-r", a],
                 ["sync", "trigger", "-r", a, "--full"], ["sync", "resolve", "-r", a, "--all", "--keep", "theirs"],
                 ["sync", "settings", "set", "-r", a, "price_rounding_rule=DOWN", "max_attempts=3"],
                 ["sync", "pause", "-r", a], ["sync", "resume", "-r", a]):
        proc = cli(*args)
        assert proc.returncode == 0, (args, proc.stderr)
    for args in (["sync", "retry", "-r", a, "-p", pb], ["sync", "resolve", "-r", a, "-p", pb, "--keep", "ours"]):
        proc = cli(*args)
        assert proc.returncode == 2 and "no product" in proc.stderr, (args, proc.stderr)
    assert snapshot(conn, b) == before
    shown = json.loads(cli("sync", "settings", "show", "-r", a, "--json").stdout)
    assert shown["price_rounding_rule"] == "DOWN" and shown["max_attempts"] == 3
