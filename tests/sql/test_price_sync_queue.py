"""The price-sync queue in SQL: trigger, coalescing, wake-up, claim, completion, API."""

from __future__ import annotations

import decimal
import json
import threading

import psycopg
import pytest

D = decimal.Decimal


def queue(conn):
    return conn.execute("select * from loyverse.loyverse_price_sync_queue order by id").fetchall()


def jobs(conn):
    return conn.execute("select * from procrastinate_jobs where task_name = 'sync_loyverse_prices'").fetchall()


def test_second_update_coalesces_into_the_pending_row(conn, world):
    pid = world["products"][0]
    conn.execute("update public.products set price = 11 where id = %s", (pid,))
    conn.execute("update public.products set price = 12 where id = %s", (pid,))
    (row,) = queue(conn)
    assert (row["old_price"], row["new_price"], row["version"], row["status"]) == (10, 12, 2, "pending")
    assert len(jobs(conn)) == 1


def test_non_price_updates_and_unchanged_prices_queue_nothing(conn, world):
    conn.execute("update public.products set name = name || '!'")
    conn.execute("update public.products set price = price")
    assert queue(conn) == [] and jobs(conn) == []


def test_import_origin_is_not_queued(conn, world):
    with conn.transaction():
        conn.execute("select set_config('loyverse_sync.origin', 'loyverse', true)")
        conn.execute("update public.products set price = 99")
    assert queue(conn) == []


def test_a_price_set_by_the_restaurants_before_trigger_on_a_non_price_update_is_queued(conn, world):
    # The reason the flag is set by an AFTER ROW trigger and not `UPDATE OF price`, which
    # only looks at the SET list.
    pid = world["products"][0]
    conn.execute("""create function public.reprice_on_rename() returns trigger language plpgsql as $$
        begin if new.name is distinct from old.name then new.price := 99; end if; return new; end $$""")
    conn.execute("create trigger reprice_on_rename before update on public.products"
                 " for each row execute function public.reprice_on_rename()")
    conn.execute("update public.products set name = 'Latte XL' where id = %s", (pid,))
    assert [(r["product_id"], r["new_price"], r["price_to_send"]) for r in queue(conn)] == [(pid, 99, 99)]
    assert len(jobs(conn)) == 1


def test_a_nested_repricing_by_the_restaurants_trigger_is_the_price_queued(conn, world):
    # The restaurant's AFTER ROW trigger adds a deposit with a nested UPDATE, whose own
    # statement trigger queues 1020 before the outer statement's trigger fires. Before 0055
    # the outer one then wrote its new row's 20 over it: products said 1020, Loyverse got 20.
    pid = world["products"][0]
    conn.execute("""create function public.add_deposit() returns trigger language plpgsql as $$
        begin update public.products set price = new.price + 1000 where id = new.id; return null; end $$""")
    conn.execute("create trigger add_deposit after update on public.products for each row"
                 " when (new.price < 1000) execute function public.add_deposit()")
    conn.execute("update public.products set price = 20 where id = %s", (pid,))
    assert conn.execute("select price from public.products where id = %s", (pid,)).fetchone()["price"] == 1020
    (row,) = queue(conn)
    assert (row["product_id"], row["new_price"], row["price_to_send"]) == (pid, 1020, 1020)


def test_flag_follows_the_transaction_savepoints_and_nested_statements(conn, world):
    p0, p1 = world["products"][:2]
    with conn.transaction():
        with pytest.raises(ZeroDivisionError), conn.transaction():  # a savepoint rolled back
            conn.execute("update public.products set price = 30 where id = %s", (p0,))
            raise ZeroDivisionError
        conn.execute("update public.products set name = name || '!'")
        assert queue(conn) == []
        conn.execute("update public.products set price = 31 where id = %s", (p0,))
        conn.execute("update public.products set name = name || '?'")  # flag set: full path, nothing new
        conn.execute("update public.products set price = 32 where id = %s", (p1,))
    assert sorted((r["product_id"], r["new_price"]) for r in queue(conn)) == sorted([(p0, 31), (p1, 32)])
    conn.execute("update public.products set name = name || '#'")  # a new transaction: no flag
    assert len(queue(conn)) == 2


def test_any_role_allowed_to_update_products_queues_its_changes(conn, world):
    # The trigger runs as whoever updates products: a role of the restaurant's own, member
    # of loyverse_app (docs/dba.md), with a hostile search_path, still queues (and reads
    # nothing of the queue).
    pid = world["products"][0]
    with conn.transaction():  # rolled back at the end: roles are the cluster's
        conn.execute("create role restaurant_backoffice_0055")
        conn.execute("grant select, update on public.products to restaurant_backoffice_0055")
        conn.execute("grant loyverse_app to restaurant_backoffice_0055")
        conn.execute("create schema evil authorization restaurant_backoffice_0055")
        conn.execute("set local role restaurant_backoffice_0055")
        conn.execute("set local search_path = evil, pg_temp")
        conn.execute("update public.products set price = 42 where id = %s", (pid,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute("select 1 from loyverse.loyverse_price_sync_queue")
        conn.execute("reset role")
        conn.execute("reset search_path")
        assert [(r["product_id"], r["new_price"]) for r in queue(conn)] == [(pid, 42)]
        raise psycopg.Rollback()


def test_a_role_outside_loyverse_app_cannot_change_a_mapped_price(conn, world):
    # Queue writes are checked by role: a price change by a role that is not a member of
    # loyverse_app (or loyverse_worker) is refused whole, never applied without its sync.
    pid = world["products"][0]
    with conn.transaction():
        conn.execute("create role restaurant_stranger_0061")
        conn.execute("grant select, update on public.products to restaurant_stranger_0061")
        conn.execute("set local role restaurant_stranger_0061")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="enqueue_price_changes"), conn.transaction():
            conn.execute("update public.products set price = 42 where id = %s", (pid,))
        conn.execute("update public.products set name = 'renamed' where id = %s", (pid,))  # no price: fine
        conn.execute("reset role")
        assert queue(conn) == []
        raise psycopg.Rollback()


def test_the_upsert_function_is_for_the_trigger_only(conn, world):
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="for the products trigger only"):
        conn.execute("select loyverse.enqueue_price_changes(array[%s]::uuid[], array[1]::numeric[])",
                     (world["products"][0],))
    assert queue(conn) == []


def test_bulk_update_is_one_row_per_product_and_one_job_per_account(conn, world):
    conn.execute("update public.products set price = price * 1.05")
    assert len(queue(conn)) == 6
    (job,) = jobs(conn)
    assert job["queueing_lock"] == job["lock"] == f"loyverse_price_sync:{world['account_id']}"


def test_updates_share_the_queued_job_and_a_started_one_does_not_stop_the_next_wake(conn, world):
    a, b, c = world["products"][:3]
    conn.execute("update public.products set price = 11 where id = %s", (a,))
    conn.execute("update public.products set price = 12 where id = %s", (b,))
    (job,) = jobs(conn)
    assert job["status"] == "todo"
    # a worker took the job: it may already have claimed everything due, so the next
    # change must queue a job of its own
    conn.execute("update procrastinate_jobs set status = 'doing' where id = %s", (job["id"],))
    conn.execute("update public.products set price = 13 where id = %s", (c,))
    assert sorted(j["status"] for j in jobs(conn)) == ["doing", "todo"]


def test_claimed_rows_are_not_mutated_and_the_product_waits(conn, world):
    pid = world["products"][0]
    conn.execute("update public.products set price = 11 where id = %s", (pid,))
    claimed = conn.execute("select * from loyverse.claim_price_sync_batch(%s, 'w1:a')", (world["account_id"],)).fetchall()
    assert [r["product_id"] for r in claimed] == [pid]
    conn.execute("update public.products set price = 13 where id = %s", (pid,))
    rows = queue(conn)
    assert [(r["status"], r["new_price"]) for r in rows] == [("processing", 11), ("pending", 13)]
    # the newer row is not claimable while the older one is in flight
    assert conn.execute("select * from loyverse.claim_price_sync_batch(%s, 'w2:b')", (world["account_id"],)).fetchall() == []
    done = conn.execute("select loyverse.complete_price_sync_batch('w1:a', %s) as c",
                        (json.dumps([{"id": rows[0]["id"], "outcome": "done", "sent": True}]),)).fetchone()["c"]
    assert done["done"] == 1
    again = conn.execute("select * from loyverse.claim_price_sync_batch(%s, 'w2:c')", (world["account_id"],)).fetchall()
    assert [r["price_to_send"] for r in again] == [13]


def test_claim_takes_every_store_of_an_item_and_highest_priority_first(conn, world):
    conn.execute("update public.products set price = 20")
    r1 = world["restaurants"][1]
    conn.execute("update loyverse.loyverse_price_sync_queue set priority = 50 where restaurant_id = %s"
                 " and product_id = %s", (r1, world["products"][5]))
    claimed = conn.execute("select * from loyverse.claim_price_sync_batch(%s, 'w:1', 1)",
                           (world["account_id"],)).fetchall()
    assert {r["loyverse_item_id"] for r in claimed} == {"item2"}
    assert {r["loyverse_store_id"] for r in claimed} == {"s1", "s2"}


def test_concurrent_claims_never_share_a_row(conn, dsn, world):
    conn.execute("update public.products set price = 21")
    got: list[list[int]] = []

    def claim(n: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as c:
            for k in range(6):
                got.append([r[0] for r in c.execute(
                    "select id from loyverse.claim_price_sync_batch(%s, %s, 1)", (world["account_id"], f"w:{n}:{k}"))])

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [i for g in got for i in g]
    assert len(ids) == len(set(ids)) == 6


def test_lost_lease_does_not_clobber_and_requeues_what_was_sent(conn, world):
    pid = world["products"][0]
    conn.execute("update public.products set price = 11 where id = %s", (pid,))
    (row,) = conn.execute("select * from loyverse.claim_price_sync_batch(%s, 'old:1', 250, 0.01)",
                          (world["account_id"],)).fetchall()
    conn.execute("select pg_sleep(0.05)")
    (again,) = conn.execute("select * from loyverse.claim_price_sync_batch(%s, 'new:1')", (world["account_id"],)).fetchall()
    assert again["id"] == row["id"] and again["attempts"] == 1
    counts = conn.execute("select loyverse.complete_price_sync_batch('old:1', %s) as c",
                          (json.dumps([{"id": row["id"], "outcome": "done", "sent": True}]),)).fetchone()["c"]
    assert counts["lost"] == 1 and counts["done"] == 0
    rows = queue(conn)
    assert [(r["status"], r["source"]) for r in rows] == [("processing", "trigger"), ("pending", "requeue")]


def test_retryable_failure_backs_off_then_dead_letters(conn, world):
    pid = world["products"][0]
    conn.execute("update loyverse.loyverse_price_sync_settings set max_attempts = 2, backoff_base_seconds = 10")
    conn.execute("update public.products set price = 11 where id = %s", (pid,))
    for n, expected in ((1, "pending"), (2, "dead")):
        conn.execute("update loyverse.loyverse_price_sync_queue set next_attempt_at = now()")
        (row,) = conn.execute("select * from loyverse.claim_price_sync_batch(%s, %s)",
                              (world["account_id"], f"w:{n}")).fetchall()
        conn.execute("select loyverse.complete_price_sync_batch(%s, %s)",
                     (f"w:{n}", json.dumps([{"id": row["id"], "outcome": "retry", "code": "INTERNAL_SERVER_ERROR",
                                             "error": "500"}])))
        (row,) = queue(conn)
        assert (row["status"], row["attempts"]) == (expected, n)
    assert row["completed_at"] is not None


@pytest.mark.parametrize(("rule", "dp", "price", "expected"), [
    ("NONE", 2, "10.005", "10.01"),
    ("NEAREST_0.05", 2, "10.02", "10.00"),
    ("NEAREST_0.05", 2, "10.03", "10.05"),
    ("NEAREST_0.05", 2, "10.025", "10.05"),
    ("NEAREST_0.10", 2, "10.04", "10.00"),
    ("NEAREST_0.10", 2, "10.05", "10.10"),
    ("UP", 2, "10.01", "10.10"),
    ("UP", 2, "10.10", "10.10"),
    ("DOWN", 2, "10.19", "10.10"),
    ("DOWN", 2, "10.10", "10.10"),
    ("NEAREST_0.05", 1, "10.03", "10.0"),
    ("UP", 0, "1250.01", "1251"),
    ("DOWN", 0, "1250.99", "1250"),
    ("NEAREST_0.10", 0, "1250.50", "1251"),
    ("UP", 3, "1.001", "1.100"),
])
def test_rounding_rules(conn, rule, dp, price, expected):
    got = conn.execute("select loyverse.round_price(%s::numeric, %s, %s) as p", (price, rule, dp)).fetchone()["p"]
    assert got == D(expected) and str(got) == expected


def test_rounding_shows_in_the_queue_row(conn, world):
    rid, pid = world["restaurants"][0], world["products"][0]
    conn.execute("select loyverse.update_price_sync_settings(%s, '{\"price_rounding_rule\": \"NEAREST_0.05\"}')", (rid,))
    conn.execute("update public.products set price = 10.33 where id = %s", (pid,))
    (row,) = queue(conn)
    assert (row["new_price"], row["price_to_send"]) == (D("10.33"), D("10.35"))


def test_category_filters_and_disabled_direction(conn, world):
    r0, r1 = world["restaurants"]
    c0 = world["categories"][0]
    conn.execute("select loyverse.update_price_sync_settings(%s, %s)", (r0, json.dumps({"exclude_category_ids": [str(c0)]})))
    conn.execute("select loyverse.update_price_sync_settings(%s, '{\"sync_direction\": \"FROM_LOYVERSE\"}')", (r1,))
    conn.execute("update public.products set price = 30")
    assert queue(conn) == []


def test_batch_and_manual_frequencies_are_not_due_at_once(conn, world):
    r0, r1 = world["restaurants"]
    conn.execute("select loyverse.update_price_sync_settings(%s, '{\"sync_frequency\": \"BATCH_5MIN\"}')", (r0,))
    conn.execute("select loyverse.update_price_sync_settings(%s, '{\"sync_frequency\": \"MANUAL\"}')", (r1,))
    conn.execute("update public.products set price = 31")
    assert jobs(conn) == []
    waits = conn.execute("select next_attempt_at - now() as wait from loyverse.loyverse_price_sync_queue"
                         " where restaurant_id = %s", (r0,)).fetchall()
    assert all(0 < w["wait"].total_seconds() <= 300 for w in waits)
    assert conn.execute("select next_attempt_at = 'infinity' as inf from loyverse.loyverse_price_sync_queue"
                        " where restaurant_id = %s limit 1", (r1,)).fetchone()["inf"]
    assert conn.execute("select loyverse.trigger_price_sync(%s) as n", (r1,)).fetchone()["n"] == 3
    assert len(jobs(conn)) == 1


def settings(conn, rid, changes):
    conn.execute("select loyverse.update_price_sync_settings(%s, %s)", (rid, json.dumps(changes)))


@pytest.mark.parametrize(("off", "on"), [
    ({"enabled": False}, {"enabled": True}),
    ({"sync_direction": "FROM_LOYVERSE"}, {"sync_direction": "BIDIRECTIONAL"}),
])
def test_syncing_again_sends_the_prices_changed_meanwhile(conn, world, off, on):
    r0 = world["restaurants"][0]
    p0, p1, _ = world["products"][:3]
    conn.execute("update public.products set price = 11 where id = %s", (p0,))  # pending when sync stops
    settings(conn, r0, off)
    conn.execute("update public.products set price = 12 where id = %s", (p1,))
    assert [r["status"] for r in queue(conn)] == ["cancelled"]
    conn.execute("delete from procrastinate_jobs")
    settings(conn, r0, on)
    pending = [(r["product_id"], r["new_price"], r["source"]) for r in queue(conn) if r["status"] == "pending"]
    assert sorted(pending) == sorted([(p0, 11, "settings"), (p1, 12, "settings")])  # p2 is in sync: not sent
    assert len(jobs(conn)) == 1  # REALTIME: the worker is woken


def test_a_settings_change_catches_up_at_the_restaurants_frequency(conn, world):
    r1 = world["restaurants"][1]
    p3 = world["products"][3]
    settings(conn, r1, {"sync_frequency": "MANUAL", "enabled": False})
    conn.execute("update public.products set price = 13 where id = %s", (p3,))
    settings(conn, r1, {"enabled": True})
    (row,) = conn.execute("select product_id, source, next_attempt_at = 'infinity' as waits"
                          " from loyverse.loyverse_price_sync_queue where status = 'pending'").fetchall()
    assert (row["product_id"], row["source"], row["waits"]) == (p3, "settings", True)
    assert jobs(conn) == []  # MANUAL: waits for `sync trigger`
    assert conn.execute("select loyverse.trigger_price_sync(%s) as n", (r1,)).fetchone()["n"] == 1


def test_a_new_rounding_rule_resends_prices_already_in_sync(conn, world):
    r0, p0 = world["restaurants"][0], world["products"][0]
    conn.execute("update public.products set price = 10.33 where id = %s", (p0,))
    conn.execute("update loyverse.loyverse_item_mappings set last_synced_price = 10.33 where product_id = %s", (p0,))
    conn.execute("delete from loyverse.loyverse_price_sync_queue")  # as if sent
    settings(conn, r0, {"price_rounding_rule": "NEAREST_0.05"})
    (row,) = queue(conn)
    assert (row["product_id"], row["price_to_send"], row["source"]) == (p0, D("10.35"), "settings")


def test_category_filters_hold_for_full_syncs_and_catch_ups(conn, world):
    r0 = world["restaurants"][0]
    p0, p1, p2 = world["products"][:3]
    c_new = conn.execute("insert into public.categories (restaurant_id, name) values (%s, 'specials') returning id",
                         (r0,)).fetchone()["id"]
    conn.execute("update public.products set category_id = %s where id = %s", (c_new, p1))
    conn.execute("update loyverse.loyverse_item_mappings set last_synced_price = null where restaurant_id = %s", (r0,))
    settings(conn, r0, {"exclude_category_ids": [str(c_new)]})  # the catch-up queues p0 and p2 only
    assert sorted(r["product_id"] for r in queue(conn)) == sorted([p0, p2])
    conn.execute("delete from loyverse.loyverse_price_sync_queue")
    conn.execute("select loyverse.trigger_price_sync(%s, true)", (r0,))  # a full sync: same (it sent p1 before 0057)
    assert sorted(r["product_id"] for r in queue(conn)) == sorted([p0, p2])
    conn.execute("delete from loyverse.loyverse_price_sync_queue")
    conn.execute("update loyverse.loyverse_item_mappings set last_synced_price = 10 where restaurant_id = %s", (r0,))
    settings(conn, r0, {"exclude_category_ids": []})
    conn.execute("update public.products set price = 14 where id = %s", (p1,))
    settings(conn, r0, {"exclude_category_ids": [str(c_new)]})  # narrowing cancels its pending row
    assert [(r["product_id"], r["status"]) for r in queue(conn)] == [(p1, "cancelled")]
    settings(conn, r0, {"exclude_category_ids": []})  # widening sends what changed while excluded
    assert [(r["product_id"], r["new_price"], r["status"]) for r in queue(conn)][-1] == (p1, 14, "pending")


def test_settings_errors_name_the_field_and_change_nothing(conn, world):
    rid = world["restaurants"][0]
    before = conn.execute("select loyverse.price_sync_settings(%s) as s", (rid,)).fetchone()["s"]
    for changes, field in (({"sync_frequency": "WEEKLY"}, "sync_frequency"),
                           ({"max_attempts": "many"}, "max_attempts"),
                           ({"priority": 500, "enabled": False}, "priority"),
                           ({"colour": "red"}, "colour"),
                           ({"notify_on_error": True}, "notification_email")):
        with pytest.raises(psycopg.Error) as info:
            conn.execute("select loyverse.update_price_sync_settings(%s, %s)", (rid, json.dumps(changes)))
        assert info.value.diag.message_primary.startswith(field + ":"), info.value.diag.message_primary
        assert info.value.diag.column_name == field
    assert conn.execute("select loyverse.price_sync_settings(%s) as s", (rid,)).fetchone()["s"] == before


def test_pause_keeps_queueing_and_resume_wakes(conn, world):
    rid = world["restaurants"][0]
    assert conn.execute("select loyverse.pause_price_sync(%s) as c", (rid,)).fetchone()["c"] is True
    conn.execute("update public.products set price = 40 where restaurant_id = %s", (rid,))
    assert len(queue(conn)) == 3 and jobs(conn) == []
    assert conn.execute("select * from loyverse.claim_price_sync_batch(%s, 'w:p')", (world["account_id"],)).fetchall() == []
    assert conn.execute("select loyverse.resume_price_sync(%s) as c", (rid,)).fetchone()["c"] is True
    assert len(jobs(conn)) == 1


def test_app_role_can_update_prices_but_not_read_the_queue(conn, world):
    with conn.transaction():
        conn.execute("set local role loyverse_app")
        conn.execute("update public.products set price = 50")
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute("select 1 from loyverse.loyverse_price_sync_queue")
    assert len(queue(conn)) == 6


def test_readonly_role_reads_the_views_only(conn, world):
    conn.execute("update public.products set price = 51")
    with conn.transaction():
        conn.execute("set local role loyverse_readonly")
        for view in ("price_sync_status", "price_sync_history", "price_sync_problems", "price_sync_queue_health"):
            conn.execute(f"select * from loyverse.{view}").fetchall()
        status = conn.execute("select pending, due from loyverse.price_sync_status order by restaurant_name").fetchall()
        assert [s["pending"] for s in status] == [3, 3]
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute("select loyverse.trigger_price_sync(%s)", (world["restaurants"][0],))


def test_wake_function_exists_with_procrastinates_signature(conn):
    row = conn.execute("select to_regprocedure('public.procrastinate_defer_jobs_v1(public.procrastinate_job_to_defer_v1[])')"
                       " is not null as ok").fetchone()
    assert row["ok"]


def test_sweep_releases_expired_leases_and_prune_keeps_problems(conn, world):
    conn.execute("update public.products set price = 60")
    conn.execute("select * from loyverse.claim_price_sync_batch(%s, 'w:x', 250, 0.01)", (world["account_id"],))
    conn.execute("select pg_sleep(0.05)")
    conn.execute("delete from procrastinate_jobs")
    result = conn.execute("select loyverse.sweep_price_sync() as r").fetchone()["r"]
    assert result["released"] == 6 and result["woken"] == 1
    conn.execute("update loyverse.loyverse_price_sync_queue set status = 'done', completed_at = now() - interval '8 days'"
                 " where id in (select id from loyverse.loyverse_price_sync_queue limit 4)")
    conn.execute("update loyverse.loyverse_price_sync_queue set status = 'failed', completed_at = now() - interval '8 days'"
                 " where status = 'pending'")
    assert conn.execute("select loyverse.prune_price_sync_queue() as n").fetchone()["n"] == 4
    assert len(queue(conn)) == 2


def test_digest_is_one_per_restaurant_per_interval(conn, world):
    rid = world["restaurants"][0]
    conn.execute("select loyverse.update_price_sync_settings(%s, '{\"notify_on_error\": true,"
                 " \"notification_email\": \"ops@example.com\"}')", (rid,))
    conn.execute("update public.products set price = 70")
    conn.execute("update loyverse.loyverse_price_sync_queue set status = 'failed', completed_at = now(),"
                 " last_error_code = 'NOT_FOUND', last_error = 'variant gone'")
    assert conn.execute("select loyverse.enqueue_price_sync_digests() as n").fetchone()["n"] == 1
    assert conn.execute("select loyverse.enqueue_price_sync_digests() as n").fetchone()["n"] == 0
    (mail,) = conn.execute("select * from loyverse.loyverse_notification_outbox").fetchall()
    assert mail["recipient"] == "ops@example.com" and "3 price change(s)" in mail["subject"]
    assert "variant gone" in mail["body"]


def test_deleting_an_account_or_a_restaurant_deletes_its_queue_rows(conn, world):
    """The queue's account_id and restaurant_id carry no foreign keys (cost per queued row):
    the accounts trigger and the products cascade remove the rows instead."""
    from loyverse_sync import accounts

    other = accounts.add_account(conn, name="other", token="tok2", base_url="http://127.0.0.1:9/v1.0")
    conn.execute("update public.products set price = price + 1")
    assert len(queue(conn)) == 6
    conn.execute("delete from public.restaurants where id = %s", (world["restaurants"][1],))
    assert {str(r["restaurant_id"]) for r in queue(conn)} == {str(world["restaurants"][0])}
    conn.execute("delete from loyverse.loyverse_accounts where id = %s", (other,))
    assert len(queue(conn)) == 3
    conn.execute("delete from loyverse.loyverse_accounts where id = %s", (world["account_id"],))
    assert queue(conn) == []


def test_deleting_products_deletes_their_queue_rows_whatever_their_status(conn, world):
    a, b = world["products"][:2]
    conn.execute("update public.products set price = 11 where id = any(%s)", ([a, b],))
    conn.execute("update loyverse.loyverse_price_sync_queue set status = 'dead', completed_at = now()"
                 " where product_id = %s", (a,))
    conn.execute("update public.products set price = 12 where id = %s", (a,))  # and a pending row
    assert len([r for r in queue(conn) if r["product_id"] == a]) == 2
    conn.execute("delete from public.products where id = %s", (a,))
    assert [r["product_id"] for r in queue(conn)] == [b]


def _full_sync_in_a_thread(conn, restaurant_id):
    done = {}
    thread = threading.Thread(target=lambda: done.update(
        n=conn.execute("select loyverse.trigger_price_sync(%s, true) as n", (restaurant_id,)).fetchone()["n"]))
    thread.start()
    return thread, done


def test_a_product_deleted_while_its_price_is_being_queued_leaves_no_queue_row(conn, dsn, world):
    """The queue has no foreign key to products: the two writers serialise on the product's row."""
    rid, (a, b, c) = world["restaurants"][0], world["products"][:3]
    conn.execute("update loyverse.loyverse_item_mappings set last_synced_price = 9")  # all out of sync
    # the DELETE first: the full sync waits for its commit, then skips the product
    with psycopg.connect(dsn) as deleter:
        deleter.execute("delete from public.products where id = %s", (a,))
        thread, done = _full_sync_in_a_thread(conn, rid)
        thread.join(0.5)
        assert thread.is_alive(), "the full sync should wait for the deleting transaction"
        deleter.commit()
        thread.join(10)
    assert done["n"] == 2 and {r["product_id"] for r in queue(conn)} == {b, c}
    # the queueing first: the DELETE waits for its commit, then deletes the new row
    conn.execute("delete from loyverse.loyverse_price_sync_queue")
    with psycopg.connect(dsn) as syncer:
        syncer.execute("select loyverse.trigger_price_sync(%s, true)", (rid,))
        deleting = threading.Thread(target=lambda: conn.execute("delete from public.products where id = %s", (b,)))
        deleting.start()
        deleting.join(0.5)
        assert deleting.is_alive(), "the DELETE should wait for the queueing transaction"
        syncer.commit()
        deleting.join(10)
    assert {r["product_id"] for r in queue(conn)} == {c}


def test_releasing_expired_leases_never_waits_on_the_apps_uncommitted_update(conn, dsn, world):
    # The sweep's release and an app UPDATE of overlapping products could deadlock (each
    # waiting for the other's new pending row), and PostgreSQL could choose the app's UPDATE as
    # the victim. The release now stops waiting after 100 ms and releases next time.
    pid = world["products"][0]
    conn.execute("update public.products set price = 11 where id = %s", (pid,))
    conn.execute("update loyverse.loyverse_price_sync_queue set status = 'processing', claimed_by = 'w:1',"
                 " lease_until = now() - interval '1 second' where product_id = %s", (pid,))
    with psycopg.connect(dsn) as app, psycopg.connect(dsn, autocommit=True) as sweeper:
        app.execute("update public.products set price = 12 where id = %s", (pid,))  # uncommitted: a pending row
        sweeper.execute("set statement_timeout = '30s'")  # only a safety net: the release gives up at 100 ms
        assert sweeper.execute("select loyverse.release_expired_price_sync_leases() as n").fetchone()[0] == 0
        app.commit()
        assert sweeper.execute("select loyverse.release_expired_price_sync_leases() as n").fetchone()[0] == 1
    assert [(r["status"], r["new_price"]) for r in queue(conn)] == [("cancelled", D("11.00")), ("pending", D("12.00"))]


def test_an_expired_claims_price_is_passed_on_as_in_doubt(conn, world):
    # its worker may have written it before dying: Loyverse showing it is no counter edit
    p0, p1 = world["products"][0], world["products"][1]
    conn.execute("update public.products set price = 11 where id in (%s, %s)", (p0, p1))
    conn.execute("update loyverse.loyverse_price_sync_queue set status = 'processing', claimed_by = 'w:1',"
                 " lease_until = now() - interval '1 second'")
    conn.execute("update public.products set price = 12 where id = %s", (p0,))  # p0 superseded, p1 retried
    assert conn.execute("select loyverse.release_expired_price_sync_leases() as n").fetchone()["n"] == 2
    claimed = {str(r["product_id"]): r for r in conn.execute(
        "select * from loyverse.claim_price_sync_batch(%s, 'w:2')", (world["account_id"],)).fetchall()}
    assert [D(str(p)) for p in claimed[str(p0)]["in_doubt_prices"]] == [D("11")]
    assert claimed[str(p0)]["price_to_send"] == D("12")
    assert [D(str(p)) for p in claimed[str(p1)]["in_doubt_prices"]] == [D("11")]
    assert claimed[str(p1)]["price_to_send"] == D("11")


def in_doubt(conn):
    return [(r["status"], r["new_price"], [D(str(p)) for p in r["in_doubt_prices"] or ()]) for r in queue(conn)]


def test_a_write_without_an_answer_is_in_doubt_on_its_row_and_on_the_change_that_supersedes_it(conn, world):
    # a timeout after the POST left: Loyverse may hold 11 now, which is no counter edit
    p0, p1, p2 = world["products"][:3]
    conn.execute("update public.products set price = 11 where id in (%s, %s, %s)", (p0, p1, p2))
    claimed = conn.execute("select * from loyverse.claim_price_sync_batch(%s, 'w:1')", (world["account_id"],)).fetchall()
    ids = {r["product_id"]: r["id"] for r in claimed}
    assert set(ids) == {p0, p1, p2}
    conn.execute("update public.products set price = 12 where id = %s", (p0,))  # p0 superseded meanwhile
    results = [{"id": ids[p0], "outcome": "retry", "sent": True, "code": "TIMEOUT", "details": {"status": None}},
               {"id": ids[p1], "outcome": "retry", "sent": True, "code": "TIMEOUT", "details": {"status": None}},
               {"id": ids[p2], "outcome": "retry", "sent": False, "code": "HTTP_503", "details": {"status": 503}}]
    counts = conn.execute("select loyverse.complete_price_sync_batch('w:1', %s) as c",
                          (json.dumps(results),)).fetchone()["c"]
    assert (counts["retried"], counts["cancelled"]) == (2, 1)
    got = {(r["product_id"], r["status"]): [D(str(p)) for p in r["in_doubt_prices"] or ()] for r in queue(conn)}
    assert got == {(p0, "cancelled"): [D("11")], (p0, "pending"): [D("11")],
                   (p1, "pending"): [D("11")],
                   (p2, "pending"): []}  # a 503 was refused: nothing in doubt


def test_a_guardrail_hold_and_its_approval_keep_the_prices_in_doubt(conn, world):
    # before the column, a hold rewrote error_details and the in-doubt price was lost: approving
    # the held change then took a killed write of ours in Loyverse for a counter edit
    pid = world["products"][0]
    conn.execute("update public.products set price = 11 where id = %s", (pid,))
    conn.execute("update loyverse.loyverse_price_sync_queue set status = 'processing', claimed_by = 'w:1',"
                 " lease_until = now() - interval '1 second'")
    conn.execute("update public.products set price = 1100 where id = %s", (pid,))  # a x100 typo, superseding
    conn.execute("update loyverse.loyverse_price_sync_settings set hold_change_percent = 100")
    assert conn.execute("select loyverse.release_expired_price_sync_leases() as n").fetchone()["n"] == 1
    assert conn.execute("select * from loyverse.claim_price_sync_batch(%s, 'w:2')", (world["account_id"],)).fetchall() == []
    assert [(s, p) for s, _, p in in_doubt(conn)] == [("cancelled", [D("11")]), ("held", [D("11")])]
    rid = world["restaurants"][0]
    assert conn.execute("select loyverse.approve_held_price_changes(%s) as n", (rid,)).fetchone()["n"] == 1
    (row,) = conn.execute("select * from loyverse.claim_price_sync_batch(%s, 'w:3')", (world["account_id"],)).fetchall()
    assert (row["price_to_send"], [D(str(p)) for p in row["in_doubt_prices"]]) == (D("1100"), [D("11")])
