"""Issue #18's reproductions, end to end against the emulator over HTTP: each asserts what
Loyverse holds (pricing type and price per store), the queue and the mappings."""

from __future__ import annotations

import asyncio
import decimal
from typing import Any

import psycopg
import pytest

from loyverse_emulator import server
from loyverse_sync.importer import runs, snapshot
from loyverse_sync.loyverse import client as client_mod
from loyverse_sync.pricesync import engine
from loyverse_sync.worker import app as app_mod
from tests.support import importer as import_testing
from tests.support import pricesync as testing

D = decimal.Decimal
FAST = engine.EngineConfig(http_max_attempts=2, http_timeout=5)
#: a failed row's backoff is its restaurant's setting (production: 2 s, capped at 900 s)
FAST_BACKOFF = {"backoff_base_seconds": 0.01, "backoff_cap_seconds": 0.05}


@pytest.fixture
def emu():
    # the menu: --menu 100 --seed 5 (VARIABLE-priced items among them)
    with server.EmulatorServer(menu=100, seed=5, merchants=1, stores=2, time_scale=100) as emu:
        emu.state.set_modes(emu.merchants[0]["merchant_id"], rate_limit=None)
        yield emu


def store_entries(emu: server.EmulatorServer) -> dict[tuple[str, str], tuple[str, D | None]]:
    """(variant_id, store_id) -> (pricing_type, price) in Loyverse now."""
    merchant = emu.merchants[0]
    out = {}
    with client_mod.LoyverseClient(emu.base_url, merchant["tokens"][0]) as client:
        for item in client.iter_items():
            for variant in item.get("variants") or []:
                for e in variant.get("stores") or []:
                    price = None if e.get("price") is None else D(str(e["price"])).quantize(D("0.01"))
                    out[(variant["variant_id"], e["store_id"])] = (e.get("pricing_type", "FIXED"), price)
    return out


def mappings(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return conn.execute("select m.*, p.price from loyverse.loyverse_item_mappings m"
                        " join public.products p on p.id = m.product_id order by m.id").fetchall()


def run_worker(dsn: str) -> None:
    """A real procrastinate worker, one shot: drains every queued sync job, then returns."""
    app = app_mod.build_app(app_mod.worker_connector(dsn), close_connector=True)

    async def run() -> None:
        async with app.open_async():
            await app.run_worker_async(wait=False, install_signal_handlers=False, queues=["price_sync"],
                                       delete_jobs="successful")

    asyncio.run(run())


def fixed_prices_match(conn, emu, store_id):
    have = store_entries(emu)
    wrong = []
    for m in mappings(conn):
        if m["loyverse_pricing_type"] != "FIXED":
            continue
        want = conn.execute("select round(loyverse.price_to_send(%s, s.price_rounding_rule, 2, %s), 2) as p"
                            " from loyverse.loyverse_price_sync_settings s where s.restaurant_id = %s",
                            (m["price"], m["price_factor"], m["restaurant_id"])).fetchone()["p"]
        if have.get((m["loyverse_variant_id"], store_id)) != ("FIXED", want):
            wrong.append((m["loyverse_variant_id"], have.get((m["loyverse_variant_id"], store_id)), want))
    return wrong


def test_repro_1_a_settings_change_never_pushes_a_variable_price(conn, dsn, connector, emu, fernet_key):
    rid, _account_id, store = import_testing.link_emulator(conn, emu)
    snap = snapshot.get_or_fetch(connector, rid)
    result = runs.run(connector, rid, snap.id, runs.Options())
    assert result["status"] == "SUCCESS"
    variable = [m for m in mappings(conn) if m["loyverse_pricing_type"] == "VARIABLE"]
    assert variable, "the menu has VARIABLE prices"
    assert all(m["needs_attention"] and m["price"] == 0 for m in variable)
    before = store_entries(emu)
    assert {before[(m["loyverse_variant_id"], store)][0] for m in variable} == {"VARIABLE"}

    for changes in ({"price_rounding_rule": "NEAREST_0.10"}, {"sync_direction": "FROM_LOYVERSE"},
                    {"sync_direction": "TO_LOYVERSE"}):
        conn.execute("select loyverse.update_price_sync_settings(%s, %s::jsonb)",
                     (rid, psycopg.types.json.Jsonb(changes)))
        run_worker(dsn)
    conn.execute("select loyverse.trigger_price_sync(%s, true)", (rid,))  # a full manual sync too
    run_worker(dsn)

    after = store_entries(emu)
    for m in variable:
        assert after[(m["loyverse_variant_id"], store)] == before[(m["loyverse_variant_id"], store)]
    assert all(m["needs_attention"] for m in mappings(conn) if m["loyverse_pricing_type"] == "VARIABLE")
    queued_variable = conn.execute(
        "select count(*) as n from loyverse.loyverse_price_sync_queue q join loyverse.loyverse_item_mappings m"
        " on m.product_id = q.product_id where m.loyverse_pricing_type = 'VARIABLE'").fetchone()["n"]
    assert queued_variable == 0
    assert fixed_prices_match(conn, emu, store) == []  # the FIXED ones did follow the new rounding
    assert conn.execute("select count(*) as n from loyverse.loyverse_price_sync_queue"
                        " where status = 'done'").fetchone()["n"] > 0


@pytest.fixture
def seed(conn, emu, fernet_key):
    return testing.seed_from_emulator(conn, emu, stores=1, rate_limit_window_seconds=3.0,
                                      settings={"hold_change_percent": 100, **FAST_BACKOFF})


def test_repro_2_one_row_that_cannot_be_sent_fails_alone(conn, dsn, connector, emu, seed):
    store = next(iter(seed.restaurants))
    fixed = [p for p in seed.products.values()
             if conn.execute("select loyverse_pricing_type as t from loyverse.loyverse_item_mappings"
                             " where product_id = %s", (p,)).fetchone()["t"] == "FIXED"]
    # NaN, and a price the trigger could not queue before, are refused at the column: the
    # whole statement fails with a constraint violation and nothing is queued
    for bad in ("NaN", "5000000000"):
        with pytest.raises(psycopg.errors.CheckViolation, match="product_price_is_a_number_below_100000000"):
            conn.execute("update public.products set price = case when id = %s then %s::numeric"
                         " else price + 0.10 end where id = any(%s)", (fixed[0], bad, fixed))
    assert conn.execute("select count(*) as n from loyverse.loyverse_price_sync_queue").fetchone()["n"] == 0
    # a row that cannot be sent (a tax factor takes it past what Loyverse and our mapping can
    # hold) among good ones: it fails alone, with its reason; every neighbour is written
    conn.execute("update loyverse.loyverse_item_mappings set price_factor = 0.001 where product_id = %s", (fixed[0],))
    conn.execute("update loyverse.loyverse_price_sync_settings set hold_change_percent = null")
    conn.execute("update public.products set price = case when id = %s then 99999999 else price + 0.10 end"
                 " where id = any(%s)", (fixed[0], fixed))
    engine.drain_account(connector, seed.account_id, config=FAST)
    rows = {str(r["product_id"]): r for r in conn.execute("select * from loyverse.loyverse_price_sync_queue")}
    assert len(rows) == len(fixed) > 20
    bad = rows.pop(fixed[0])
    assert (bad["status"], bad["last_error_code"]) == ("failed", "PRICE_OUT_OF_RANGE")
    assert {r["status"] for r in rows.values()} == {"done"}
    mapping = {str(m["product_id"]): m for m in mappings(conn)}
    assert mapping[fixed[0]]["needs_attention"]
    have = store_entries(emu)
    variants = {p: v for (v, _s), p in seed.products.items()}
    assert have[(variants[fixed[0]], store)][1] != D("99999999") and have[(variants[fixed[0]], store)][1] < 1000
    wrong = [p for p in fixed[1:] if have[(variants[p], store)] != ("FIXED", mapping[p]["price"])]
    assert wrong == []


def test_repro_3_a_spoofed_queue_row_reaches_neither_the_queue_nor_loyverse(conn, dsn, connector, emu, seed):
    before = store_entries(emu)
    pid = next(iter(seed.products.values()))
    for role in ("loyverse_readonly", "loyverse_app"):
        with conn.transaction():
            conn.execute(f"set local role {role}")
            conn.execute("create temp table t (id uuid); create function pg_temp.spoof() returns trigger"
                         " language plpgsql as $$ begin perform loyverse.enqueue_price_changes(array[new.id],"
                         " array[0.01]); return null; end $$; create trigger s after insert on pg_temp.t"
                         " for each row execute function pg_temp.spoof()")
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute("insert into pg_temp.t values (%s)", (pid,))
            raise psycopg.Rollback()
    assert conn.execute("select count(*) as n from loyverse.loyverse_price_sync_queue").fetchone()["n"] == 0
    engine.drain_account(connector, seed.account_id, config=FAST)
    assert store_entries(emu) == before


def test_repro_4_values_that_break_later_are_refused_by_the_database(conn, dsn, connector, emu, seed):
    before = store_entries(emu)
    for value in ("NaN", "Infinity", "1e308", "0", "-5"):
        with pytest.raises(psycopg.errors.CheckViolation, match="rate_limit_window_is_between_1_and_86400_seconds"):
            conn.execute("update loyverse.loyverse_accounts set rate_limit_window_seconds = %s::float8", (value,))
    with pytest.raises(psycopg.errors.CheckViolation, match="rate_limit_requests_is_at_most_100000"):
        conn.execute("update loyverse.loyverse_accounts set rate_limit_requests = 99999999")
    with pytest.raises(psycopg.errors.CheckViolation, match="restaurant_name_is_at_most_200_characters"):
        conn.execute("update public.restaurants set name = repeat('x', 1000000)")
    # the governor still works on the stored, sane values
    pid = next(p for p in seed.products.values()
               if conn.execute("select loyverse_pricing_type as t from loyverse.loyverse_item_mappings"
                               " where product_id = %s", (p,)).fetchone()["t"] == "FIXED")
    conn.execute("update public.products set price = price + 0.05 where id = %s", (pid,))
    assert engine.drain_account(connector, seed.account_id, config=FAST).counts.get("done") == 1
    assert sum(1 for k, v in store_entries(emu).items() if before.get(k) != v) == 1


def test_repro_5_a_x100_typo_is_held_until_a_person_decides(conn, dsn, connector, emu, seed):
    store = next(iter(seed.restaurants))
    rid = seed.restaurants[store]
    fixed = [(v, p) for (v, _s), p in seed.products.items()
             if conn.execute("select loyverse_pricing_type as t from loyverse.loyverse_item_mappings"
                             " where product_id = %s", (p,)).fetchone()["t"] == "FIXED"]
    (typo_v, typo), (other_v, other), (menu_v, menu) = fixed[:3]
    conn.execute("update public.products set price = 6.80 where id = any(%s)", ([typo, other],))
    conn.execute("update loyverse.loyverse_price_sync_settings set hold_change_percent = null")
    engine.drain_account(connector, seed.account_id, config=FAST)  # Loyverse holds 6.80 for both
    conn.execute("update loyverse.loyverse_price_sync_settings set hold_change_percent = 100")  # the default

    conn.execute("update public.products set price = 680.00 where id = any(%s)", ([typo, other],))  # the typo
    menu_price = conn.execute("update public.products set price = round(price * 1.05, 2) where id = %s"
                              " returning price", (menu,)).fetchone()["price"]  # +5 %
    engine.drain_account(connector, seed.account_id, config=FAST)
    have = store_entries(emu)
    assert have[(typo_v, store)] == have[(other_v, store)] == ("FIXED", D("6.80"))
    assert have[(menu_v, store)] == ("FIXED", menu_price)
    held = conn.execute("select product_id, reason_code from loyverse.price_sync_held order by product_id").fetchall()
    assert sorted((str(r["product_id"]), r["reason_code"]) for r in held) == sorted(
        [(typo, "HELD_CHANGE_PERCENT"), (other, "HELD_CHANGE_PERCENT")])
    assert conn.execute("select held from loyverse.price_sync_status where restaurant_id = %s",
                        (rid,)).fetchone()["held"] == 2

    # a person decides: one was meant (approve), the other a typo (reject, then corrected)
    assert conn.execute("select loyverse.approve_held_price_changes(%s, %s) as n", (rid, other)).fetchone()["n"] == 1
    assert conn.execute("select loyverse.reject_held_price_changes(%s, %s) as n", (rid, typo)).fetchone()["n"] == 1
    conn.execute("update public.products set price = 6.90 where id = %s", (typo,))
    engine.drain_account(connector, seed.account_id, config=FAST)
    have = store_entries(emu)
    assert have[(other_v, store)] == ("FIXED", D("680.00"))
    assert have[(typo_v, store)] == ("FIXED", D("6.90"))
    assert conn.execute("select count(*) as n from loyverse.price_sync_held").fetchone()["n"] == 0
    dead = conn.execute("select count(*) as n from loyverse.loyverse_price_sync_queue"
                        " where status in ('dead', 'failed')").fetchone()["n"]
    assert dead == 0


def test_a_price_made_variable_in_loyverse_after_the_import_is_never_overwritten(conn, dsn, connector, emu, seed):
    store = next(iter(seed.restaurants))
    fixed = [(v, p) for (v, _s), p in seed.products.items()
             if conn.execute("select loyverse_pricing_type as t from loyverse.loyverse_item_mappings"
                             " where product_id = %s", (p,)).fetchone()["t"] == "FIXED"]
    (variant, product), (other_v, other) = fixed[:2]
    with emu.state.lock:  # the back office switches it to "price entered at the counter"
        rec = emu.state.merchant(emu.merchants[0]["merchant_id"]).collections["variants"][variant]
        for entry in rec.data["stores"]:
            if entry["store_id"] == store:
                entry["pricing_type"], entry["price"] = "VARIABLE", None
    conn.execute("update public.products set price = price + 1 where id = any(%s)", ([product, other],))
    engine.drain_account(connector, seed.account_id, config=FAST)
    have = store_entries(emu)
    assert have[(variant, store)] == ("VARIABLE", None)
    ours = conn.execute("select price from public.products where id = %s", (other,)).fetchone()["price"]
    assert have[(other_v, store)] == ("FIXED", ours)
    rows = {str(r["product_id"]): r for r in conn.execute("select * from loyverse.loyverse_price_sync_queue")}
    assert (rows[product]["status"], rows[product]["last_error_code"]) == ("failed", "VARIABLE_IN_LOYVERSE")
    assert rows[other]["status"] == "done"
    m = conn.execute("select * from loyverse.loyverse_item_mappings where product_id = %s", (product,)).fetchone()
    assert (m["loyverse_pricing_type"], m["needs_attention"]) == ("VARIABLE", True)
    # a retry sends nothing; only make-fixed does
    conn.execute("select loyverse.retry_price_sync()")
    engine.drain_account(connector, seed.account_id, config=FAST)
    assert store_entries(emu)[(variant, store)] == ("VARIABLE", None)
    conn.execute("select loyverse.make_price_fixed(%s, %s)", (seed.restaurants[store], product))
    engine.drain_account(connector, seed.account_id, config=FAST)
    ours = conn.execute("select price from public.products where id = %s", (product,)).fetchone()["price"]
    assert store_entries(emu)[(variant, store)] == ("FIXED", ours)
