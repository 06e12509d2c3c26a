"""The test suite's own PostgreSQL: start it (or find it running) and print its conninfo.

A private cluster for throwaway data, tuned the way test databases can afford: fsync,
synchronous_commit and full_page_writes off. Cloning a test database from the template then
costs ~0.07 s instead of ~0.25 s (the suite clones ~900), and the suite never creates its
databases and roles on a server that holds real data. It listens on 127.0.0.1 on a port chosen
free at creation (kept in postgresql.auto.conf); the binaries are the pgserver package's (a
dependency), run as the unprivileged user pgserver creates when we are root.

Usage: python scripts/test_server.py [DATADIR]   (default /tmp/lvs-test-pg-<uid>)
Exit 1 (and nothing on stdout) when it cannot start; scripts/test then uses another server.
"""

from __future__ import annotations

import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time
import warnings

import psycopg

TUNING = {
    "fsync": "off",  # a crash loses the test databases, which are dropped anyway
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",  # the chaos tests run several workers with their own pools
    "listen_addresses": "127.0.0.1",
}


def conninfo(port: int, dbname: str = "postgres") -> str:
    return f"host=127.0.0.1 port={port} user=postgres dbname={dbname}"


def answers(port: int) -> bool:
    try:
        psycopg.connect(conninfo(port), connect_timeout=3).close()
        return True
    except psycopg.Error:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def saved_port(datadir: pathlib.Path) -> int | None:
    auto = datadir / "postgresql.auto.conf"
    found = re.search(r"^port = '(\d+)'", auto.read_text(), re.M) if auto.exists() else None
    return int(found.group(1)) if found else None


def stale_postmaster(datadir: pathlib.Path) -> int | None:
    """The running server's pid when its binaries are gone (started from a checkout, or a
    .venv, since removed: it answers, then fails on `$libdir/plpgsql` when a test database
    is created); None when they are there or it cannot be told."""
    try:
        pid = int((datadir / "postmaster.pid").read_text().split()[0])
        exe = os.readlink(f"/proc/{pid}/exe")
    except (OSError, ValueError, IndexError):
        return None
    return pid if exe.endswith(" (deleted)") or not os.path.exists(exe) else None


def stop(pid: int) -> None:
    os.kill(pid, signal.SIGINT)  # fast shutdown
    for _ in range(600):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise RuntimeError(f"the stale test PostgreSQL (pid {pid}) did not stop")


def main() -> int:
    datadir = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else f"/tmp/lvs-test-pg-{os.getuid()}")
    port = saved_port(datadir)
    if port is not None and answers(port):
        stale = stale_postmaster(datadir)
        if stale is None:
            print(conninfo(port))
            return 0
        print(f"the test PostgreSQL (pid {stale}) runs binaries that are gone: restarting it", file=sys.stderr)
        stop(stale)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
        from pgserver import _commands

        datadir.mkdir(parents=True, exist_ok=True)
        # initdb (as the unprivileged user when we are root) and a first, socket-only start
        server = pgserver.get_server(datadir, cleanup_mode=None)
    user = server.system_user
    pg_ctl = [str(_commands.POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(datadir)]
    if port is None:  # first start: tune it, and choose the port it keeps
        port = free_port()
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            for name, value in {**TUNING, "port": str(port)}.items():
                conn.execute(f"alter system set {name} = '{value}'")
    # restart with our settings: TCP on the port, the socket in the data directory
    subprocess.run([*pg_ctl, "-w", "-m", "fast", "stop"], user=user, capture_output=True, timeout=60)
    subprocess.run([*pg_ctl, "-w", "-o", f"-k {datadir}", "-l", str(datadir / "log"), "start"],
                   user=user, check=True, capture_output=True, timeout=60)
    if not answers(port):
        return 1
    print(conninfo(port))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:  # any failure: the caller falls back to another server
        print(f"the test PostgreSQL could not start: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
