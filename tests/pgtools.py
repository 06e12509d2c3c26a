"""Finding PostgreSQL client binaries that match the test server's major version."""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
from typing import Any

import psycopg
from psycopg import conninfo as pg_conninfo


def server_major(dsn: str) -> int:
    with psycopg.connect(dsn) as c:
        return int(c.info.server_version // 10000)


def pg_binary(name: str, dsn: str) -> str:
    """`name` (pg_dump, pgbench ...) of the server's major version, or the newest found."""
    major = server_major(dsn)
    candidates = [f"/usr/lib/postgresql/{major}/bin/{name}"]
    spec = importlib.util.find_spec("pgserver")  # its bundled binaries are PostgreSQL 16
    if spec and spec.origin:
        candidates.append(os.path.join(os.path.dirname(spec.origin), "pginstall", "bin", name))
    for c in candidates:
        if os.path.exists(c) and _version_major(c) == major:
            return c
    found = shutil.which(name)
    if found and _version_major(found) >= major:
        return found
    newer = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if newer:
        return newer[-1]
    raise FileNotFoundError(f"no {name} for PostgreSQL {major} found")


def _version_major(path: str) -> int:
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False).stdout
    try:
        return int(out.split()[-1].split(".")[0])
    except (ValueError, IndexError):
        return 0


def libpq_env(dsn: str) -> dict[str, Any]:
    """Environment for a libpq command-line tool connecting to `dsn`."""
    p = pg_conninfo.conninfo_to_dict(dsn)
    env = dict(os.environ)
    mapping = {
        "host": "PGHOST",
        "port": "PGPORT",
        "user": "PGUSER",
        "password": "PGPASSWORD",
        "dbname": "PGDATABASE",
    }
    for key, var in mapping.items():
        if p.get(key):
            env[var] = str(p[key])
    return env


def pg_dump(dsn: str, *args: str) -> str:
    return subprocess.run(
        [pg_binary("pg_dump", dsn), *args],
        env=libpq_env(dsn),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
