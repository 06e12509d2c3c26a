"""A delivery never makes the main app's UPDATE fail: it takes its products' locks first,
without waiting. Two real sessions: the app holds one product of a delivery, the apply job
defers the delivery at once (instead of waiting and deadlocking with the app's next row), and
applies it once the app has committed."""

from __future__ import annotations

import json
import threading

import psycopg
from psycopg import rows

from tests.sql.conftest import world  # noqa: F401  (the fixture: one account, mapped products)
from tests.support import inbound as itesting


def items_update(*prices):
    """items.update of items item0.. with one variant v0.. in store s1 each."""
    return {"merchant_id": None, "type": "items.update", "created_at": "2030-01-01T10:00:00Z",
            "items": [{"id": f"item{k}", "item_name": f"item{k}", "updated_at": "2030-01-01T10:00:00.000Z",
                       "variants": [{"variant_id": f"v{k}", "item_id": f"item{k}", "stores": [
                           {"store_id": "s1", "pricing_type": "FIXED", "price": p, "available_for_sale": True}]}]}
                      for k, p in enumerate(prices)]}


def test_a_delivery_waits_for_the_app_never_the_app_for_a_delivery(conn, dsn, world):  # noqa: F811
    conn.execute("select loyverse.update_price_sync_settings(%s, %s)",
                 (world["restaurants"][0], json.dumps({"sync_direction": "FROM_LOYVERSE"})))
    p0, p1 = world["products"][0], world["products"][1]
    conn.execute("select loyverse.receive_loyverse_delivery(%s, 'webhook', '{}', %s)",
                 (world["account_id"], json.dumps(items_update(21.0, 22.0)).encode()))
    result: dict = {}
    with psycopg.connect(dsn, row_factory=rows.dict_row) as app, \
            psycopg.connect(dsn, autocommit=True, row_factory=rows.dict_row) as job:
        job.execute("set statement_timeout = '60s'")  # failsafe only: fail rather than hang
        job_pid = job.info.backend_pid
        # The app's lock waits are checked for deadlocks first (as when it started waiting
        # first, which the chaos run hit): a cycle with the delivery would make the app's
        # statement the victim.
        app.execute("set deadlock_timeout = '1ms'")
        app.execute("update public.products set price = 31 where id = %s", (p1,))  # holds p1, not committed

        def apply() -> None:
            result["r"] = job.execute("select loyverse.apply_loyverse_inbox(%s) as r",
                                      (world["account_id"],)).fetchone()["r"]

        thread = threading.Thread(target=apply)
        thread.start()
        # the delivery is either done already or waiting for p1 (holding p0 if it took it)
        itesting.wait_for(lambda: "r" in result or conn.execute(
            "select count(*) as n from pg_locks where pid = %s and not granted", (job_pid,)).fetchone()["n"],
            what="the delivery to finish or wait")
        # the app goes on to the delivery's other product: it must not deadlock
        app.execute("update public.products set price = 30 where id = %s", (p0,))
        app.commit()
        thread.join(60)
    first = result["r"]
    assert (first["applied"], first["deferred"]) == (0, 1)
    row = conn.execute("select status, last_error from loyverse.loyverse_inbox").fetchone()
    assert row["status"] == "pending" and "lock" in row["last_error"], row
    # a second later the delivery applies over the app's committed prices
    conn.execute("update loyverse.loyverse_inbox set next_attempt_at = now()")
    again = conn.execute("select loyverse.apply_loyverse_inbox(%s) as r", (world["account_id"],)).fetchone()["r"]
    assert (again["applied"], again["deferred"]) == (1, 0)
    prices = {r["id"]: r["price"] for r in conn.execute(
        "select id, price from public.products where id = any(%s)", ([p0, p1],)).fetchall()}
    assert prices == {p0: 21, p1: 22}
