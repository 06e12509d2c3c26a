"""Guardrails and never-sent prices, in SQL (0061): what the claim returns, holds and cancels."""

from __future__ import annotations

import decimal

import psycopg
import pytest

D = decimal.Decimal


def queue(conn):
    return conn.execute("select * from loyverse.loyverse_price_sync_queue order by id").fetchall()


def claim(conn, world, name="w:1"):
    return conn.execute("select * from loyverse.claim_price_sync_batch(%s, %s)",
                        (world["account_id"], name)).fetchall()


def complete_done(conn, name="w:1"):
    rows = conn.execute("select id from loyverse.loyverse_price_sync_queue where claimed_by = %s"
                        " and status = 'processing'", (name,)).fetchall()
    results = [{"id": r["id"], "outcome": "done", "sent": True} for r in rows]
    conn.execute("select loyverse.complete_price_sync_batch(%s, %s::jsonb)", (name, psycopg.types.json.Jsonb(results)))


@pytest.fixture
def guarded(conn, world):
    conn.execute("update loyverse.loyverse_price_sync_settings set hold_change_percent = 100")  # the default
    return world


def test_the_default_holds_a_x100_typo_and_lets_a_5_percent_menu_update_through(conn, guarded):
    a, b = guarded["products"][:2]
    conn.execute("update public.products set price = 1000 where id = %s", (a,))  # 10.00 -> 1000.00
    conn.execute("update public.products set price = 10.50 where id = %s", (b,))  # +5 %
    got = claim(conn, guarded)
    assert [r["product_id"] for r in got] == [b]
    held = {r["product_id"]: r for r in queue(conn)}[a]
    assert (held["status"], held["last_error_code"], held["claimed_by"], held["lease_until"]) == (
        "held", "HELD_CHANGE_PERCENT", None, None)
    assert "more than 100.00%" in held["last_error"]
    (view,) = conn.execute("select * from loyverse.price_sync_held").fetchall()
    assert (view["product_id"], view["loyverse_price"], view["price_to_send"], view["reason_code"]) == (
        a, D("10.00"), D("1000.000"), "HELD_CHANGE_PERCENT")
    status = {str(r["restaurant_id"]): r["held"] for r in conn.execute("select * from loyverse.price_sync_status")}
    assert status == {guarded["restaurants"][0]: 1, guarded["restaurants"][1]: 0}
    assert claim(conn, guarded, "w:2") == []  # held rows are never claimed


def test_a_division_typo_is_held_too_and_a_halving_or_doubling_is_not(conn, guarded):
    a, b, c = guarded["products"][:3]
    conn.execute("update public.products set price = 0.10 where id = %s", (a,))  # /100
    conn.execute("update public.products set price = 5 where id = %s", (b,))  # halved
    conn.execute("update public.products set price = 20 where id = %s", (c,))  # doubled
    assert sorted(r["product_id"] for r in claim(conn, guarded)) == sorted([b, c])
    assert [r["product_id"] for r in queue(conn) if r["status"] == "held"] == [a]


def test_amount_and_floor_guardrails(conn, guarded):
    a, b, c = guarded["products"][:3]
    conn.execute("update loyverse.loyverse_price_sync_settings set hold_change_percent = null,"
                 " hold_change_amount = 5, hold_below_price = 1")
    conn.execute("update public.products set price = 16 where id = %s", (a,))  # +6 > 5
    conn.execute("update public.products set price = 0.50 where id = %s", (b,))  # under the floor
    conn.execute("update public.products set price = 14 where id = %s", (c,))  # +4: sent
    assert [r["product_id"] for r in claim(conn, guarded)] == [c]
    codes = {r["product_id"]: r["last_error_code"] for r in queue(conn) if r["status"] == "held"}
    assert codes == {a: "HELD_CHANGE_AMOUNT", b: "HELD_BELOW_FLOOR"}


def test_approve_sends_the_held_change_as_it_is_and_reject_never_sends_it(conn, guarded):
    a, b = guarded["products"][:2]
    rid = guarded["restaurants"][0]
    conn.execute("update public.products set price = price * 100 where id = any(%s)", ([a, b],))
    assert claim(conn, guarded) == []
    n = conn.execute("select loyverse.approve_held_price_changes(%s, %s) as n", (rid, a)).fetchone()["n"]
    assert n == 1
    got = claim(conn, guarded, "w:2")
    assert [(r["product_id"], r["price_to_send"]) for r in got] == [(a, D("1000.000"))]
    complete_done(conn, "w:2")
    assert conn.execute("select loyverse.reject_held_price_changes(%s) as n", (rid,)).fetchone()["n"] == 1
    rows = {r["product_id"]: r for r in queue(conn)}
    assert rows[a]["status"] == "done" and rows[a]["approved_by"] == "postgres"
    assert rows[b]["status"] == "cancelled" and rows[b]["last_error"].startswith("rejected by postgres")
    assert conn.execute("select count(*) as n from loyverse.price_sync_held").fetchone()["n"] == 0
    logs = [r["sync_type"] for r in conn.execute("select sync_type from loyverse.price_sync_history")]
    assert "APPROVE" in logs and "REJECT" in logs


def test_a_newer_price_supersedes_a_held_one(conn, guarded):
    a = guarded["products"][0]
    conn.execute("update public.products set price = 1000 where id = %s", (a,))
    assert claim(conn, guarded) == []
    conn.execute("update public.products set price = 10.20 where id = %s", (a,))  # corrected
    (got,) = claim(conn, guarded, "w:2")
    assert got["price_to_send"] == D("10.200")
    statuses = [(r["status"], r["last_error"]) for r in queue(conn)]
    assert statuses == [("cancelled", "held change superseded by a newer change"), ("processing", None)]
    # approving after a newer change was queued releases nothing old
    conn.execute("update public.products set price = 2000 where id = %s", (a,))
    assert conn.execute("select loyverse.approve_held_price_changes(%s) as n",
                        (guarded["restaurants"][0],)).fetchone()["n"] == 0


def test_approve_and_reject_name_a_bad_argument(conn, guarded):
    for fn in ("approve_held_price_changes", "reject_held_price_changes"):
        with pytest.raises(psycopg.errors.NoDataFound, match=r"^restaurant: no restaurant"):
            conn.execute(f"select loyverse.{fn}('00000000-0000-0000-0000-000000000009')")
        with pytest.raises(psycopg.errors.NoDataFound, match=r"^product: no product"):
            conn.execute(f"select loyverse.{fn}(%s, %s)", (guarded["restaurants"][0], guarded["products"][3]))


def test_error_digest_lists_held_changes(conn, guarded):
    rid = guarded["restaurants"][0]
    conn.execute("select loyverse.update_price_sync_settings(%s, "
                 "'{\"notify_on_error\": true, \"notification_email\": \"boss@example.com\"}')", (rid,))
    conn.execute("update public.products set price = 1000 where id = %s", (guarded["products"][0],))
    claim(conn, guarded)
    assert conn.execute("select loyverse.enqueue_price_sync_digests() as n").fetchone()["n"] == 1
    (mail,) = conn.execute("select * from loyverse.loyverse_notification_outbox").fetchall()
    assert "1 held for approval" in mail["body"] and "sync approve" in mail["body"]
    assert mail["payload"]["failures"][0]["status"] == "held"


# ---- VARIABLE prices: never queued, never claimed, their flag never cleared by a sync ----

def make_variable(conn, product_id):
    conn.execute("update loyverse.loyverse_item_mappings set loyverse_pricing_type = 'VARIABLE',"
                 " needs_attention = true, attention_reason = 'VARIABLE price in Loyverse: imported as 0'"
                 " where product_id = %s", (product_id,))


def test_a_variable_price_is_never_queued_whatever_the_source(conn, world):
    a = world["products"][0]
    rid = world["restaurants"][0]
    make_variable(conn, a)
    conn.execute("update public.products set price = 99 where id = %s", (a,))  # trigger
    conn.execute("select loyverse.update_price_sync_settings(%s, '{\"price_rounding_rule\": \"NEAREST_0.10\"}')",
                 (rid,))  # settings catch-up
    conn.execute("select loyverse.trigger_price_sync(%s, true)", (rid,))  # full manual sync
    conn.execute("select loyverse.enqueue_current_prices(array[%s]::uuid[], 'manual')", (a,))
    assert [r for r in queue(conn) if r["product_id"] == a] == []
    # retry: a failed row of it is closed, nothing is queued, and its flag stays
    conn.execute("insert into loyverse.loyverse_price_sync_queue (product_id, restaurant_id, account_id, status,"
                 " new_price, price_to_send) values (%s, %s, %s, 'failed', 99, 99)", (a, rid, world["account_id"]))
    conn.execute("select loyverse.retry_price_sync(%s)", (rid,))
    assert [r["status"] for r in queue(conn) if r["product_id"] == a] == ["cancelled"]
    m = conn.execute("select * from loyverse.loyverse_item_mappings where product_id = %s", (a,)).fetchone()
    assert (m["loyverse_pricing_type"], m["needs_attention"]) == ("VARIABLE", True)


def test_the_claim_cancels_a_pending_row_that_must_not_be_sent(conn, world):
    a, b, c = world["products"][:3]
    conn.execute("update public.products set price = 11 where id = any(%s)", ([a, b, c],))
    make_variable(conn, a)  # turned VARIABLE after queueing (a re-import)
    got = claim(conn, world)
    assert sorted(r["product_id"] for r in got) == sorted([b, c])
    assert "enabled" not in got[0]  # the claim filtered: no field for the worker to filter on
    row = {r["product_id"]: r for r in queue(conn)}[a]
    assert (row["status"], row["last_error_code"]) == ("cancelled", "VARIABLE_PRICE")
    complete_done(conn)
    m = conn.execute("select * from loyverse.loyverse_item_mappings where product_id = %s", (a,)).fetchone()
    assert m["needs_attention"] and m["last_synced_price"] == 10


def test_a_disabled_restaurants_rows_are_cancelled_by_the_claim_not_returned(conn, world):
    conn.execute("update public.products set price = 12")
    conn.execute("update loyverse.loyverse_price_sync_settings set enabled = false"
                 " where restaurant_id = %s", (world["restaurants"][0],))
    got = claim(conn, world)
    assert {str(r["restaurant_id"]) for r in got} == {world["restaurants"][1]}
    assert sorted(r["last_error_code"] for r in queue(conn) if r["status"] == "cancelled") == ["DISABLED"] * 3


def test_make_price_fixed_flips_the_mapping_and_queues_the_price_approved(conn, world):
    a = world["products"][0]
    rid = world["restaurants"][0]
    conn.execute("update loyverse.loyverse_price_sync_settings set hold_change_percent = 100")
    make_variable(conn, a)
    conn.execute("update loyverse.loyverse_item_mappings set last_synced_price = 0 where product_id = %s", (a,))
    conn.execute("update public.products set price = 0 where id = %s", (a,))
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match=r"^product: the price of .* is 0.00"):
        conn.execute("select loyverse.make_price_fixed(%s, %s)", (rid, a))
    conn.execute("update public.products set price = 4.80 where id = %s", (a,))
    assert queue(conn) == []  # still VARIABLE: the price change queued nothing
    assert conn.execute("select loyverse.make_price_fixed(%s, %s) as n", (rid, a)).fetchone()["n"] == 1
    (row,) = queue(conn)
    assert (row["source"], row["price_to_send"], row["approved_by"]) == ("make_fixed", D("4.800"), "postgres")
    m = conn.execute("select * from loyverse.loyverse_item_mappings where product_id = %s", (a,)).fetchone()
    assert (m["loyverse_pricing_type"], m["needs_attention"], m["attention_reason"]) == ("FIXED", False, None)
    (got,) = claim(conn, world)
    assert got["source"] == "make_fixed"
    with pytest.raises(psycopg.errors.NoDataFound, match=r"^product: no product"):
        conn.execute("select loyverse.make_price_fixed(%s, %s)", (rid, world["products"][3]))


def test_a_sync_that_finds_a_variable_price_in_loyverse_marks_the_mapping(conn, world):
    a = world["products"][0]
    conn.execute("update public.products set price = 11 where id = %s", (a,))
    (row,) = claim(conn, world)
    results = [{"id": row["id"], "outcome": "failed", "code": "VARIABLE_IN_LOYVERSE", "error": "variable"}]
    conn.execute("select loyverse.complete_price_sync_batch('w:1', %s::jsonb)", (psycopg.types.json.Jsonb(results),))
    m = conn.execute("select * from loyverse.loyverse_item_mappings where product_id = %s", (a,)).fetchone()
    assert (m["loyverse_pricing_type"], m["needs_attention"]) == ("VARIABLE", True)
    conn.execute("select loyverse.retry_price_sync()")
    assert [r["status"] for r in queue(conn)] == ["cancelled"]  # the retry queued nothing


def test_a_claim_that_can_take_nothing_returns_at_once_instead_of_picking_again(conn, dsn, guarded):
    # the claim picks again after cancelling or holding everything it picked; rows locked by
    # a writer (skipped) must end it, not make it spin until the writer commits
    conn.execute("update public.products set price = 11 where id = %s", (guarded["products"][0],))
    with psycopg.connect(dsn) as writer:  # a transaction holding the only pending row
        writer.execute("update loyverse.loyverse_price_sync_queue set priority = priority")
        conn.execute("set statement_timeout = '20s'")  # a spin would fail here, not hang the suite
        assert claim(conn, guarded) == []
        writer.rollback()
    assert [r["product_id"] for r in claim(conn, guarded, "w:2")] == [guarded["products"][0]]


def test_paused_and_from_loyverse_rows_are_never_returned_by_the_claim(conn, world):
    r0, r1 = world["restaurants"]
    conn.execute("update public.products set price = 13")
    # set behind the settings API's back, as a DBA's UPDATE could: the claim is the filter
    conn.execute("update loyverse.loyverse_price_sync_settings set sync_direction = 'FROM_LOYVERSE'"
                 " where restaurant_id = %s", (r0,))
    conn.execute("select loyverse.pause_price_sync(%s)", (r1,))
    assert claim(conn, world) == []
    by_restaurant = {}
    for r in queue(conn):
        by_restaurant.setdefault(str(r["restaurant_id"]), []).append((r["status"], r["last_error_code"]))
    assert by_restaurant[str(r0)] == [("cancelled", "DISABLED")] * 3  # never sendable: closed
    assert by_restaurant[str(r1)] == [("pending", None)] * 3  # paused: waits, untouched
    conn.execute("select loyverse.resume_price_sync(%s)", (r1,))
    got = claim(conn, world)
    assert sorted(map(str, {r["restaurant_id"] for r in got})) == [str(r1)] and len(got) == 3
    assert set(got[0]) == {"id", "product_id", "restaurant_id", "version", "source", "attempts", "max_attempts",
                           "old_price", "new_price", "price_to_send", "loyverse_item_id", "loyverse_variant_id",
                           "loyverse_store_id", "last_synced_price", "sync_direction", "in_doubt_prices"}


def test_a_newer_price_written_to_loyverse_cancels_an_older_held_conflict(conn, world):
    """A held conflict compares an older price of ours with Loyverse's; once a newer price of
    ours is written, it is moot and leaves the dashboard (the two-way chaos test found one
    left behind under `latest`, with both sides already equal)."""
    a = world["products"][0]
    conn.execute("update public.products set price = 11 where id = %s", (a,))
    (row,) = claim(conn, world)
    conn.execute("select loyverse.complete_price_sync_batch('w:1', %s::jsonb)", (psycopg.types.json.Jsonb([
        {"id": row["id"], "outcome": "conflict", "loyverse_price": "12.00"}]),))
    assert [(r["status"], r["new_price"]) for r in queue(conn)] == [("conflict", D("11"))]
    conn.execute("update public.products set price = 13 where id = %s", (a,))  # a newer price of ours
    (newer,) = claim(conn, world, "w:2")
    assert newer["id"] != row["id"]
    complete_done(conn, "w:2")
    assert [(r["status"], r["new_price"]) for r in queue(conn)] == [("cancelled", D("11")), ("done", D("13"))]
    assert "superseded" in queue(conn)[0]["last_error"]
