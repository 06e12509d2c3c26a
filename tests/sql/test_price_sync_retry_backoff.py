"""A failed write's backoff is its restaurant's setting (backoff_base_seconds, backoff_cap_seconds,
beside max_attempts), read by complete_price_sync_batch; the worker passes none. With the
defaults it books the same retries as the previous definition (tests/sql/previous/), which
took the backoff from the worker's environment on every call."""

from __future__ import annotations

import json
import pathlib

import psycopg
import pytest

PREVIOUS = pathlib.Path(__file__).parent / "previous" / "complete_price_sync_batch_before_settings_backoff.sql"


def _claim(conn, account_id, claimed_by):
    rows = conn.execute("select * from loyverse.claim_price_sync_batch(%s, %s)", (account_id, claimed_by)).fetchall()
    assert rows, "nothing was claimed"
    return rows


def _waits(conn):
    """Per queue row: status, attempts and the wait booked (seconds from the completion)."""
    return {r["product_id"]: r for r in conn.execute(
        "select product_id, restaurant_id, status, attempts, last_error_code, completed_at is not null as completed,"
        "       extract(epoch from next_attempt_at - updated_at)::float8 as wait"
        "  from loyverse.loyverse_price_sync_queue order by id").fetchall()}


def _retry_all(rows):
    return json.dumps([{"id": r["id"], "outcome": "retry", "code": "INTERNAL_SERVER_ERROR", "error": "500"}
                       for r in rows])


def test_a_retry_waits_its_own_restaurants_backoff(conn, world):
    r0, r1 = world["restaurants"]
    conn.execute("select loyverse.update_price_sync_settings(%s, '{\"backoff_base_seconds\": 10}')", (r0,))
    conn.execute("select loyverse.update_price_sync_settings(%s, %s)",
                 (r1, json.dumps({"backoff_base_seconds": 100, "backoff_cap_seconds": 120})))
    conn.execute("update public.products set price = 11 where id = any(%s)", (world["products"],))
    rows = _claim(conn, world["account_id"], "w:1")
    assert {str(r["restaurant_id"]) for r in rows} == {str(r0), str(r1)}  # one batch, both restaurants
    counts = conn.execute("select loyverse.complete_price_sync_batch('w:1', %s) as c",
                          (_retry_all(rows),)).fetchone()["c"]
    assert counts["retried"] == len(rows) == 6
    waits = _waits(conn)
    # attempt 1: base * 2^0 with a jitter of 0.5..1.0
    assert all(5 <= w["wait"] <= 10 for w in waits.values() if str(w["restaurant_id"]) == str(r0)), waits
    assert all(50 <= w["wait"] <= 100 for w in waits.values() if str(w["restaurant_id"]) == str(r1)), waits
    assert {w["status"] for w in waits.values()} == {"pending"}


def test_the_cap_bounds_a_late_attempt(conn, world):
    r0, _ = world["restaurants"]
    conn.execute("select loyverse.update_price_sync_settings(%s, %s)",
                 (r0, json.dumps({"max_attempts": 50, "backoff_cap_seconds": 60})))
    conn.execute("update public.products set price = 12 where restaurant_id = %s", (r0,))
    conn.execute("update loyverse.loyverse_price_sync_queue set attempts = 20, max_attempts = 50")
    rows = _claim(conn, world["account_id"], "w:1")
    conn.execute("select loyverse.complete_price_sync_batch('w:1', %s)", (_retry_all(rows),))
    waits = [w["wait"] for w in _waits(conn).values()]
    assert len(waits) == 3 and all(30 <= w <= 60 for w in waits), waits  # 2 * 2^20 s, capped at 60


def test_same_outcomes_as_the_previous_definition_with_the_default_backoff(conn, world):
    previous = PREVIOUS.read_text().split("create function loyverse.complete_price_sync_batch(", 1)[1]
    previous = previous.split("comment on function", 1)[0]
    conn.execute("create function public.complete_price_sync_batch_before(" + previous)
    conn.execute("update public.products set price = 13 where id = any(%s)", (world["products"],))
    # rows at different attempts, so the exponent and the cap both show
    conn.execute("update loyverse.loyverse_price_sync_queue q set max_attempts = 50,"
                 " attempts = (array[0, 1, 3, 8, 12, 49])[(select count(*) from loyverse.loyverse_price_sync_queue p"
                 "                                          where p.id <= q.id)]")
    rows = _claim(conn, world["account_id"], "w:1")
    outcomes = ["retry", "retry", "retry", "retry", "release", "retry"]
    results = json.dumps([{"id": r["id"], "outcome": o, "code": "HTTP_503", "error": "503"}
                          for r, o in zip(sorted(rows, key=lambda r: r["id"]), outcomes, strict=True)])
    seen = {}
    for name in ("public.complete_price_sync_batch_before", "loyverse.complete_price_sync_batch"):
        with conn.transaction():  # psycopg.Rollback below: rolled back, not raised
            conn.execute("select setseed(0.25)")
            counts = conn.execute(f"select {name}('w:1', %s) as c", (results,)).fetchone()["c"]
            counts.pop("log_id")
            seen[name] = (counts, _waits(conn))
            raise psycopg.Rollback
    (before_counts, before), (after_counts, after) = seen.values()
    assert before_counts == after_counts and after_counts["retried"] == 4 and after_counts["dead"] == 1
    assert before.keys() == after.keys() and len(after) == 6

    def without_wait(rows):
        return {k: {f: v for f, v in r.items() if f != "wait"} for k, r in rows.items()}

    assert without_wait(before) == without_wait(after)
    # same bounds (2 s * 2^attempts, capped at 900 s, jitter 0.5..1.0), same random draws
    for rows in (before, after):
        for r in rows.values():
            if r["status"] == "pending" and r["last_error_code"] == "HTTP_503" and r["wait"] > 0:
                nominal = min(900.0, 2.0 * 2 ** (r["attempts"] - 1))
                assert 0.5 * nominal - 1e-6 <= r["wait"] <= nominal + 1e-6, r
    assert sorted(round(r["wait"], 6) for r in before.values()) == sorted(round(r["wait"], 6) for r in after.values())


def _refused(conn, rid, changes):
    with pytest.raises(psycopg.Error) as info:
        conn.execute("select loyverse.update_price_sync_settings(%s, %s)", (rid, json.dumps(changes)))
    return info.value


@pytest.mark.parametrize(("changes", "field", "allowed"), [
    ({"backoff_base_seconds": 0}, "backoff_base_seconds", "0.01 to 3600"),
    ({"backoff_base_seconds": 4000}, "backoff_base_seconds", "0.01 to 3600"),
    ({"backoff_cap_seconds": 86401}, "backoff_cap_seconds", "0.01 to 86400"),
    ({"backoff_cap_seconds": 1}, "backoff_cap_seconds", "at least backoff_base_seconds"),  # below the base 2
    ({"backoff_base_seconds": 1000}, "backoff_base_seconds", "at most backoff_cap_seconds"),  # above the cap 900
    ({"backoff_base_seconds": 30, "backoff_cap_seconds": 20}, "backoff_cap_seconds", "at least backoff_base_seconds"),
    ({"backoff_base_seconds": "soon"}, "backoff_base_seconds", "0.01 to 3600"),
    ({"backoff_cap_seconds": None}, "backoff_cap_seconds", "0.01 to 86400"),
])
def test_a_bad_backoff_is_refused_naming_the_setting_and_what_is_allowed(conn, world, changes, field, allowed):
    rid = world["restaurants"][0]
    before = conn.execute("select loyverse.price_sync_settings(%s) as s", (rid,)).fetchone()["s"]
    exc = _refused(conn, rid, changes)
    assert exc.diag.column_name == field
    assert exc.diag.message_primary.startswith(f"{field}: ") and allowed in exc.diag.message_primary
    after = conn.execute("select loyverse.price_sync_settings(%s) as s", (rid,)).fetchone()["s"]
    assert after == before and (after["backoff_base_seconds"], after["backoff_cap_seconds"]) == (2, 900)


def test_a_backoff_change_is_logged_like_any_setting(conn, world):
    rid = world["restaurants"][0]
    out = conn.execute("select loyverse.update_price_sync_settings(%s, %s) as s",
                       (rid, json.dumps({"backoff_base_seconds": 0.5, "backoff_cap_seconds": 30}))).fetchone()["s"]
    assert (out["backoff_base_seconds"], out["backoff_cap_seconds"]) == (0.5, 30)
    (log,) = conn.execute("select details from loyverse.loyverse_sync_logs where sync_type = 'SETTINGS_CHANGE'"
                          " and restaurant_id = %s", (rid,)).fetchall()
    assert log["details"]["changes"] == {"backoff_base_seconds": {"from": 2, "to": 0.5},
                                         "backoff_cap_seconds": {"from": 900, "to": 30}}


@pytest.mark.parametrize(("assignment", "constraint"), [
    ("backoff_base_seconds = 0", "backoff_base_seconds_is_between_0_01_and_3600"),
    ("backoff_cap_seconds = 'NaN'", "backoff_cap_seconds_is_between_0_01_and_86400"),
    ("backoff_base_seconds = 60, backoff_cap_seconds = 30", "backoff_cap_is_at_least_the_base"),
])
def test_a_dbas_update_past_the_bounds_is_refused_by_the_named_check(conn, world, assignment, constraint):
    with pytest.raises(psycopg.errors.CheckViolation) as info:
        conn.execute(f"update loyverse.loyverse_price_sync_settings set {assignment}")
    assert info.value.diag.constraint_name == constraint
