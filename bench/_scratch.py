"""A scratch database for one benchmark run (created, migrated, dropped)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator

import psycopg

from loyverse_sync import crypto, db

ADMIN = os.environ.get("LOYVERSE_SYNC_BENCH_ADMIN", "host=127.0.0.1 user=postgres dbname=postgres")


@contextlib.contextmanager
def scratch_database(prefix: str, admin: str | None = None) -> Iterator[str]:
    """A fresh migrated database on `admin` (default LOYVERSE_SYNC_BENCH_ADMIN), dropped
    afterwards, and LOYVERSE_SYNC_KEY / _HOME for this process."""
    admin = admin or ADMIN
    os.environ.setdefault("LOYVERSE_SYNC_HOME", tempfile.mkdtemp())
    os.environ["LOYVERSE_SYNC_KEY"] = crypto.new_key().decode()
    name = f"bench_{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f"create database {name}")
    dsn = psycopg.conninfo.make_conninfo(admin, dbname=name)
    try:
        db.migrate(dsn)
        yield dsn
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f"drop database {name} with (force)")


def proc_usage(pid: int) -> tuple[float, int]:
    """(CPU seconds user+system, peak RSS in KiB) of a live process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                rss = int(line.split()[1])
    return cpu, rss
