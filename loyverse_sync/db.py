"""The process's one way to the database (`Connector`), migrations (yoyo) and procrastinate's schema.

`Connector` is built once per process (a CLI command, the worker, the server) and handed to
the managers that need the database (price sync, import, governor, API-call recorder, inbound
jobs); nothing else opens connections of its own (procrastinate's connector is the model).
`migrate()` is the one path that changes a live database: our yoyo migrations in
`migrations/`, then any newer procrastinate migration file that the installed package
ships and the database has not applied yet (recorded in loyverse.procrastinate_migrations).
The same function builds the test template, so tests run the real migrations.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib.metadata
import os
import pathlib
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import psycopg
import psycopg_pool
from psycopg import conninfo as pg_conninfo
from psycopg import rows
from yoyo import backends as yoyo_backends
from yoyo import get_backend, read_migrations

from loyverse_sync import audit, config, queries

if TYPE_CHECKING:
    import procrastinate

PACKAGE_ROOT = pathlib.Path(__file__).resolve().parent
PROCRASTINATE_FILE_RE = re.compile(r"^(\d{2})\.(\d{2})\.(\d{2})_(\d{2})_(pre|post)_.*\.sql$")


def _resource_dir(name: str) -> pathlib.Path:
    """migrations/ or sql/: beside the package in a checkout, inside it when installed."""
    in_checkout = PACKAGE_ROOT.parent / name
    if in_checkout.is_dir():
        return in_checkout
    return PACKAGE_ROOT / name


def migrations_dir() -> pathlib.Path:
    return _resource_dir("migrations")


def sql_dir() -> pathlib.Path:
    return _resource_dir("sql")


def application_name(role: str) -> str:
    """The one spelling of ``application_name``: ``loyverse_sync.<role>`` (worker, cli, serve, ...)."""
    return f"loyverse_sync.{role}"


def connect(conninfo: str, **kwargs: Any) -> psycopg.Connection[dict[str, Any]]:
    """One connection with dict rows, outside any pool: migrations, tools and tests.

    Product code takes a `Connector` instead."""
    kwargs.setdefault("application_name", application_name("cli"))
    kwargs.setdefault("row_factory", rows.dict_row)
    return psycopg.connect(conninfo, **kwargs)


class Connector:
    """The process's pool of autocommit, dict-row connections (``psycopg_pool``).

    ``connection()`` lends one connection for a unit of work (a drain, an import step, a
    periodic task) and takes it back (psycopg_pool's rules: a transaction left open is
    committed, or rolled back when the block raised; a broken connection is replaced); each
    is checked with an empty query when lent, so a server restart shows at the start of the
    next unit of work, not in the middle of it. Idle
    connections beyond ``min_size`` close after ``max_idle`` seconds. ``execute(file, name,
    params)`` runs one named query (loyverse_sync/queries) on a lent connection.

    ``options``: server options for every connection of the pool, after those libpq would send
    anyway (the conninfo's, else PGOPTIONS): the server's ``-c jit=off``.

    Thread-safe. Open on construction (``probe``: after one direct connection proved the
    database answers); ``close()`` (or ``with``) closes every connection. An async part of the
    same process (the webhook receiver, procrastinate) gets a pool of its own on the same
    database from ``async_pool()`` / ``procrastinate_connector()``.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        role: str = "cli",
        min_size: int = 1,
        max_size: int = 4,
        max_idle: float = 60.0,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        options: str | None = None,
        probe: bool = True,
    ) -> None:
        self.conninfo = conninfo
        #: the database reached, without the password: what messages name, and a key for what
        #: a process keeps per database (API-call records it could not send yet)
        self.database = config.describe_conninfo(conninfo)
        self.application_name = application_name(role)
        self._actor: str | None = None
        self._kwargs: dict[str, Any] = {
            "autocommit": True,
            "row_factory": rows.dict_row,
            "connect_timeout": max(1, int(connect_timeout)),
        }
        if options:
            given = pg_conninfo.conninfo_to_dict(conninfo).get("options") or os.environ.get("PGOPTIONS")
            self._kwargs["options"] = f"{given or ''} {options}".strip()
        if probe:
            # The pool connects in the background and only logs why it cannot: connect once
            # here, so a wrong DATABASE_URL or a server that is down fails now, with libpq's
            # reason, rather than as a PoolTimeout at the first query.
            self.probe()
        self.pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
            conninfo,
            kwargs={**self._kwargs, "application_name": self.application_name},
            min_size=min_size,
            max_size=max(min_size, max_size),
            max_idle=max_idle,
            timeout=timeout,
            check=psycopg_pool.ConnectionPool.check_connection,
            name=self.application_name,
            open=False,
        )
        # no wait: a worker starts (and waits for the database itself) even when it is away
        self.pool.open(wait=False)

    def probe(self) -> None:
        """Connect once, outside the pool: raises libpq's reason when the database does not
        answer (construction; a worker waiting for its database to come back)."""
        psycopg.connect(self.conninfo, connect_timeout=self._kwargs["connect_timeout"]).close()

    def async_pool(self, *, role: str, max_size: int = 4) -> psycopg_pool.AsyncConnectionPool[Any]:
        """A new asyncio pool on the same database, connections as this connector's (autocommit,
        dict rows, its options) named for ``role``; not open: its owner opens it in its event
        loop and closes it (the webhook receiver: an answer never waits for a connection that a
        slow request holds in this connector's pool)."""
        return psycopg_pool.AsyncConnectionPool(
            self.conninfo,
            kwargs={**self._kwargs, "application_name": application_name(role)},
            min_size=1,
            max_size=max_size,
            name=application_name(role),
            open=False,
        )

    def procrastinate_connector(self, *, max_size: int) -> procrastinate.PsycopgConnector:
        """procrastinate's own connector (its queries, LISTEN) on the same database."""
        import procrastinate

        return procrastinate.PsycopgConnector(
            conninfo=self.conninfo,
            min_size=1,
            max_size=max_size,
            kwargs={"application_name": application_name("procrastinate")},
        )

    def acting_as(self, actor: str) -> Connector:
        """This connector (the same pool) whose connections act as ``actor`` (the audit trail's
        ``loyverse.actor``: who requested an import, which API key undid a run). Not to be
        closed: the pool is the original's."""
        other = copy.copy(self)
        other._actor = audit.clean(actor)
        return other

    @contextlib.contextmanager
    def connection(self, *, autocommit: bool = True) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """A connection of the pool (dict rows) for the ``with`` block.

        ``autocommit=False``: the block commits what it means to keep; what it leaves open is
        rolled back. Either way the connection goes back autocommit and acting as the process
        does, or is discarded when it cannot be brought back so.
        """
        with self.pool.connection() as conn:
            if self._actor is not None:
                conn.execute("select set_config('loyverse.actor', %s, false)", (self._actor,))
            if not autocommit:
                conn.autocommit = False
            try:
                yield conn
            finally:
                if not autocommit or self._actor is not None:
                    self._restore(conn, autocommit=autocommit)

    def _restore(self, conn: psycopg.Connection[Any], *, autocommit: bool) -> None:
        try:
            if not autocommit:
                conn.rollback()
                conn.autocommit = True
            if self._actor is not None:
                conn.execute("reset loyverse.actor")  # back to the session's (PGOPTIONS) value
        except psycopg.Error:
            conn.close()  # the pool replaces a closed connection

    def execute(self, file: str, name: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The rows of the named query ``name`` of queries/``file``.sql."""
        with self.connection() as conn:
            return queries.execute(conn, file, name, params).fetchall()

    def execute_one(
        self, file: str, name: str, params: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """The first row of the named query, or None."""
        with self.connection() as conn:
            return queries.execute(conn, file, name, params).fetchone()

    def close(self) -> None:
        """Close the pool's connections (not through an ``acting_as`` copy: the pool is the
        original's)."""
        if self._actor is None:
            self.pool.close()

    def __enter__(self) -> Connector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# -- procrastinate's schema ---------------------------------------------------------------


def procrastinate_version() -> str:
    return importlib.metadata.version("procrastinate")


def procrastinate_migration_files() -> list[pathlib.Path]:
    """The package's own migration files, in the order procrastinate applies them."""
    from procrastinate import schema

    path = pathlib.Path(schema.SchemaManager.get_migrations_path())
    files = [p for p in path.iterdir() if PROCRASTINATE_FILE_RE.match(p.name)]
    return sorted(files, key=lambda p: p.name)


SCHEMA_FILE = "0010_schema.sql"


def install_procrastinate_schema(conn: Any) -> None:
    """Migration 0001: procrastinate's schema.sql from the installed package, recorded."""
    from procrastinate import schema

    cur = conn.cursor()
    # our schema and the record table: sql/0010_schema.sql, the one definition of both
    cur.execute((sql_dir() / SCHEMA_FILE).read_text(encoding="utf-8").encode())
    cur.execute(schema.SchemaManager.get_schema())
    version = procrastinate_version()
    for f in procrastinate_migration_files():
        cur.execute(
            "insert into loyverse.procrastinate_migrations (name, procrastinate_version, applied_how)"
            " values (%s, %s, 'schema') on conflict do nothing",
            (f.name, version),
        )


def uninstall_procrastinate_schema(conn: Any) -> None:
    cur = conn.cursor()
    cur.execute(
        """
        do $$
        declare r record;
        begin
          for r in select tablename from pg_tables
                   where schemaname = 'public' and tablename like 'procrastinate%' loop
            execute format('drop table if exists public.%I cascade', r.tablename);
          end loop;
          for r in select p.oid::regprocedure as f from pg_proc p
                   join pg_namespace n on n.oid = p.pronamespace
                   where n.nspname = 'public' and p.proname like 'procrastinate%' loop
            execute format('drop function if exists %s cascade', r.f);
          end loop;
          for r in select t.typname from pg_type t join pg_namespace n on n.oid = t.typnamespace
                   where n.nspname = 'public' and t.typname like 'procrastinate%'
                     and t.typtype in ('e', 'c') loop
            execute format('drop type if exists public.%I cascade', r.typname);
          end loop;
        end $$;
        """
    )
    cur.execute("drop table if exists loyverse.procrastinate_migrations")


def pending_procrastinate_migrations(conn: psycopg.Connection[Any]) -> list[pathlib.Path]:
    """Package migration files newer than what the database has (empty before 0001 runs)."""
    exists = conn.execute("select to_regclass('loyverse.procrastinate_migrations')").fetchone()
    if not exists or next(iter(_row_values(exists))) is None:
        return []
    applied = {
        next(iter(_row_values(r)))
        for r in conn.execute("select name from loyverse.procrastinate_migrations").fetchall()
    }
    return [f for f in procrastinate_migration_files() if f.name not in applied]


def _row_values(row: Any) -> Iterator[Any]:
    return iter(row.values()) if isinstance(row, dict) else iter(row)


def apply_procrastinate_upgrades(conn: psycopg.Connection[Any]) -> list[str]:
    """Apply each newer procrastinate migration file exactly once, in the package's order.

    procrastinate splits upgrades into `pre` files (safe before the new code runs) and
    `post` files (after every worker runs the new code). `db migrate` applies both; an
    operator doing a zero-downtime upgrade runs `db migrate` before and after the deploy
    (see docs/upgrading.md).
    """
    done: list[str] = []
    version = procrastinate_version()
    for f in pending_procrastinate_migrations(conn):
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(hashtext('loyverse_sync.migrate'))")
            again = conn.execute(
                "select 1 from loyverse.procrastinate_migrations where name = %s", (f.name,)
            ).fetchone()
            if again:
                continue
            conn.execute(f.read_text(encoding="utf-8").encode())  # type: ignore[call-overload]
            conn.execute(
                "insert into loyverse.procrastinate_migrations"
                " (name, procrastinate_version, applied_how) values (%s, %s, 'migration')",
                (f.name, version),
            )
        done.append(f.name)
    return done


# -- our migrations -----------------------------------------------------------------------


@dataclasses.dataclass
class MigrationStatus:
    id: str
    applied: bool


@contextlib.contextmanager
def _backend(conninfo: str) -> Iterator[yoyo_backends.DatabaseBackend]:
    with get_backend(config.yoyo_uri(conninfo)) as backend:
        yield backend


def migrate(conninfo: str) -> list[str]:
    """Apply every pending migration; return what was applied (empty: nothing to do)."""
    migrations = read_migrations(str(migrations_dir()))
    with _backend(conninfo) as backend, backend.lock():
        todo = backend.to_apply(migrations)
        backend.apply_migrations(todo)
        applied = [m.id for m in todo]
    with connect(conninfo, autocommit=True) as conn:
        applied += [f"procrastinate:{name}" for name in apply_procrastinate_upgrades(conn)]
    return applied


def status(conninfo: str) -> list[MigrationStatus]:
    migrations = read_migrations(str(migrations_dir()))
    with _backend(conninfo) as backend:
        applied = {m.id for m in migrations if backend.is_applied(m)}
    result = [MigrationStatus(m.id, m.id in applied) for m in migrations]
    with connect(conninfo, autocommit=True) as conn:
        result += [
            MigrationStatus(f"procrastinate:{f.name}", False)
            for f in pending_procrastinate_migrations(conn)
        ]
    return result


def pending_migrations(connector: Connector) -> list[str]:
    """The ids of the migrations (ours, then procrastinate's) the connector's database lacks."""
    return [m.id for m in status(connector.conninfo) if not m.applied]


def rollback(conninfo: str, to: str) -> list[str]:
    """Roll back every applied migration newer than `to` (a migration id or its number)."""
    migrations = read_migrations(str(migrations_dir()))
    ids = [m.id for m in migrations]
    target = next((i for i in ids if i == to or i.split("_", 1)[0] == to.zfill(4)), None)
    if target is None:
        raise ValueError(f"no migration {to!r}; known: {', '.join(ids)}")
    with _backend(conninfo) as backend, backend.lock():
        newer = [m for m in backend.to_rollback(migrations) if m.id > target]
        backend.rollback_migrations(migrations.__class__(newer))
    return [m.id for m in newer]


def schema_from_sql_dir(conninfo: str) -> None:
    """Build the current schema from sql/ (procrastinate's schema first): the drift test's
    second database, and what a DBA reads."""
    with connect(conninfo, autocommit=False) as conn:
        install_procrastinate_schema(conn)
        for f in sorted(sql_dir().glob("*.sql")):
            conn.execute(f.read_text(encoding="utf-8").encode())  # type: ignore[call-overload]
        conn.commit()
