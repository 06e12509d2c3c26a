"""`sync held|approve|reject|make-fixed` and the guardrail settings, as subprocesses, with a
real one-shot worker and the emulator."""

from __future__ import annotations

import decimal
import json
import os
import subprocess
import sys

import pytest

from loyverse_emulator import server
from tests.support import pricesync as testing

D = decimal.Decimal


@pytest.fixture
def emu():
    with server.EmulatorServer(menu=10, seed=1, stores=1, time_scale=100) as emu:
        yield emu


@pytest.fixture
def seed(conn, emu, fernet_key):
    return testing.seed_from_emulator(conn, emu, stores=1, rate_limit_window_seconds=3.0,
                                      settings={"hold_change_percent": 100})


@pytest.fixture
def env(dsn, fernet_key):
    return {**os.environ, "DATABASE_URL": dsn}


def run(env, *args, check=True):
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "loyverse-sync"), *args],
                          env=env, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args}: rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def by_type(conn, kind):
    return [r for r in conn.execute(
        "select m.product_id, m.loyverse_variant_id, m.loyverse_store_id, p.sku, p.name from loyverse.loyverse_item_mappings m"
        " join public.products p on p.id = m.product_id where m.loyverse_pricing_type = %s order by m.id", (kind,))]


@pytest.mark.slow  # three one-shot workers as subprocesses: ~7 s on a loaded 2-core box
def test_held_approve_reject_and_make_fixed(conn, env, emu, seed):
    rid = next(iter(seed.restaurants.values()))
    a, b = by_type(conn, "FIXED")[:2]
    conn.execute("update public.products set price = price * 100 where id = any(%s)", ([a["product_id"], b["product_id"]],))
    run(env, "worker", "--one-shot")
    held = json.loads(run(env, "sync", "held", "--restaurant", rid, "--json").stdout)
    assert sorted(h["product_id"] for h in held) == sorted(str(x["product_id"]) for x in (a, b))
    status = json.loads(run(env, "sync", "status", "--restaurant", rid, "--json").stdout)
    assert status[0]["held"] == 2
    assert "HELD_CHANGE_PERCENT" in run(env, "sync", "held", "--restaurant", rid).stdout

    assert "1 held change(s) approved" in run(env, "sync", "approve", "-r", rid, "-p", str(a["product_id"])).stdout
    assert "1 held change(s) rejected" in run(env, "sync", "reject", "-r", rid, "--all").stdout
    run(env, "worker", "--one-shot")
    have = testing.loyverse_prices(emu, seed.merchant_id)
    ours = {r["id"]: r["price"] for r in conn.execute("select id, price from public.products")}
    assert have[(a["loyverse_variant_id"], a["loyverse_store_id"])] == ours[a["product_id"]]
    assert have[(b["loyverse_variant_id"], b["loyverse_store_id"])] * 100 == ours[b["product_id"]]

    # a VARIABLE price: refused while 0, then made fixed on purpose
    (v, *_) = by_type(conn, "VARIABLE")
    proc = run(env, "sync", "make-fixed", "-r", rid, "-p", str(v["product_id"]), check=False)
    assert proc.returncode == 2 and "set the price to charge first" in proc.stderr
    conn.execute("update public.products set price = 7.40 where id = %s", (v["product_id"],))
    run(env, "worker", "--one-shot")
    assert testing.loyverse_prices(emu, seed.merchant_id)[(v["loyverse_variant_id"], v["loyverse_store_id"])] is None
    assert "1 change(s) queued" in run(env, "sync", "make-fixed", "-r", rid, "-p", str(v["product_id"])).stdout
    run(env, "worker", "--one-shot")
    assert testing.loyverse_prices(emu, seed.merchant_id)[(v["loyverse_variant_id"], v["loyverse_store_id"])] == D("7.400")


@pytest.mark.slow  # a few seconds: left out of the fast lane, run by CI
def test_bad_guardrail_settings_and_commands_are_one_line_and_exit_2(env, seed):
    rid = next(iter(seed.restaurants.values()))
    for args, needle in (
        (["sync", "settings", "set", "-r", rid, "hold_change_percent=0"], "100000"),
        (["sync", "settings", "set", "-r", rid, "hold_below_price=-1"], "hold_below_price"),
        (["sync", "settings", "set", "-r", rid, "price_rounding_rule=NEAREST_1"],
         "NONE, NEAREST_0.05, NEAREST_0.10, UP, DOWN"),
        (["sync", "approve", "-r", rid], "--all"),
        (["sync", "reject", "-r", rid, "-p", "nope"], "nope"),
        (["sync", "make-fixed", "-r", "nowhere", "-p", "x"], "nowhere"),
    ):
        proc = run(env, *args, check=False)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert needle in proc.stderr and len(lines) <= 3, proc.stderr
    out = run(env, "sync", "settings", "set", "-r", rid, "hold_change_percent=null", "hold_change_amount=20").stdout
    assert "hold_change_amount" in out
