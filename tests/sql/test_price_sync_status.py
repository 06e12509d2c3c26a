"""loyverse.price_sync_status: the figures of `sync status`, the dashboard and the alerts.

Migration 0054 replaced a per-restaurant lateral count (a scan of the whole queue for each
restaurant) by one grouped pass; these tests hold it to the same figures as the previous
definition (kept in 0054's rollback) and to reading the queue once, not once per restaurant.
"""

from __future__ import annotations

import datetime
import decimal
import json
import pathlib

import pytest

D = decimal.Decimal
MIN = datetime.timedelta(minutes=1)
DAY = datetime.timedelta(days=1)

# (status, minutes since completed_at or None, next_attempt_at in minutes from now)
MIX = {
    # every status, done within the hour / the day / older, recent failures
    "all": [("pending", None, -5), ("pending", None, 60), ("processing", None, 0),
            ("failed", 2 * 24 * 60, 0), ("failed", 30, 0), ("dead", 120, 0), ("conflict", None, 0),
            ("done", 3 * 24 * 60, 0), ("done", 5 * 60, 0), ("done", 10, 0), ("cancelled", 10, 0)],
    # last success older than a day (found outside the day's rows), and a dead letter
    "idle": [("done", 3 * 24 * 60, 0), ("done", 2 * 24 * 60, 0), ("dead", 3 * 24 * 60, 0)],
    # nothing but old history
    "old": [("done", 6 * 24 * 60, 0), ("cancelled", 60, 0)],
    # only in flight
    "busy": [("pending", None, -1), ("processing", None, 0)],
    # no queue rows at all
    "empty": [],
}


@pytest.fixture
def mix(conn, fernet_key):
    """Restaurants with the MIX rows (plus `history` old done rows each, and `extra` restaurants
    with only those), and return now()."""
    from loyverse_sync import accounts

    def build(history: int = 0, extra: int = 0):
        account_id = accounts.add_account(conn, name="acc", token="tok", base_url="http://127.0.0.1:9/v1.0")
        t0 = conn.execute("select now() as t").fetchone()["t"]
        restaurants = list(MIX.items()) + [(f"extra{k}", []) for k in range(extra)]
        for n, (name, rows) in enumerate(restaurants):
            rid = accounts.add_restaurant(conn, name)
            accounts.link_restaurant(conn, rid, account_id, f"s{n}")
            products = [r["id"] for r in conn.execute(
                "insert into public.products (restaurant_id, name, price)"
                " select %s, 'p' || g, 10 from generate_series(1, %s) g returning id",
                (rid, len(rows) + history)).fetchall()]
            conn.execute(
                "insert into loyverse.loyverse_price_sync_queue (product_id, restaurant_id, account_id,"
                " status, new_price, price_to_send, completed_at, next_attempt_at, created_at, lease_until)"
                " select p, %s, %s, 'done', 11, 11, %s - interval '4 days', %s, %s - interval '4 days', null"
                " from unnest(%s::uuid[]) p",
                (rid, account_id, t0, t0, t0, products[len(rows):]))
            for product, (status, ago, next_in) in zip(products[: len(rows)], rows, strict=True):
                conn.execute(
                    "insert into loyverse.loyverse_price_sync_queue (product_id, restaurant_id, account_id,"
                    " status, new_price, price_to_send, completed_at, next_attempt_at, created_at, lease_until)"
                    " values (%s, %s, %s, %s, 11, 11, %s, %s, %s, %s)",
                    (product, rid, account_id, status, None if ago is None else t0 - ago * MIN,
                     t0 + next_in * MIN, t0 - 7 * 24 * 60 * MIN if ago else t0 - 20 * MIN,
                     t0 + 5 * MIN if status == "processing" else None))
        conn.execute("analyze loyverse.loyverse_price_sync_queue")
        return t0

    return build


def status(conn, relation="loyverse.price_sync_status"):
    return {r["restaurant_name"]: r for r in conn.execute(f"select * from {relation} order by restaurant_name")}


def test_figures_for_a_mix_of_statuses_and_ages(conn, mix):
    t0 = mix()
    st = status(conn)
    assert set(st) == set(MIX)
    a = st["all"]
    assert (a["pending"], a["due"], a["processing"], a["failed"], a["dead"], a["conflicts"]) == (2, 1, 1, 2, 1, 1)
    assert a["last_success_at"] == t0 - 10 * MIN
    assert (a["synced_last_hour"], a["success_rate_last_hour"]) == (1, D("0.500"))  # done 10 min, failed 30 min
    assert (a["synced_last_day"], a["success_rate_last_day"]) == (2, D("0.500"))  # + done 5 h, dead 2 h
    assert datetime.timedelta(minutes=20) <= a["oldest_pending_age"] < datetime.timedelta(minutes=30)

    idle = st["idle"]
    assert idle["last_success_at"] == t0 - 2 * DAY
    assert (idle["dead"], idle["synced_last_day"], idle["success_rate_last_day"]) == (1, 0, None)
    assert st["old"]["last_success_at"] == t0 - 6 * DAY
    busy = st["busy"]
    assert (busy["pending"], busy["due"], busy["processing"], busy["last_success_at"]) == (1, 1, 1, None)
    e = st["empty"]
    assert (e["pending"], e["dead"], e["synced_last_day"], e["last_success_at"], e["oldest_pending_age"],
            e["success_rate_last_hour"]) == (0, 0, 0, None, None, None)


def test_same_rows_as_the_previous_definition(conn, mix):
    mix(history=20)
    previous = (pathlib.Path(__file__).parent / "previous" / "price_sync_status_before_0054.sql").read_text()
    previous = previous.split("create or replace view loyverse.price_sync_status as", 1)[1]
    conn.execute("create view public.price_sync_status_before as" + previous)
    with conn.transaction():  # one now() for both
        assert status(conn) == status(conn, "public.price_sync_status_before")
    # and once every last success is older than a day
    conn.execute("update loyverse.loyverse_price_sync_queue set completed_at = completed_at - interval '1 day'")
    with conn.transaction():
        now, before = status(conn), status(conn, "public.price_sync_status_before")
    assert now == before and now["all"]["last_success_at"] is not None


def queue_rows_read(node):
    """Queue rows a plan reads (every loop), from EXPLAIN ANALYZE."""
    n = 0
    if node.get("Relation Name") == "loyverse_price_sync_queue":
        per_loop = node["Actual Rows"] + node.get("Rows Removed by Filter", 0) + node.get("Rows Removed by Index Recheck", 0)
        n += per_loop * node["Actual Loops"]
    return n + sum(queue_rows_read(child) for child in node.get("Plans", []))


@pytest.mark.parametrize("query", ["select * from loyverse.price_sync_status",
                                   "select count(*) from loyverse.alert_measurements"])
def test_the_queue_is_read_once_not_once_per_restaurant(conn, mix, query):
    mix(history=100, extra=5)
    conn.execute("update loyverse.loyverse_price_sync_queue set completed_at = completed_at - interval '1 day'")
    total = conn.execute("select count(*) as n from loyverse.loyverse_price_sync_queue").fetchone()["n"]
    (plan,) = conn.execute(f"explain (analyze, format json) {query}").fetchone().values()
    plan = plan if isinstance(plan, list) else json.loads(plan)
    # the previous definition read every row for each of the 10 restaurants; now a few passes
    # at most (the day's rows, and the last success of those without one in the day)
    assert queue_rows_read(plan[0]["Plan"]) <= 3 * total + 10
