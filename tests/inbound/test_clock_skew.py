"""`latest` with Loyverse's clock ten minutes ahead or behind ours (the emulator's
`clock_offset_seconds` mode): the offset is measured from the webhook deliveries and taken off
Loyverse's updated_at, so the edit made last wins on either side. Without the correction, a clock
ahead makes every counter edit look newest, one behind makes ours always win."""

from __future__ import annotations

import decimal
import json
import os
import subprocess
import sys
import time

import pytest

from loyverse_emulator import server
from loyverse_sync.inbound import jobs
from tests.support import inbound as itesting
from tests.support import pricesync as testing

D = decimal.Decimal


def cli(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"DATABASE_URL": dsn}
    return subprocess.run([sys.executable, "-m", "loyverse_sync", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def price(conn, product_id) -> D:
    return conn.execute("select price from public.products where id = %s", (product_id,)).fetchone()["price"]


def apart() -> None:
    """Two edits a second apart. The measured offset is off by the shortest delivery time (ms
    here), so `latest` tells apart edits further apart than that; nearer ones are a tie, which
    ours wins. This orders the edits; nothing asserts on time."""
    time.sleep(1.0)


def inbox_count(conn) -> int:
    return conn.execute("select count(*) as n from loyverse.loyverse_inbox").fetchone()["n"]


def decision(conn, product_id) -> str | None:
    row = conn.execute("select decision from loyverse.loyverse_inbound_audit where product_id = %s"
                       " and decision like 'CONFLICT%%' order by id desc limit 1", (product_id,)).fetchone()
    return row["decision"] if row else None


@pytest.mark.slow  # a few seconds: left out of the fast lane, run by CI
@pytest.mark.parametrize("offset", [600, -600], ids=["loyverse-ahead", "loyverse-behind"])
def test_latest_picks_the_edit_made_last_whatever_loyverses_clock_says(conn, dsn, connector, fernet_key, offset):
    with server.EmulatorServer(menu=4, seed=5, stores=1) as emu, emu.admin() as adm, \
            itesting.running_receiver(dsn) as url:
        seed = testing.seed_from_emulator(conn, emu, stores=1, settings={
            "sync_direction": "BIDIRECTIONAL", "conflict_policy": "latest"})
        adm.set_modes(seed.merchant_id, clock_offset_seconds=offset)
        keys = sorted(k for k in seed.products if emu.state.variant_price(k[0], k[1], seed.merchant_id) is not None)
        # three products of three different items (a delivery carries whole items)
        by_item: dict[str, tuple[str, str]] = {}
        for k in keys:
            by_item.setdefault(emu.state.merchant(seed.merchant_id).collections["variants"][k[0]].data["item_id"], k)
        calibrate, ours_last, theirs_last = list(by_item.values())[:3]
        done = cli(dsn, "account", "subscribe", str(seed.account_id), "--url", url, "--allow-http")
        assert done.returncode == 0, done.stderr
        # No worker: nothing is pushed, the test applies the inbox itself (jobs.apply_inbox).

        # 1. Any delivery measures the offset (here: a counter edit of a product only Loyverse edits).
        adm.set_price(*calibrate, 50.0, merchant_id=seed.merchant_id)
        itesting.wait_for(lambda: inbox_count(conn) == 1, what="the first delivery")
        jobs.apply_inbox(connector, seed.account_id)
        measured = conn.execute("select loyverse_clock_offset_ms as ms from loyverse.loyverse_inbound_settings"
                                " where account_id = %s", (seed.account_id,)).fetchone()["ms"]
        # the offset minus the delivery time: a generous bound, the point is the sign and size
        assert measured is not None and abs(measured - offset * 1000) < 60_000, measured
        shown = cli(dsn, "account", "polling", str(seed.account_id), "--json")  # what a DBA sees
        assert shown.returncode == 0 and json.loads(shown.stdout)["loyverse_clock_offset_ms"] == measured, shown
        assert price(conn, seed.products[calibrate]) == D("50.00")

        # 2. Counter edit first (its delivery lost), ours after it: ours is the last edit.
        adm.webhook_faults(drop=1)
        adm.set_price(*ours_last, 222.22, merchant_id=seed.merchant_id)
        apart()
        conn.execute("update public.products set price = 111.11 where id = %s", (seed.products[ours_last],))
        # 3. Ours first, the counter's after it (delivered): theirs is the last edit.
        conn.execute("update public.products set price = 133.33 where id = %s", (seed.products[theirs_last],))
        apart()
        adm.set_price(*theirs_last, 244.44, merchant_id=seed.merchant_id)
        itesting.wait_for(lambda: inbox_count(conn) == 2, what="the counter edit's delivery")
        jobs.apply_inbox(connector, seed.account_id)
        # the lost delivery comes back through the poll (its cursor started on Loyverse's clock)
        conn.execute("update loyverse.loyverse_inbound_settings set last_polled_at = now() - interval '1 hour',"
                     " polled_until = coalesce(polled_until, now() + make_interval(secs => %s))"
                     " where account_id = %s", (offset, seed.account_id))
        polled = jobs.poll_due(connector)
        assert [p.get("error") for p in polled] == [None], polled
        jobs.apply_inbox(connector, seed.account_id)

    assert decision(conn, seed.products[ours_last]) == "CONFLICT_KEPT_OURS"
    assert price(conn, seed.products[ours_last]) == D("111.11")
    assert decision(conn, seed.products[theirs_last]) == "CONFLICT_KEPT_THEIRS"
    assert price(conn, seed.products[theirs_last]) == D("244.44")
    kept = conn.execute("select details from loyverse.loyverse_inbound_audit where decision like 'CONFLICT%%'"
                        " order by id").fetchall()
    # each decision says which offset it used (the estimate only grows within the hour)
    used = [r["details"]["loyverse_clock_offset_ms"] for r in kept]
    assert len(used) == 2 and all(measured <= ms < offset * 1000 + 1000 for ms in used), (used, measured)
