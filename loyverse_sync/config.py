"""Where the database is, and the few settings that are not in the database.

A database is found in this order (the README documents it):
1. ``DATABASE_URL``;
2. the libpq variables (``PGHOST``, ``PGPORT``, ``PGDATABASE``, ``PGUSER``, ``PGSERVICE`` ...);
3. a PostgreSQL server on this machine (127.0.0.1:5432 or the default unix socket,
   user ``postgres`` or the current user), using the database ``loyverse_sync``
   (created when missing);
4. the embedded PostgreSQL of the ``pgserver`` package, started in
   ``$LOYVERSE_SYNC_HOME/pgdata`` (default ``~/.loyverse-sync``), which keeps running
   for the next command.
Steps 3 and 4 are discovery for a machine with nothing configured (the demo, the tests);
when 1 or 2 is set it is used and a failure is reported, never silently replaced.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import urllib.parse

import psycopg
from psycopg import conninfo as pg_conninfo

LIBPQ_VARIABLES = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")
DEFAULT_DATABASE = "loyverse_sync"


class DatabaseNotFound(Exception):
    """No database could be reached; the message says where we looked and why each failed."""


@dataclasses.dataclass(frozen=True)
class Database:
    """A resolved database: its conninfo and how it was found (for people)."""

    conninfo: str
    source: str

    def describe(self) -> str:
        return f"{describe_conninfo(self.conninfo)} (from {self.source})"


def home() -> pathlib.Path:
    """The directory for local state: the embedded server's data, the default key file."""
    return pathlib.Path(os.environ.get("LOYVERSE_SYNC_HOME", "~/.loyverse-sync")).expanduser()


def describe_conninfo(conninfo: str) -> str:
    """host:port/dbname as libpq would resolve them, without the password."""
    params = pg_conninfo.conninfo_to_dict(conninfo)
    host = params.get("host") or os.environ.get("PGHOST") or "localhost"
    port = params.get("port") or os.environ.get("PGPORT") or "5432"
    dbname = params.get("dbname") or os.environ.get("PGDATABASE") or params.get("user") or "?"
    return f"host={host} port={port} dbname={dbname}"


def configured_conninfo() -> Database | None:
    """DATABASE_URL, else the libpq variables; None when neither is set."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return Database(url, "DATABASE_URL")
    if any(os.environ.get(v) for v in LIBPQ_VARIABLES):
        return Database("", "PG* environment variables")
    return None


def _try(conninfo: str) -> str | None:
    try:
        with psycopg.connect(conninfo, connect_timeout=2, autocommit=True):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _ensure_database(admin_conninfo: str, dbname: str) -> None:
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(
                psycopg.sql.SQL("create database {}").format(psycopg.sql.Identifier(dbname))
            )


def local_server(dbname: str = DEFAULT_DATABASE) -> Database | None:
    """A PostgreSQL server already running on this machine, with `dbname` created on it."""
    candidates = [
        "host=127.0.0.1 port=5432 user=postgres dbname=postgres",
        "host=/var/run/postgresql user=postgres dbname=postgres",
        "host=/var/run/postgresql dbname=postgres",
    ]
    for admin in candidates:
        if _try(admin) is None:
            _ensure_database(admin, dbname)
            params = pg_conninfo.conninfo_to_dict(admin)
            params["dbname"] = dbname
            return Database(pg_conninfo.make_conninfo("", **params), "local server")
    return None


def embedded_server(dbname: str = DEFAULT_DATABASE) -> Database:
    """Start (or reuse) the embedded PostgreSQL shipped by the `pgserver` package."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        datadir = home() / "pgdata"
        datadir.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(datadir, cleanup_mode=None)
    admin = server.get_uri()
    _ensure_database(admin, dbname)
    params = pg_conninfo.conninfo_to_dict(admin)
    params["dbname"] = dbname
    params.pop("password", None)
    return Database(pg_conninfo.make_conninfo("", **params), "embedded pgserver")


def find_database(*, discover: bool = True, dbname: str = DEFAULT_DATABASE) -> Database:
    """Resolve the database in the documented order (see the module docstring)."""
    configured = configured_conninfo()
    if configured is not None or not discover:
        if configured is None:
            raise DatabaseNotFound("no database configured: set DATABASE_URL or the PG* variables")
        return configured
    found = local_server(dbname)
    if found is not None:
        return found
    return embedded_server(dbname)


def yoyo_uri(conninfo: str) -> str:
    """The yoyo URI for a libpq conninfo (yoyo needs the `postgresql+psycopg` scheme)."""
    params = pg_conninfo.conninfo_to_dict(conninfo)
    # Fill in what libpq would take from the environment, so yoyo connects to the same place.
    env_defaults = {
        "host": "PGHOST",
        "port": "PGPORT",
        "dbname": "PGDATABASE",
        "user": "PGUSER",
        "password": "PGPASSWORD",
    }
    for key, var in env_defaults.items():
        if not params.get(key) and os.environ.get(var):
            params[key] = os.environ[var]
    user = urllib.parse.quote(str(params.pop("user", "") or ""), safe="")
    password = urllib.parse.quote(str(params.pop("password", "") or ""), safe="")
    host = str(params.pop("host", "") or "")
    port = str(params.pop("port", "") or "")
    dbname = urllib.parse.quote(str(params.pop("dbname", "") or ""), safe="")
    query: dict[str, str] = {k: str(v) for k, v in params.items() if v is not None}
    netloc_host = ""
    if host.startswith("/") or "," in host:
        query["host"] = host
    else:
        netloc_host = host
    auth = user + (f":{password}" if password else "")
    netloc = (
        (auth + "@" if auth else "") + netloc_host + (f":{port}" if port and netloc_host else "")
    )
    if port and not netloc_host:
        query["port"] = port
    qs = ("?" + urllib.parse.urlencode(query)) if query else ""
    return f"postgresql+psycopg://{netloc}/{dbname}{qs}"
