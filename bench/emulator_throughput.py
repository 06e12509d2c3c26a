"""Throughput of the Loyverse emulator under an httpx keep-alive client, measured in one run.

The emulator runs as a subprocess (`loyverse-sync emulator serve`) so server and client each
get a core. Prints, per scenario: requests/s, the server's CPU per request (from
/proc/PID/stat), the client's CPU per request (time.process_time), side by side, and the
rate the server could sustain if the client cost nothing (1 / server CPU per request). The rate
limit is switched off through the admin API for the run.

    .venv/bin/python bench/emulator_throughput.py [--requests 3000] [--threads 1,4]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time

import httpx

from loyverse_emulator import admin

TOKEN = "bench-token"


def _server_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (Linux)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_server() -> tuple[subprocess.Popen[str], str, str]:
    code = "from loyverse_sync.cli.emulator import emulator; emulator()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--port", "0", "--token", TOKEN, "--menu", "demo"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    base = admin_url = ""
    while not admin_url:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit("emulator did not start")
        if line.startswith("base URL:"):
            base = line.split()[-1]
        elif line.startswith("admin URL:"):
            admin_url = line.split()[-1]
    return proc, base, admin_url


def _run(base: str, path: str, total: int, threads: int) -> float:
    """Send `total` GETs over `threads` keep-alive connections; returns wall seconds."""
    per_thread = total // threads
    errors: list[str] = []

    def worker() -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            for _ in range(per_thread):
                response = client.get(path)
                if response.status_code != 200:
                    errors.append(f"{response.status_code} {response.text[:100]}")
                    return

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    started = time.perf_counter()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"unexpected response: {errors[0]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--threads", default="1,4")
    args = parser.parse_args()
    proc, base, admin_url = _start_server()
    try:
        with admin.AdminClient(admin_url) as adm:
            for merchant in adm.merchants():
                adm.set_modes(merchant["merchant_id"], rate_limit=None)
        _run(base, "/merchant/", 200, 1)  # warm-up
        print(
            f"emulator at {base} (pid {proc.pid}), {os.cpu_count()} CPUs, {args.requests} requests per row"
        )
        print(
            f"{'scenario':<34} {'req/s':>8} {'server CPU/req':>15} {'client CPU/req':>15} {'wall/req':>10} {'server-bound req/s':>19}"
        )
        for path in ("/merchant/", "/items?limit=1", "/items?limit=50"):
            for threads in (int(t) for t in args.threads.split(",")):
                total = args.requests - args.requests % threads
                server_cpu = _server_cpu_seconds(proc.pid)
                client_cpu = time.process_time()
                elapsed = _run(base, path, total, threads)
                client_cpu = time.process_time() - client_cpu
                server_cpu = _server_cpu_seconds(proc.pid) - server_cpu
                print(
                    f"GET {path:<20} x{threads:<2} conn  {total / elapsed:>8.0f} "
                    f"{server_cpu / total * 1e6:>12.0f} µs {client_cpu / total * 1e6:>12.0f} µs "
                    f"{elapsed / total * 1e6:>7.0f} µs {total / server_cpu:>19.0f}"
                )
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


if __name__ == "__main__":
    main()
