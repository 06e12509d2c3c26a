"""wake_price_sync_when_due: a row waiting for its backoff (or batch boundary) gets a job booked
for the moment it is due, not for the next minute's sweep."""

from __future__ import annotations


def _due_jobs(conn, account_id):
    return conn.execute(
        "select scheduled_at, lock, status::text as status from procrastinate_jobs"
        " where queueing_lock = %s order by id", (f"loyverse_price_sync_due:{account_id}",)).fetchall()


def _wait(conn, product_id, seconds):
    conn.execute("update loyverse.loyverse_price_sync_queue set next_attempt_at = now() + %s * interval '1 s'"
                 " where product_id = %s and status = 'pending'", (seconds, product_id))
    return conn.execute("select next_attempt_at from loyverse.loyverse_price_sync_queue"
                        " where product_id = %s and status = 'pending'", (product_id,)).fetchone()["next_attempt_at"]


def _wake(conn, account_id):
    return conn.execute("select loyverse.wake_price_sync_when_due(%s) as at", (account_id,)).fetchone()["at"]


def test_a_backoff_books_one_job_at_the_moment_it_ends(conn, world):
    a, p = world["account_id"], world["products"]
    conn.execute("update public.products set price = 11 where id = any(%s)", (p[:2],))
    first = _wait(conn, p[0], 30)
    _wait(conn, p[1], 90)
    assert _wake(conn, a) == first
    jobs = _due_jobs(conn, a)
    assert [(j["scheduled_at"], j["lock"], j["status"]) for j in jobs] == [
        (first, f"loyverse_price_sync:{a}", "todo")]  # the account's lock: never beside its drain
    assert _wake(conn, a) == first and len(_due_jobs(conn, a)) == 1  # booked once


def test_an_earlier_due_row_moves_the_booking_forward(conn, world):
    a, p = world["account_id"], world["products"]
    conn.execute("update public.products set price = 12 where id = any(%s)", (p[:2],))
    late = _wait(conn, p[0], 600)
    _wait(conn, p[1], 700)
    assert _wake(conn, a) == late
    early = _wait(conn, p[1], 5)
    assert _wake(conn, a) == early
    assert [j["scheduled_at"] for j in _due_jobs(conn, a)] == [early]  # the late one is gone, not doubled


def test_nothing_waiting_books_nothing(conn, world):
    a, p = world["account_id"], world["products"]
    assert _wake(conn, a) is None
    conn.execute("update public.products set price = 13 where id = %s", (p[0],))  # due now: the wake's job
    assert _wake(conn, a) is None
    assert _due_jobs(conn, a) == []
