"""The rate governor shares one account's budget through PostgreSQL.

Direct tests of PostgresGovernor over the real SQL functions, and the end-to-end claim:
two client processes on one account, against a time-scaled emulator, never exceed the
budget in any window and never see a 429.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import subprocess
import sys
import time
from collections.abc import Iterator

import psycopg
import pytest

from loyverse_sync import accounts, db
from loyverse_sync.emulator import admin, server
from loyverse_sync.loyverse import client as lv_client
from loyverse_sync.loyverse import errors
from loyverse_sync.loyverse import governor as lv_governor
from loyverse_sync.pricesync import engine


def _account(dsn: str, *, requests: int = 300, window: float = 3.0, name: str = "main") -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return accounts.add_account(
            conn,
            name=name,
            token="tok",
            base_url="http://127.0.0.1:9/v1.0",
            rate_limit_requests=requests,
            rate_limit_window_seconds=window,
        )


def test_take_allows_a_small_burst_then_paces_at_the_budget(dsn: str, fernet_key: bytes) -> None:
    account_id = _account(dsn, requests=300, window=3.0)  # 97 requests/s after the safety margin
    with lv_governor.PostgresGovernor(dsn, account_id) as gov:
        waits = [gov.take() for _ in range(20)]
    burst = sum(1 for w in waits if w == 0)
    assert 1 <= burst <= 10
    paced = waits[burst:]
    assert paced == sorted(paced)  # each reservation queues behind the previous one
    assert paced[-1] == pytest.approx((20 - burst) / 97.0, rel=0.2)


def test_two_governors_on_one_account_share_the_reservations(dsn: str, fernet_key: bytes) -> None:
    account_id = _account(dsn)
    with (
        lv_governor.PostgresGovernor(dsn, account_id) as a,
        lv_governor.PostgresGovernor(dsn, account_id) as b,
    ):
        waits = [gov.take() for _ in range(15) for gov in (a, b)]
    assert len(set(waits)) >= 20  # interleaved takers get distinct, increasing slots
    assert max(waits) == pytest.approx(30 / 97.0, rel=0.25)


def test_penalize_pauses_everyone_and_halves_the_rate(dsn: str, fernet_key: bytes) -> None:
    account_id = _account(dsn, requests=300, window=3.0)
    with lv_governor.PostgresGovernor(dsn, account_id) as gov:
        calm = [gov.take() for _ in range(12)]
        gov.penalize(0.5)
        after = [gov.take() for _ in range(12)]
    calm_step = calm[-1] - calm[-2]
    assert after[0] >= 0.5  # nobody sends during the Retry-After pause
    assert after[-1] - after[-2] == pytest.approx(2 * calm_step, rel=0.2)  # half the rate
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select rate_limited_total from loyverse.account_overview where account_id = %s",
            (account_id,),
        ).fetchone()
    assert row == (1,)


def test_acquire_sleeps_what_take_reserved(dsn: str, fernet_key: bytes) -> None:
    account_id = _account(dsn, requests=300, window=3.0)
    slept: list[float] = []
    gov = lv_governor.PostgresGovernor(dsn, account_id, sleep=slept.append)
    try:
        for _ in range(10):
            gov.acquire()
    finally:
        gov.close()
    assert slept and all(s > 0 for s in slept)
    assert len(slept) <= 10 - 1


def test_governor_reconnects_after_its_connection_is_killed(dsn: str, fernet_key: bytes) -> None:
    account_id = _account(dsn)
    with lv_governor.PostgresGovernor(dsn, account_id) as gov:
        gov.take()
        assert gov._conn is not None
        pid = gov._conn.info.backend_pid
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("select pg_terminate_backend(%s)", (pid,))
        time.sleep(0.05)
        assert gov.take() >= 0  # reopened transparently
        assert gov._conn.info.backend_pid != pid


def _governor_sessions(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as admin_conn:
        row = admin_conn.execute(
            "select count(*) from pg_stat_activity"
            " where application_name = 'loyverse_sync.governor' and datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_shared_connection_is_used_and_never_closed(dsn: str, fernet_key: bytes) -> None:
    account_id = _account(dsn, requests=300, window=3.0)
    # dict rows and autocommit, like the price drain's own connection
    with db.connect(dsn, autocommit=True) as conn:
        with lv_governor.PostgresGovernor(None, account_id, connection=conn) as gov:
            waits = [gov.take() for _ in range(20)]
            gov.penalize(0.5)
            gov.acquire()
            assert gov._conn is conn and not gov.owns_connection
            assert _governor_sessions(dsn) == 0  # no connection of its own
        assert not conn.closed  # close() / __exit__ left it open
        gov.close()
        assert not conn.closed
        assert waits == sorted(waits) and waits[-1] > 0  # the same pacing as on its own connection
        assert conn.execute("select 1 as one").fetchone() == {"one": 1}  # still usable, no transaction left
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE

        # the drain's factory hands its connection to the governor
        account = accounts.get_account(conn, account_id)
        client = engine.default_client_factory(dsn, engine.EngineConfig(), connection=conn)(
            account, lambda record: None
        )
        with client:
            assert isinstance(client.governor, lv_governor.PostgresGovernor)
            assert client.governor._conn is conn
            client.governor.take()
        assert not conn.closed

        # a broken shared connection is the owner's to handle: raised, never reopened behind its back
        gov = lv_governor.PostgresGovernor(None, account_id, connection=conn)
        with psycopg.connect(dsn, autocommit=True) as admin_conn:
            admin_conn.execute("select pg_terminate_backend(%s)", (conn.info.backend_pid,))
        time.sleep(0.05)
        with pytest.raises(psycopg.OperationalError):
            gov.take()
        assert gov._conn is conn
        assert _governor_sessions(dsn) == 0


def test_a_shared_connection_must_be_autocommit(dsn: str, fernet_key: bytes) -> None:
    with psycopg.connect(dsn) as conn, pytest.raises(ValueError, match="autocommit"):
        lv_governor.PostgresGovernor(None, 1, connection=conn)
    with pytest.raises(ValueError, match="conninfo or a connection"):
        lv_governor.PostgresGovernor(None, 1)


def test_unknown_account_is_an_error_not_a_free_pass(dsn: str) -> None:
    with (
        lv_governor.PostgresGovernor(dsn, 999_999) as gov,
        pytest.raises(psycopg.Error, match="no Loyverse account"),
    ):
        gov.take()


def test_local_governor_has_the_same_policy() -> None:
    now = [0.0]
    gov = lv_governor.LocalGovernor(300, 3.0, clock=lambda: now[0])
    waits = [gov.take() for _ in range(20)]
    burst = sum(1 for w in waits if w == 0)
    assert burst == 4
    assert waits[-1] == pytest.approx(16 / 97.0)
    now[0] = 10.0  # long idle: the bucket is full again, but only up to the burst
    assert [gov.take() for _ in range(5)][:4] == [0, 0, 0, 0]
    gov.penalize(1.0)
    assert gov.take() >= 1.0


# -----------------------------------------------------------------------------------------
# Two processes, one account, a time-scaled emulator (300 requests per 3 s)
# -----------------------------------------------------------------------------------------

_WORKER = """
import json, sys, time
from loyverse_sync.loyverse import client, governor
base_url, token, dsn, account_id, n, start_at = sys.argv[1:]
statuses = []
gov = governor.PostgresGovernor(dsn, int(account_id))
with client.LoyverseClient(base_url, token, governor=gov,
                           on_request=lambda r: statuses.append(r.status)) as lv:
    time.sleep(max(0.0, float(start_at) - time.time()))
    for _ in range(int(n)):
        lv.get_merchant()
gov.close()
print(json.dumps(statuses))
"""


def _run_workers(
    base_url: str, tokens: list[str], dsn: str, account_id: int, n: int
) -> list[list[int]]:
    start_at = time.time() + 1.0  # both processes start sending together
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WORKER,
                base_url,
                token,
                dsn,
                str(account_id),
                str(n),
                str(start_at),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for token in tokens
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    return results


def _max_in_any_window(times_ms: list[int], window_ms: int) -> int:
    times_ms = sorted(times_ms)
    best = 0
    for i, t in enumerate(times_ms):
        j = bisect.bisect_right(times_ms, t + window_ms - 1)  # [t, t + window)
        best = max(best, j - i)
    return best


@pytest.fixture
def scaled_emu() -> Iterator[server.EmulatorServer]:
    with server.EmulatorServer(
        host="127.0.0.1", port=0, menu="empty", seed=0, time_scale=100, token="tok-a"
    ) as emu:
        yield emu


def test_two_processes_on_one_account_stay_within_the_budget(
    dsn: str, fernet_key: bytes, scaled_emu: server.EmulatorServer
) -> None:
    account_id = _account(dsn, requests=300, window=3.0)
    with admin.AdminClient(scaled_emu.admin_url) as adm:
        second_token = adm.add_token(scaled_emu.merchants[0]["merchant_id"])
        started = time.monotonic()
        results = _run_workers(scaled_emu.base_url, ["tok-a", second_token], dsn, account_id, 200)
        elapsed = time.monotonic() - started
        time.sleep(0.1)  # the emulator logs each request just after answering it
        log = [r for r in adm.requests() if r["path"].startswith("/v1.0")]
        counters = adm.counters()[scaled_emu.merchants[0]["merchant_id"]]
    assert [len(r) for r in results] == [200, 200]
    assert all(status == 200 for r in results for status in r)
    assert len(log) == 400 and counters["rate_limited"] == 0
    busiest = _max_in_any_window([_ms(r["time"]) for r in log], 3000)
    print(f"busiest 3 s window: {busiest} requests; elapsed {elapsed:.2f}s")
    assert 250 <= busiest <= 300  # the budget is used, never exceeded
    assert elapsed < 9


def test_the_same_load_without_the_governor_is_refused(scaled_emu: server.EmulatorServer) -> None:
    # The control: proves the emulator does enforce the budget the test above keeps to.
    with admin.AdminClient(scaled_emu.admin_url) as adm:
        with lv_client.LoyverseClient(scaled_emu.base_url, "tok-a", max_attempts=1) as lv:
            refused = 0
            for _ in range(400):
                try:
                    lv.get_merchant()
                except errors.RateLimited:
                    refused += 1
        assert refused > 0
        time.sleep(0.1)  # the emulator counts each request just after answering it
        assert adm.counters()[scaled_emu.merchants[0]["merchant_id"]]["rate_limited"] == refused


def test_a_429_penalizes_the_shared_bucket(
    dsn: str, fernet_key: bytes, scaled_emu: server.EmulatorServer
) -> None:
    account_id = _account(dsn, requests=300, window=3.0)
    mid = scaled_emu.merchants[0]["merchant_id"]
    with (
        admin.AdminClient(scaled_emu.admin_url) as adm,
        lv_governor.PostgresGovernor(dsn, account_id) as gov,
        lv_governor.PostgresGovernor(dsn, account_id) as other_process,
        lv_client.LoyverseClient(
            scaled_emu.base_url, "tok-a", governor=gov, backoff_base=0.001
        ) as lv,
    ):

        def timed(n: int) -> float:
            t0 = time.monotonic()
            for _ in range(n):
                lv.get_merchant()
            return time.monotonic() - t0

        calm = timed(40)
        adm.set_modes(mid, retry_after=0.4)
        adm.set_faults(mid, fail_next=1, fail_next_kind="429")
        slowed = timed(40)
        # The penalty is in the database: another process on the account waits too.
        assert other_process.take() > 0
    print(f"40 requests: calm {calm:.3f}s, after a 429 {slowed:.3f}s")
    assert slowed >= 0.4 + 1.5 * calm  # the Retry-After pause, then about half the rate
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select rate_limited_total from loyverse.account_overview where account_id = %s",
            (account_id,),
        ).fetchone()
    assert row == (1,)


def _ms(iso: str) -> int:
    return round(dt.datetime.fromisoformat(iso).timestamp() * 1000)
