"""Connections, migrations (yoyo) and procrastinate's schema.

`migrate()` is the one path that changes a live database: our yoyo migrations in
`migrations/`, then any newer procrastinate migration file that the installed package
ships and the database has not applied yet (recorded in loyverse.procrastinate_migrations).
The same function builds the test template, so tests run the real migrations.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import pathlib
import re
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import rows
from yoyo import backends as yoyo_backends
from yoyo import get_backend, read_migrations

from loyverse_sync import config

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


def connect(conninfo: str, **kwargs: Any) -> psycopg.Connection[dict[str, Any]]:
    """A connection with dict rows; `application_name` says who is connected."""
    kwargs.setdefault("application_name", "loyverse-sync")
    kwargs.setdefault("row_factory", rows.dict_row)
    return psycopg.connect(conninfo, **kwargs)


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
