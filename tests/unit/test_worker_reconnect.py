"""`loyverse-sync worker` waits for a database that went away, in its own (injected) clock."""

from __future__ import annotations

import pytest

from loyverse_sync.cli import worker


class FakeServer:
    """Refuses connections until the clock reaches ``back_at``; the clock moves only by sleeping."""

    def __init__(self, back_at: float) -> None:
        self.now = 0.0
        self.back_at = back_at
        self.probes = 0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def connect(self) -> None:
        self.probes += 1
        if self.now < self.back_at:
            raise OSError("connection refused")


def test_a_thirty_second_restart_is_waited_out():
    srv = FakeServer(back_at=30.0)
    waited = worker.wait_for_database(srv.connect, 300.0, clock=srv.clock, sleep=srv.sleep)
    assert waited is not None and 30.0 <= waited <= 35.0  # found within one probe interval
    assert max(srv.sleeps) == 5.0 and srv.sleeps[0] == 0.5  # backoff 0.5 s, doubling, capped at 5 s
    assert srv.probes == len(srv.sleeps) + 1


def test_a_database_that_stays_away_gives_up_at_the_timeout():
    srv = FakeServer(back_at=float("inf"))
    assert worker.wait_for_database(srv.connect, 60.0, clock=srv.clock, sleep=srv.sleep) is None
    assert srv.now == pytest.approx(60.0)


def test_an_immediate_answer_costs_no_sleep():
    srv = FakeServer(back_at=0.0)
    assert worker.wait_for_database(srv.connect, 60.0, clock=srv.clock, sleep=srv.sleep) == 0.0
    assert srv.sleeps == []


class _Connector:
    def probe(self) -> None:
        raise AssertionError("the supervisor's wait is replaced in these tests")


def _supervise_with(monkeypatch: pytest.MonkeyPatch, outcomes: list[BaseException | None]) -> list[str]:
    """Runs the supervisor over a fake procrastinate run that raises each outcome in turn
    (None: it returns, as after SIGTERM); returns what happened, in order."""
    from loyverse_sync import apicalls

    happened: list[str] = []

    def fake_run(app: object, concurrency: int, **options: object) -> None:
        happened.append("run")
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    def fake_wait(probe: object, timeout: float) -> float:
        happened.append("wait")
        return 0.5

    monkeypatch.setattr(worker, "run", fake_run)
    monkeypatch.setattr(worker, "wait_for_database", fake_wait)
    monkeypatch.setattr(apicalls, "flush_unsent", lambda connector: happened.append("flush"))
    worker._supervise(object(), _Connector(), 2, worker._SideTaskFailure(), 3.0, False, False, 300.0)
    return happened


def test_a_fetch_that_meets_the_restart_is_waited_out_like_a_side_task(monkeypatch):
    # the fetch loop's query, not LISTEN, met the restart first: procrastinate raises out of
    # run_worker; the worker waits for the database and runs again instead of exiting 1
    import psycopg
    from procrastinate import exceptions

    try:
        try:
            raise psycopg.OperationalError("terminating connection due to administrator command")
        except psycopg.OperationalError as cause:
            raise exceptions.ConnectorException() from cause
    except exceptions.ConnectorException as exc:
        lost = exc
    assert _supervise_with(monkeypatch, [lost, None]) == ["run", "wait", "flush", "run"]


def test_an_error_that_is_not_the_database_going_away_still_stops_the_worker(monkeypatch):
    with pytest.raises(ZeroDivisionError):
        _supervise_with(monkeypatch, [ZeroDivisionError("a bug")])


class _Found:
    conninfo = "host=db dbname=shop"

    def describe(self) -> str:
        return "db/shop"


def _start_with(monkeypatch: pytest.MonkeyPatch, failures: list[Exception], waited: float | None) -> list[str]:
    """Starts the worker's connector over a fake database that fails with each of
    ``failures`` in turn, then answers; returns what happened, in order."""
    from loyverse_sync.worker import app as app_mod

    happened: list[str] = []

    def fake_connector(conninfo: str, *, concurrency: int) -> str:
        happened.append("connect")
        if failures:
            raise failures.pop(0)
        return "connector"

    def fake_wait(probe: object, timeout: float) -> float | None:
        happened.append("wait")
        return waited

    monkeypatch.setattr(app_mod, "worker_connector", fake_connector)
    monkeypatch.setattr(worker, "wait_for_database", fake_wait)
    happened.append(str(worker._connector_once_the_database_answers(_Found(), 2, 300.0)))
    return happened


def test_a_worker_started_while_the_database_is_away_waits_for_it(monkeypatch):
    import psycopg

    away = psycopg.OperationalError('connection to server on socket "/run/.s.PGSQL.5432" failed: No such file')
    shutting_down = psycopg.errors.lookup("57P03")("the database system is shutting down")
    assert _start_with(monkeypatch, [away], 2.0) == ["connect", "wait", "connect", "connector"]
    assert _start_with(monkeypatch, [shutting_down], 2.0) == ["connect", "wait", "connect", "connector"]


def test_a_refusal_that_waiting_cannot_cure_fails_at_once(monkeypatch):
    import psycopg

    for state in ("28P01", "3D000"):  # wrong password; no such database
        refused = psycopg.errors.lookup(state)("refused")
        with pytest.raises(psycopg.Error) as raised:
            _start_with(monkeypatch, [refused], 2.0)
        assert raised.value is refused


def test_a_database_that_never_answers_is_one_error_naming_it_and_the_timeout(monkeypatch):
    import click
    import psycopg

    with pytest.raises(click.ClickException, match=r"db/shop did not answer within 300 s \(--reconnect-timeout\)"):
        _start_with(monkeypatch, [psycopg.OperationalError("refused")], None)
