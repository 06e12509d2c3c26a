"""db.Connector: the process's one database handle (a psycopg_pool pool) and what it promises
the managers it is handed to."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from loyverse_sync import db


def _actor(conn: psycopg.Connection[Any]) -> Any:
    return conn.execute("select loyverse.current_actor() as actor").fetchone()["actor"]


def test_acting_as_lends_connections_that_act_as_the_requester_and_come_back_as_before(dsn: str) -> None:
    with db.Connector(dsn, min_size=1, max_size=1) as connector:  # one connection: the same one each time
        with connector.connection() as conn:
            before = _actor(conn)
        with connector.acting_as("api-key:kitchen").connection() as conn:
            assert _actor(conn) == "api-key:kitchen"
        with connector.connection() as conn:
            assert _actor(conn) == before != "api-key:kitchen"


def test_a_transactional_loan_keeps_only_what_it_committed(dsn: str, conn: psycopg.Connection[Any]) -> None:
    with db.Connector(dsn, min_size=1, max_size=1) as connector:
        with connector.connection(autocommit=False) as tx:
            tx.execute("create table kept (x int)")
            tx.commit()
            tx.execute("create table dropped (x int)")  # left open: rolled back on return
        with connector.connection() as again:
            assert again.autocommit
            tables = again.execute("select to_regclass('kept') is not null as kept,"
                                   " to_regclass('dropped') is not null as dropped").fetchone()
    assert tables == {"kept": True, "dropped": False}


def test_a_database_that_is_not_there_fails_at_once_with_the_reason() -> None:
    with pytest.raises(psycopg.OperationalError, match=r"(?i)refused|connect"):
        db.Connector("host=127.0.0.1 port=1 dbname=nowhere connect_timeout=2")


def test_execute_runs_a_named_query(connector: db.Connector) -> None:
    assert connector.execute_one("inbound", "now") is not None
    assert len(connector.execute("inbound", "now")) == 1
