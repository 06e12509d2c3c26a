"""An import started through the API on a 10,000-item menu: how often menu/status shows it
move (goal: at least every second), and that it ends like the CLI's `import run` of the same
menu (same counts), timed side by side.

Restaurant A (store 1) is imported through POST menu/import and a real worker; restaurant B
(store 2 of the same merchant) by `loyverse-sync import run` as a subprocess. menu/status is
polled every 100 ms; a "gap" is the time between two polls that saw different progress.

Usage: .venv/bin/python bench/api_import_progress.py [--items 10000] [--batch-size 1000]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time

import _scratch
import httpx
import rig
import uvicorn

from loyverse_emulator import server as emu_server
from loyverse_sync import accounts, apikeys, db
from loyverse_sync.cli import serve as serve_cmd
from loyverse_sync.web import app as app_mod

API = "/api/integrations/loyverse"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--admin", default=os.environ.get("LOYVERSE_SYNC_BENCH_ADMIN", "host=127.0.0.1 user=postgres dbname=postgres"))
    args = parser.parse_args()
    with (
        _scratch.scratch_database("apiimport", admin=args.admin) as dsn,
        emu_server.EmulatorServer(menu=args.items, seed=3, stores=2, time_scale=1000) as emu,
    ):
        with db.connect(dsn, autocommit=True) as conn:
            rid_a, account_id, _ = rig.link_emulator(conn, emu, restaurant="A")
            rid_b = accounts.add_restaurant(conn, "B")
            accounts.link_restaurant(conn, rid_b, account_id, emu.merchants[0]["store_ids"][1])
            key = apikeys.create(conn, "bench", restaurant_id=rid_a, admin=False)
        env = {**os.environ, "DATABASE_URL": _url(dsn)}
        env.pop("PGOPTIONS", None)
        worker = subprocess.Popen([sys.executable, "-m", "loyverse_sync", "worker"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        handle = serve_cmd.connector(dsn)  # as `loyverse-sync serve` builds it (no JIT)
        app = app_mod.create_app(handle, session_secret="bench")
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}",
                              headers={"authorization": f"Bearer {key}"}, timeout=60) as c:
                t0 = time.monotonic()
                run_id = c.post(f"{API}/menu/import", json={"conflictResolution": "update", "batch_size": args.batch_size,
                                                            "refresh": True}).json()["run_id"]
                seen: list[tuple[float, tuple[object, ...]]] = []
                while True:
                    run = c.get(f"{API}/menu/status", params={"run_id": run_id}).json()["run"]
                    planning = run.get("planning") or {}
                    state = (run["status"], run["phase"], run["fetched_items"], planning.get("stage"),
                             planning.get("done"), run["items_done"])
                    if not seen or seen[-1][1] != state:
                        seen.append((time.monotonic() - t0, state))
                    if run["status"] not in ("PENDING", "RUNNING"):
                        break
                    time.sleep(0.1)
                api_seconds = time.monotonic() - t0
            t1 = time.monotonic()
            cli = subprocess.run([sys.executable, "-m", "loyverse_sync", "import", "run", "--restaurant", "B",
                                  "--conflict", "update", "--refresh", "--batch-size", str(args.batch_size), "--json"],
                                 env=env, capture_output=True, text=True, check=True)
            cli_seconds = time.monotonic() - t1
        finally:
            server.should_exit = True
            thread.join(timeout=15)
            handle.close()
            worker.terminate()
            worker.wait(timeout=60)
        result = json.loads(cli.stdout)
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(seen)]
        print(f"menu: {args.items:,} items; batch size {args.batch_size}")
        print(f"API import: {run['status']} in {api_seconds:.1f} s; progress changes seen: {len(seen)}; "
              f"largest gap between changes: {max(gaps):.2f} s (while fetching: "
              f"{max((b[0] - a[0] for a, b in itertools.pairwise(seen) if a[1][1] in ('queued', 'fetching')), default=0):.2f} s, "
              f"while planning: {max((b[0] - a[0] for a, b in itertools.pairwise(seen) if a[1][1] == 'planning'), default=0):.2f} s, "
              f"while importing: {max((b[0] - a[0] for a, b in itertools.pairwise(seen) if a[1][1] == 'importing'), default=0):.2f} s)")
        print(f"CLI import run: {result['status']} in {cli_seconds:.1f} s")
        for k in ("created", "updated", "skipped", "duplicated", "failed"):
            print(f"  {k:<10} API {run[k + '_count']:>6}   CLI {result.get(k, 0):>6}")


def _url(dsn: str) -> str:
    from psycopg import conninfo

    p = conninfo.conninfo_to_dict(dsn)
    return f"postgresql://{p.get('user', 'postgres')}@{p.get('host', '127.0.0.1')}:{p.get('port', 5432)}/{p['dbname']}"


if __name__ == "__main__":
    main()
