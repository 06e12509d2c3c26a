"""loyverse_sync_items_total: how many times price changes reached done, failed or dead.

Migration 0056 keeps the totals in loyverse.loyverse_price_sync_outcome_totals: before it the
metric counted the done, failed and dead rows still in the queue, so it read the whole queue
at every scrape and went DOWN when the retention job pruned done rows, when `sync retry`
closed failed and dead rows or when an account was deleted (Prometheus reads that as a
counter reset). These tests read the totals the way an operator does: the metrics query.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import psycopg
import pytest

from loyverse_sync import queries


def metric(conn):
    """loyverse_sync_items_total as `loyverse-sync metrics` reads it: {(restaurant, outcome): n}."""
    return {(r["restaurant_name"], r["outcome"]): int(r["n"])
            for r in queries.execute(conn, "ops", "metrics_outcomes").fetchall()}


def queue_outcomes(conn):
    """What the metric was before 0056: the done, failed and dead rows in the queue now."""
    return {(r["name"], r["status"]): r["n"] for r in conn.execute(
        "select r.name, q.status, count(*) as n from loyverse.loyverse_price_sync_queue q"
        " join public.restaurants r on r.id = q.restaurant_id"
        " where q.status in ('done', 'failed', 'dead') group by r.name, q.status").fetchall()}


def send(conn, world, outcomes, claimed_by="w:1"):
    """Change the price of the products in `outcomes` ({product: outcome}), claim every due
    row and report each product's outcome (a retry with max_attempts 1 is dead)."""
    for pid, outcome in outcomes.items():
        conn.execute("update public.products set price = price + 1 where id = %s", (pid,))
        if outcome == "dead":
            conn.execute("update loyverse.loyverse_price_sync_queue set max_attempts = 1"
                         " where product_id = %s and status = 'pending'", (pid,))
    conn.execute("update loyverse.loyverse_price_sync_queue set next_attempt_at = now() where status = 'pending'")
    claimed = conn.execute("select id, product_id from loyverse.claim_price_sync_batch(%s, %s)",
                           (world["account_id"], claimed_by)).fetchall()
    assert {r["product_id"] for r in claimed} == set(outcomes)
    results = [{"id": r["id"], "outcome": "retry" if outcomes[r["product_id"]] in ("dead", "retry")
                else outcomes[r["product_id"]], "sent": True, "error": "e", "code": "C"} for r in claimed]
    return conn.execute("select loyverse.complete_price_sync_batch(%s, %s) as c",
                        (claimed_by, json.dumps(results))).fetchone()["c"]


def test_totals_are_the_outcomes_the_rows_reached(conn, world):
    p = world["products"]
    counts = send(conn, world, {p[0]: "done", p[1]: "done", p[2]: "failed",
                                p[3]: "done", p[4]: "dead", p[5]: "retry"})
    assert (counts["done"], counts["failed"], counts["dead"], counts["retried"]) == (3, 1, 1, 1)
    expected = {("R0", "done"): 2, ("R0", "failed"): 1, ("R1", "done"): 1, ("R1", "dead"): 1}
    assert metric(conn) == expected
    assert queue_outcomes(conn) == expected  # nothing pruned or retried yet: the old count agrees
    # the row sent back to pending counts when it ends
    send(conn, world, {p[5]: "done"}, "w:2")
    assert metric(conn)[("R1", "done")] == 2


def test_totals_never_drop_after_pruning_retrying_or_deleting_rows(conn, world):
    p = world["products"]
    send(conn, world, {p[0]: "done", p[1]: "done", p[2]: "failed", p[3]: "done", p[4]: "dead", p[5]: "done"})
    before = metric(conn)
    assert before == {("R0", "done"): 2, ("R0", "failed"): 1, ("R1", "done"): 2, ("R1", "dead"): 1}

    conn.execute("delete from loyverse.loyverse_price_sync_queue where product_id = %s", (p[0],))
    assert metric(conn) == before

    conn.execute("update loyverse.loyverse_price_sync_queue set completed_at = now() - interval '8 days'"
                 " where status = 'done'")
    assert conn.execute("select loyverse.prune_price_sync_queue() as n").fetchone()["n"] == 3
    assert metric(conn) == before

    assert conn.execute("select loyverse.retry_price_sync() as n").fetchone()["n"] == 2
    assert conn.execute("select count(*) as n from loyverse.loyverse_price_sync_queue"
                        " where status in ('failed', 'dead')").fetchone()["n"] == 0
    assert metric(conn) == before

    conn.execute("delete from loyverse.loyverse_accounts where id = %s", (world["account_id"],))
    assert conn.execute("select count(*) as n from loyverse.loyverse_price_sync_queue").fetchone()["n"] == 0
    assert metric(conn) == before
    assert queue_outcomes(conn) == {}  # what the metric used to fall to


def test_a_retried_change_that_fails_again_counts_again(conn, world):
    p0, p3 = world["products"][0], world["products"][3]
    send(conn, world, {p0: "failed", p3: "dead"})
    assert metric(conn) == {("R0", "failed"): 1, ("R1", "dead"): 1}
    for n in (2, 3):
        assert conn.execute("select loyverse.retry_price_sync() as n").fetchone()["n"] == 2
        conn.execute("update loyverse.loyverse_price_sync_queue set max_attempts = 1 where status = 'pending'")
        send(conn, world, {p0: "failed", p3: "dead"}, f"w:{n}")
        assert metric(conn) == {("R0", "failed"): n, ("R1", "dead"): n}
    # the queue keeps one failed and one dead row: the other attempts were closed by the retries
    assert queue_outcomes(conn) == {("R0", "failed"): 1, ("R1", "dead"): 1}


def test_an_expired_lease_that_dead_letters_a_row_counts(conn, world):
    p0, p1 = world["products"][:2]
    conn.execute("update public.products set price = 20 where id in (%s, %s)", (p0, p1))
    conn.execute("update loyverse.loyverse_price_sync_queue set max_attempts = 1 where product_id = %s", (p0,))
    conn.execute("select * from loyverse.claim_price_sync_batch(%s, 'gone:1', 250, 0.01)", (world["account_id"],))
    time.sleep(0.05)
    assert conn.execute("select loyverse.release_expired_price_sync_leases() as n").fetchone()["n"] == 2
    statuses = {r["product_id"]: r["status"] for r in conn.execute(
        "select product_id, status from loyverse.loyverse_price_sync_queue").fetchall()}
    assert statuses == {p0: "dead", p1: "pending"}
    assert metric(conn) == {("R0", "dead"): 1}


def test_rows_changed_by_hand_count_when_they_enter_an_outcome(conn, world):
    p0, p1 = world["products"][:2]
    r0 = world["restaurants"][0]
    conn.execute("update public.products set price = 30 where id = %s", (p0,))
    conn.execute("update loyverse.loyverse_price_sync_queue set status = 'failed', completed_at = now()")
    assert metric(conn) == {("R0", "failed"): 1}
    # staying failed, or changing anything else, is not entering it again
    conn.execute("update loyverse.loyverse_price_sync_queue set status = 'failed', last_error = 'x'")
    conn.execute("update loyverse.loyverse_price_sync_queue set attempts = attempts + 1")
    assert metric(conn) == {("R0", "failed"): 1}
    conn.execute("update loyverse.loyverse_price_sync_queue set status = 'pending'")
    conn.execute("update loyverse.loyverse_price_sync_queue set status = 'failed'")
    assert metric(conn) == {("R0", "failed"): 2}

    # rows inserted already finished are not counted: no path of ours inserts them, and an
    # INSERT trigger would cost every queued price change
    conn.execute("insert into loyverse.loyverse_price_sync_queue (product_id, restaurant_id, account_id, status,"
                 " new_price, price_to_send, completed_at) values (%s, %s, %s, 'dead', 1, 1, now())",
                 (p1, r0, world["account_id"]))
    assert metric(conn) == {("R0", "failed"): 2}
    # a row naming no restaurant of ours counts nowhere (and the update still works)
    conn.execute("update loyverse.loyverse_price_sync_queue set restaurant_id = %s, status = 'done'"
                 " where product_id = %s", (uuid.uuid4(), p1))
    assert metric(conn) == {("R0", "failed"): 2}


def test_the_products_trigger_and_the_completion_never_run_the_row_trigger(conn, world):
    """A bulk price update (rows inserted, then coalesced into the pending rows) and the
    worker's claim, heartbeat and completion: the outcome trigger function never runs (the
    completion counts its batch itself, once)."""
    def trigger_calls():
        row = conn.execute("select sum(calls) as n from pg_stat_xact_user_functions"
                           " where funcname = 'tg_price_sync_queue__count_outcome'").fetchone()
        return row["n"] or 0

    with conn.transaction():
        conn.execute("set local track_functions = 'all'")
        conn.execute("update public.products set price = price * 1.05")
        conn.execute("update public.products set price = price * 1.05")
        assert conn.execute("select count(*) as n from loyverse.loyverse_price_sync_queue").fetchone()["n"] == 6
        claimed = conn.execute("select id from loyverse.claim_price_sync_batch(%s, 'w:t')",
                               (world["account_id"],)).fetchall()
        conn.execute("select loyverse.extend_price_sync_lease('w:t')")
        conn.execute("select loyverse.complete_price_sync_batch('w:t', %s)",
                     (json.dumps([{"id": r["id"], "outcome": "done", "sent": True} for r in claimed]),))
        assert trigger_calls() == 0
        assert metric(conn) == {("R0", "done"): 3, ("R1", "done"): 3}
        # the statistics do see the function when it runs
        conn.execute("update loyverse.loyverse_price_sync_queue set status = 'failed'")
        assert trigger_calls() == 6
    assert metric(conn) == {("R0", "done"): 3, ("R1", "done"): 3, ("R0", "failed"): 3, ("R1", "failed"): 3}


def test_concurrent_completions_of_one_restaurant_add_up(conn, dsn, world):
    conn.execute("update public.products set price = 60")
    claims = {}
    for n in range(3):  # one item per claim: its row in R0 and its row in R1
        claims[f"w:{n}"] = [r["id"] for r in conn.execute(
            "select id from loyverse.claim_price_sync_batch(%s, %s, 1)", (world["account_id"], f"w:{n}")).fetchall()]
    start = threading.Barrier(len(claims))
    errors: list[BaseException] = []

    def complete(claimed_by: str, ids: list[int]) -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as c:
                start.wait()
                c.execute("select loyverse.complete_price_sync_batch(%s, %s)",
                          (claimed_by, json.dumps([{"id": i, "outcome": "done", "sent": True} for i in ids])))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=complete, args=item) for item in claims.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert metric(conn) == {("R0", "done"): 3, ("R1", "done"): 3}


def test_the_scrape_does_not_read_the_queue(conn, world):
    conn.execute("update public.products set price = 40")
    conn.execute("update loyverse.loyverse_price_sync_queue set status = 'done', completed_at = now()")
    plan = conn.execute("explain (format json) " + queries.get("ops", "metrics_outcomes")).fetchone()
    plan_text = json.dumps(plan)
    assert "loyverse_price_sync_outcome_totals" in plan_text
    assert "loyverse_price_sync_queue" not in plan_text
    with conn.transaction():
        conn.execute("set local role loyverse_worker")  # who runs `loyverse-sync metrics`
        assert metric(conn) == {("R0", "done"): 3, ("R1", "done"): 3}
    with conn.transaction():
        conn.execute("set local role loyverse_readonly")  # the views only
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select * from loyverse.loyverse_price_sync_outcome_totals")


def test_deleting_a_restaurant_deletes_its_totals(conn, world):
    p = world["products"]
    send(conn, world, {p[0]: "done", p[3]: "failed"})
    conn.execute("delete from public.restaurants where id = %s", (world["restaurants"][1],))
    assert metric(conn) == {("R0", "done"): 1}
    assert conn.execute("select count(*) as n from loyverse.loyverse_price_sync_outcome_totals").fetchone()["n"] == 1


@pytest.mark.parametrize(("constraint", "row"), [
    ("outcome_total_outcome_is_valid", ("cancelled", 1)),
    ("outcome_total_is_nonnegative", ("done", -1)),
])
def test_bad_totals_are_rejected_by_the_named_check(conn, world, constraint, row):
    with pytest.raises(psycopg.errors.CheckViolation) as info:
        conn.execute("insert into loyverse.loyverse_price_sync_outcome_totals (restaurant_id, outcome, total)"
                     " values (%s, %s, %s)", (world["restaurants"][0], *row))
    assert info.value.diag.constraint_name == constraint
