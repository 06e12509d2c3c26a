"""Test harness: a real PostgreSQL for every database test.

The schema is built once per session by the real migrations (loyverse_sync.db.migrate)
into a template database; each test gets a fresh clone (~70 ms) through
pytest-postgresql's no-process mode. The server is, in order: LOYVERSE_SYNC_TEST_DSN
(scripts/test sets it), a server on this machine (127.0.0.1:5432, user postgres), or the
embedded pgserver PostgreSQL (started under $LOYVERSE_SYNC_HOME).
"""

from __future__ import annotations

import itertools
import os
import pathlib
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import conninfo as pg_conninfo
from psycopg import rows
from pytest_postgresql import factories

from loyverse_sync import config, db


def _server_params() -> dict[str, Any]:
    dsn = os.environ.get("LOYVERSE_SYNC_TEST_DSN")
    if not dsn:
        found = config.local_server("postgres") or config.embedded_server("postgres")
        dsn = found.conninfo
    params = pg_conninfo.conninfo_to_dict(dsn)
    return {
        "host": params.get("host") or "127.0.0.1",
        "port": int(params.get("port") or 5432),
        "user": params.get("user") or "postgres",
        "password": params.get("password") or None,
    }


SERVER = _server_params()
TEST_DBNAME = f"lvs_test_{os.getpid()}"


def load_schema(
    host: str, port: int, user: str, dbname: str, password: str | None = None, **_: Any
) -> None:
    """pytest-postgresql loader: the real migrations, into the session's template."""
    db.migrate(
        pg_conninfo.make_conninfo(
            host=host, port=port, user=user, dbname=dbname, password=password or None
        )
    )


pg_server = factories.postgresql_noproc(
    host=SERVER["host"],
    port=SERVER["port"],
    user=SERVER["user"],
    password=SERVER["password"],
    dbname=TEST_DBNAME,
    load=[load_schema],
)
postgresql = factories.postgresql("pg_server")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/chaos/ is slow (the fast lane, `scripts/test --fast`, skips it)."""
    chaos = pathlib.Path(__file__).parent / "chaos"
    for item in items:
        if chaos in pathlib.Path(str(item.path)).parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _pgoptions_per_test() -> Iterator[None]:
    """A CLI run in-process (click's CliRunner) sets PGOPTIONS for its process (the audit actor,
    loyverse_sync.audit.use_for_process): put it back after each test, so the next test's
    connections are not someone else's actor."""
    saved = os.environ.get("PGOPTIONS")
    yield
    if saved is None:
        os.environ.pop("PGOPTIONS", None)
    else:
        os.environ["PGOPTIONS"] = saved


def server_conninfo(dbname: str) -> str:
    return pg_conninfo.make_conninfo(
        host=SERVER["host"],
        port=SERVER["port"],
        user=SERVER["user"],
        password=SERVER["password"],
        dbname=dbname,
    )


@pytest.fixture
def dsn(postgresql: psycopg.Connection[Any]) -> str:
    """The conninfo of a fresh, fully migrated database for this test."""
    return server_conninfo(postgresql.info.dbname)


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    """An autocommit connection with dict rows to this test's database."""
    with psycopg.connect(dsn, autocommit=True, row_factory=rows.dict_row) as c:
        yield c


_module_databases = itertools.count(1)


@pytest.fixture(scope="module")
def module_dsn(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh migrated database shared by one module's tests (dropped after the module).

    Cloning a database costs ~0.3 s a test; a module of many small SQL cases whose changes do
    not outlive them (`rolled_back`) pays it once."""
    from pytest_postgresql.janitor import DatabaseJanitor

    proc = request.getfixturevalue("pg_server")
    name = f"{TEST_DBNAME}_m{next(_module_databases)}"
    janitor = DatabaseJanitor(user=proc.user, host=proc.host, port=proc.port, password=proc.password,
                              dbname=name, template_dbname=proc.template_dbname)
    with janitor:
        yield server_conninfo(name)


@pytest.fixture
def rolled_back(module_dsn: str) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    """A dict-row connection to the module's database inside a transaction that is rolled back
    after the test, whatever it did. A statement expected to fail runs in `with
    conn.transaction():` (a savepoint) when the test goes on using the connection."""
    with psycopg.connect(module_dsn, autocommit=True, row_factory=rows.dict_row) as c, \
            c.transaction(force_rollback=True):
        yield c


@pytest.fixture
def connector(dsn: str) -> Iterator[db.Connector]:
    """The process's database handle, as the worker, the server and the CLI build it."""
    with db.Connector(dsn) as c:
        yield c


@pytest.fixture
def fernet_key(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> bytes:
    """A fresh encryption key for this test (LOYVERSE_SYNC_KEY), and a private home."""
    from loyverse_sync import crypto

    key = crypto.new_key()
    monkeypatch.setenv("LOYVERSE_SYNC_KEY", key.decode())
    monkeypatch.setenv("LOYVERSE_SYNC_HOME", str(tmp_path / "home"))
    return key


@pytest.fixture
def empty_database() -> Iterator[str]:
    """An empty database (no migrations) on the test server, dropped afterwards."""
    import uuid

    name = f"lvs_empty_{uuid.uuid4().hex[:10]}"
    admin = server_conninfo("postgres")
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(psycopg.sql.SQL("create database {}").format(psycopg.sql.Identifier(name)))
    try:
        yield server_conninfo(name)
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(
                psycopg.sql.SQL("drop database if exists {} with (force)").format(
                    psycopg.sql.Identifier(name)
                )
            )
