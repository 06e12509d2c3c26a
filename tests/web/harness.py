"""One running stack per test module: a database cloned from the session's migrated
template, the emulator, a real worker (subprocess), and `serve`'s app on uvicorn in a
thread, on free ports. Two restaurants (A, B) on two stores of one emulator merchant;
keys: admin, A, B, and a revoked one."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import uvicorn
from psycopg import rows

from loyverse_emulator import server as emu_server
from loyverse_sync import accounts, apikeys, crypto
from tests import conftest
from tests.support import importer as import_testing

API = "/api/integrations/loyverse"


@dataclasses.dataclass
class Stack:
    dsn: str
    base_url: str
    emu: Any
    token: str
    restaurants: dict[str, str]  # "A"/"B" -> id
    keys: dict[str, str]  # "admin"/"A"/"B"/"revoked" -> key
    key_names: dict[str, str]
    worker: subprocess.Popen[bytes]

    def conn(self) -> psycopg.Connection[dict[str, Any]]:
        return psycopg.connect(self.dsn, autocommit=True, row_factory=rows.dict_row)

    def client(self, who: str | None = None) -> httpx.Client:
        headers = {"authorization": f"Bearer {self.keys[who]}"} if who else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=60.0)

    def openapi(self) -> dict[str, Any]:
        with self.client() as c:
            doc: dict[str, Any] = c.get("/openapi.json").json()
            return doc

    def wait_run(self, run_id: int, who: str = "admin", *, limit_s: float = 120.0) -> dict[str, Any]:
        """Poll menu/status until the run is finished (bounded: a worker that never runs it fails the test)."""
        deadline = time.monotonic() + limit_s
        seen: list[tuple[str, int]] = []
        with self.client(who) as c:
            while True:
                body = c.get(f"{API}/menu/status", params={"run_id": run_id}).json()
                run = body["run"]
                seen.append((run["status"], run["items_done"]))
                if run["status"] not in ("PENDING", "RUNNING"):
                    body["seen"] = seen
                    return body
                assert time.monotonic() < deadline, f"run {run_id} did not finish: {seen[-5:]}"
                time.sleep(0.05)


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.contextmanager
def database(template: str) -> Iterator[str]:
    name = f"lvs_web_{uuid.uuid4().hex[:10]}"
    admin = conftest.server_conninfo("postgres")
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(psycopg.sql.SQL("create database {} template {}").format(
            psycopg.sql.Identifier(name), psycopg.sql.Identifier(template)))
    try:
        yield conftest.server_conninfo(name)
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(psycopg.sql.SQL("drop database if exists {} with (force)").format(psycopg.sql.Identifier(name)))


@contextlib.contextmanager
def uvicorn_server(app: Any) -> Iterator[str]:
    sock = _free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@contextlib.contextmanager
def stack(template: str, tmp_home: str, *, menu: int = 10) -> Iterator[Stack]:
    from loyverse_sync.cli import serve as serve_cmd
    from loyverse_sync.web import app as app_mod

    key = crypto.new_key()
    env = {"LOYVERSE_SYNC_KEY": key.decode(), "LOYVERSE_SYNC_HOME": tmp_home}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with (
            database(template) as dsn,
            emu_server.EmulatorServer(menu=menu, seed=7, stores=2, time_scale=100) as emu,
        ):
            merchant = emu.merchants[0]
            with psycopg.connect(dsn, autocommit=True, row_factory=rows.dict_row) as conn:
                rid_a, account_id, _ = import_testing.link_emulator(conn, emu, restaurant="Alpha Bistro")
                rid_b = accounts.add_restaurant(conn, "Beta Cafe")
                accounts.link_restaurant(conn, rid_b, account_id, merchant["store_ids"][1])
                names = {"admin": "ops-admin", "A": "alpha-app", "B": "beta-app", "revoked": "old-alpha"}
                keys = {
                    "admin": apikeys.create(conn, names["admin"], restaurant_id=None, admin=True),
                    "A": apikeys.create(conn, names["A"], restaurant_id=rid_a, admin=False),
                    "B": apikeys.create(conn, names["B"], restaurant_id=rid_b, admin=False),
                    "revoked": apikeys.create(conn, names["revoked"], restaurant_id=rid_a, admin=False),
                }
                apikeys.revoke(conn, names["revoked"])
            worker_env = {**os.environ, "DATABASE_URL": _url(dsn)}
            worker_env.pop("PGOPTIONS", None)
            log = open(os.path.join(tmp_home, "worker.log"), "wb")  # noqa: SIM115 (closed below)
            worker = subprocess.Popen(
                [sys.executable, "-m", "loyverse_sync", "worker", "--concurrency", "2"],
                env=worker_env, stdout=log, stderr=subprocess.STDOUT,
            )
            try:
                with (
                    serve_cmd.connector(dsn) as handle,
                    uvicorn_server(app_mod.create_app(handle, session_secret="test-secret")) as base_url,
                ):
                    yield Stack(dsn, base_url, emu, merchant["tokens"][0], {"A": rid_a, "B": rid_b}, keys, names,
                                worker)
            finally:
                worker.terminate()
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
                log.close()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _url(dsn: str) -> str:
    p = psycopg.conninfo.conninfo_to_dict(dsn)
    auth = p.get("user", "postgres") + (f":{p['password']}" if p.get("password") else "")
    return f"postgresql://{auth}@{p.get('host', '127.0.0.1')}:{p.get('port', 5432)}/{p['dbname']}"
