"""Chaos harness shared by tests/chaos/ and bench/chaos.py, bench/many_accounts.py.

Real worker processes (`python -m loyverse_sync -vv worker`), a cron played at 1 Hz (the
production periodic sweep runs every minute; the test defers the same procrastinate task
more often, so the real sweep code runs in the real workers), a random price updater, and
the checks every chaos run ends with: convergence per (variant, store), the last write in
the emulator's log carries the final price, nothing stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import decimal
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg import rows as pg_rows

from loyverse_sync.pricesync import testing

D = decimal.Decimal

#: Worker tuning for time-compressed runs (production defaults: lease 120 s, backoff 2 s..900 s,
#: HTTP timeout 15 s, heartbeat 10 s).
FAST_ENV = {
    "LOYVERSE_SYNC_LEASE_SECONDS": "6",
    "LOYVERSE_SYNC_BACKOFF_BASE": "0.2",
    "LOYVERSE_SYNC_BACKOFF_CAP": "1.5",
    "LOYVERSE_SYNC_HTTP_TIMEOUT": "1.0",
    "LOYVERSE_SYNC_HEARTBEAT_SECONDS": "1",
    "LOYVERSE_SYNC_LOG_FORMAT": "json",
}

#: Error codes the emulator's injected faults (and worker kills) produce on a dead row.
FAULT_CODES = {"INTERNAL_SERVER_ERROR", "RATE_LIMITED", "HTTP_500", "HTTP_429", "TRANSPORTFAILURE",
               "LEASE_EXPIRED", "TIMEOUT", "TRANSPORT_FAILURE", "CONNECTION_ERROR"}


def connect(dsn: str) -> psycopg.Connection[dict[str, Any]]:
    return psycopg.connect(dsn, autocommit=True, row_factory=pg_rows.dict_row)


class WorkerPool:
    """N `loyverse-sync worker` subprocesses; SIGKILL and restart them at will."""

    def __init__(self, dsn: str, log_dir: str, *, concurrency: int = 3, env: dict[str, str] | None = None,
                 verbose: bool = True) -> None:
        self.dsn = dsn
        self.log_dir = log_dir
        self.concurrency = concurrency
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        self.env.update(FAST_ENV)
        self.env.update(env or {})
        self.env["DATABASE_URL"] = dsn
        self.verbose = verbose
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[str] = []
        self.kills = 0
        os.makedirs(log_dir, exist_ok=True)

    def spawn(self) -> int:
        """Start one more worker process; returns its index."""
        n = len(self.logs)
        path = os.path.join(self.log_dir, f"worker-{n}.log")
        self.logs.append(path)
        args = [sys.executable, "-m", "loyverse_sync"] + (["-vv"] if self.verbose else [])
        args += ["worker", "--concurrency", str(self.concurrency), "--graceful-timeout", "3"]
        with open(path, "wb") as log:
            proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return len(self.procs) - 1

    def start(self, n: int) -> WorkerPool:
        for _ in range(n):
            self.spawn()
        return self

    def alive(self) -> list[int]:
        return [i for i, p in enumerate(self.procs) if p.poll() is None]

    def kill(self, index: int) -> None:
        """SIGKILL one worker (no cleanup at all) and start a replacement."""
        proc = self.procs[index]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        self.kills += 1
        self.procs[index] = self._respawn(index)

    def _respawn(self, index: int) -> subprocess.Popen[bytes]:
        args = [sys.executable, "-m", "loyverse_sync"] + (["-vv"] if self.verbose else [])
        args += ["worker", "--concurrency", str(self.concurrency), "--graceful-timeout", "3"]
        with open(self.logs[index], "ab") as log:
            return subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def kill_mid_batch(self, conn: psycopg.Connection[Any], wait: float = 3.0) -> bool:
        """SIGKILL a worker that holds a claim right now (processing rows); False if none did."""
        deadline = time.monotonic() + wait
        pids = {p.pid: i for i, p in enumerate(self.procs) if p.poll() is None}
        while time.monotonic() < deadline:
            holders = conn.execute("select distinct split_part(claimed_by, ':', 2) as pid"
                                   " from loyverse.loyverse_price_sync_queue where status = 'processing'"
                                   "   and lease_until > clock_timestamp()").fetchall()
            for row in holders:
                if row["pid"].isdigit() and int(row["pid"]) in pids:
                    self.kill(pids[int(row["pid"])])
                    return True
            time.sleep(0.02)
        return False

    def stop(self, timeout: float = 15.0) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def output(self) -> str:
        out = []
        for path in self.logs:
            with open(path, encoding="utf-8", errors="replace") as f:
                out.append(f.read())
        return "\n".join(out)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Cron(threading.Thread):
    """Defers the real `sweep_price_sync` periodic task every `interval` seconds (production: 60 s)."""

    def __init__(self, dsn: str, interval: float = 1.0) -> None:
        super().__init__(daemon=True, name="chaos-cron")
        self.dsn = dsn
        self.interval = interval
        self.stopped = threading.Event()
        self.deferred = 0

    def run(self) -> None:
        from loyverse_sync.worker import app as app_mod

        app = app_mod.build_app(self.dsn, max_pool_size=2)

        async def loop() -> None:
            async with app.open_async():
                task = app.tasks["sweep_price_sync"]
                while not self.stopped.is_set():
                    with contextlib.suppress(Exception):  # AlreadyEnqueued: the last one is still queued
                        await task.defer_async(timestamp=int(time.time()))
                        self.deferred += 1
                    await asyncio.sleep(self.interval)

        asyncio.run(loop())

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)


def queue_counts(conn: psycopg.Connection[Any], account_ids: Iterable[int] | None = None) -> dict[str, int]:
    rows = conn.execute(
        "select status, count(*)::int as n from loyverse.loyverse_price_sync_queue"
        " where %(a)s::bigint[] is null or account_id = any(%(a)s::bigint[]) group by status",
        {"a": None if account_ids is None else list(account_ids)},
    ).fetchall()
    return {r["status"]: r["n"] for r in rows}


def wait_drained(conn: psycopg.Connection[Any], timeout: float, account_ids: Iterable[int] | None = None) -> float:
    """Wait until no row is pending or processing; returns the seconds waited."""
    start = time.monotonic()
    ids = None if account_ids is None else list(account_ids)
    while True:
        counts = queue_counts(conn, ids)
        if counts.get("pending", 0) == 0 and counts.get("processing", 0) == 0:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"queue not drained after {timeout:.0f} s: {counts}")
        time.sleep(0.1)


@dataclasses.dataclass
class Updater:
    """Random price updates (single-row and bulk) over the seeded products."""

    conn: psycopg.Connection[Any]
    products: dict[str, list[str]]  # restaurant_id -> product ids
    decimals: dict[str, int]  # restaurant_id -> currency decimals
    rng: random.Random
    updates: int = 0
    statements: int = 0
    bulk_statements: int = 0

    def price(self, restaurant_id: str) -> D:
        if self.decimals[restaurant_id] == 0:
            return D(self.rng.randrange(100, 5000))
        return D(self.rng.randrange(50, 9999)) / 100 + D(self.rng.choice(["0", "0.001", "0.004", "0.005"]))

    def step(self) -> int:
        """One UPDATE statement; returns the product rows it changed."""
        rid = self.rng.choice(list(self.products))
        if self.rng.random() < 0.7:
            pid = self.rng.choice(self.products[rid])
            cur = self.conn.execute("update public.products set price = %s where id = %s",
                                    (self.price(rid), pid))
        else:
            size = self.rng.randint(5, min(60, len(self.products[rid])))
            chosen = self.rng.sample(self.products[rid], size)
            if self.rng.random() < 0.5:
                factor = D(self.rng.choice(["1.05", "0.95", "1.10", "0.90", "1.013"]))
                cur = self.conn.execute("update public.products set price = round(price * %s, 2)"
                                        " where id = any(%s::uuid[])", (factor, chosen))
            else:
                values = [(pid, self.price(rid)) for pid in chosen]
                with self.conn.cursor() as c:
                    c.execute("update public.products p set price = v.price from (select unnest(%s::uuid[]) as id,"
                              " unnest(%s::numeric[]) as price) v where p.id = v.id",
                              ([v[0] for v in values], [v[1] for v in values]))
                    cur = c
            self.bulk_statements += 1
        self.statements += 1
        self.updates += cur.rowcount
        return cur.rowcount


def diverged(conn: psycopg.Connection[Any], emu: Any, seed: testing.Seed) -> dict[Any, Any]:
    """(variant, store) -> (ours, Loyverse's) for every mapped product where they differ."""
    want = testing.db_prices(conn, seed.account_id)
    have = testing.loyverse_prices(emu, seed.merchant_id)
    return {k: (v, have.get(k)) for k, v in want.items() if have.get(k) != v}


def applied_writes(emu: Any, merchant_id: str) -> list[dict[str, Any]]:
    """POST /items requests of one merchant whose write was applied (answered or not), in log order."""
    out = []
    for e in emu.state.requests_since(0, merchant_id):
        if e["method"] != "POST" or not e["path"].rstrip("/").endswith("/items") or not isinstance(e.get("body"), dict):
            continue
        fault = e.get("fault") or ""
        if e["status"] == 200 or fault.startswith("after_write"):
            out.append(e)
    return out


def stale_last_writes(emu: Any, seed: testing.Seed, want: dict[Any, D]) -> dict[Any, Any]:
    """(variant, store) whose LAST applied write (in the emulator's request log) carried a price
    other than the database's final one (an older version written last)."""
    last: dict[tuple[str, str], D] = {}
    for e in applied_writes(emu, seed.merchant_id):
        for v in e["body"].get("variants") or []:
            for s in v.get("stores") or []:
                if s.get("price") is not None:
                    last[(v["variant_id"], s["store_id"])] = D(str(s["price"])).quantize(D("0.001"))
    return {k: (want[k], p) for k, p in last.items() if k in want and p != want[k]}


def stale_last_changes(emu: Any, seed: testing.Seed, want: dict[Any, D]) -> dict[Any, Any]:
    """Same check on the emulator's price-change log (every applied change, in apply order)."""
    last: dict[tuple[str, str], D] = {}
    for c in emu.state.price_changes_since(0, seed.merchant_id):
        if c["new_price"] is not None:
            last[(c["variant_id"], c["store_id"])] = D(str(c["new_price"])).quantize(D("0.001"))
    return {k: (want[k], p) for k, p in last.items() if k in want and p != want[k]}


def noop_writes(emu: Any, merchant_id: str, initial: dict[tuple[str, str], Any]) -> int:
    """Applied item writes that changed no price at all: a version sent again (replayed in log order)."""
    current = {k: (None if v is None else D(str(v)).quantize(D("0.001"))) for k, v in initial.items()}
    noop = 0
    for e in applied_writes(emu, merchant_id):
        changed = False
        for v in e["body"].get("variants") or []:
            for s in v.get("stores") or []:
                key = (v["variant_id"], s["store_id"])
                price = None if s.get("price") is None else D(str(s["price"])).quantize(D("0.001"))
                if current.get(key) != price:
                    changed = True
                current[key] = price
        noop += not changed
    return noop


def fault_counts(emu: Any) -> dict[str, int]:
    """Requests per injected fault kind, all merchants."""
    out: dict[str, int] = {}
    for e in emu.state.requests_since(0):
        if e.get("fault"):
            out[e["fault"]] = out.get(e["fault"], 0) + 1
    return out


def grow_menu(emu: Any, merchant_index: int, n_items: int, seed: int = 99) -> None:
    """Give a merchant (the emulator makes only the first one big) `n_items` more generated items."""
    from loyverse_emulator import menu

    info = emu.merchants[merchant_index]
    merchant = emu.state.merchants[info["merchant_id"]]
    generated = menu.generate(n_items, list(info["store_ids"]), seed=seed,
                              decimal_places=int(info["currency"]["decimal_places"]))
    with emu.state.lock:
        menu.load_into(merchant, generated)


def window_peaks(emu: Any, merchant_id: str, window: float) -> int:
    """The most requests of one merchant inside any sliding window of `window` seconds."""
    import datetime as dt

    times = sorted(dt.datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp()
                   for e in emu.state.requests_since(0, merchant_id) if e.get("status") is not None
                   and e.get("status") != 401)
    peak, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        peak = max(peak, hi - lo + 1)
    return peak


# -- whole-object writes: nothing but the synced store prices may change ----------------------

def item_fingerprints(emu: Any, merchant_id: str, mapped: Iterable[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """item id -> every field of the item as the emulator holds it (deleted items too), without
    `updated_at` and without the `price`/`pricing_type` of the mapped (variant, store) entries:
    whatever a price sync may change. A key holding null counts as absent (an old item without
    `description` that a whole-object write gives `description: null` is unchanged)."""
    import copy

    skip = set(mapped)

    def clean(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if v is not None and k != "updated_at"}

    out: dict[str, dict[str, Any]] = {}
    for item in emu.state.items(merchant_id, include_deleted=True):
        item = copy.deepcopy(item)
        variants = []
        for variant in item.get("variants") or []:
            stores = []
            for entry in variant.get("stores") or []:
                if (variant["variant_id"], entry["store_id"]) in skip:
                    entry = {k: v for k, v in entry.items() if k not in ("price", "pricing_type")}
                stores.append(clean(entry))
            variants.append({**clean(variant), "stores": stores})
        out[item["id"]] = {**clean(item), "variants": variants}
    return out


def fingerprint_changes(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> list[str]:
    """What differs between two `item_fingerprints`: one line per changed field, item or variant."""
    out: list[str] = []
    for item_id in sorted(set(before) | set(after)):
        old, new = before.get(item_id), after.get(item_id)
        if old is None or new is None:
            out.append(f"item {item_id}: {'appeared' if old is None else 'vanished'}")
            continue
        for key in sorted(set(old) | set(new)):
            if key == "variants":
                old_v = {v["variant_id"]: v for v in old["variants"]}
                new_v = {v["variant_id"]: v for v in new["variants"]}
                for vid in sorted(set(old_v) | set(new_v)):
                    a, b = old_v.get(vid), new_v.get(vid)
                    if a != b:
                        keys = sorted(k for k in set(a or {}) | set(b or {}) if (a or {}).get(k) != (b or {}).get(k))
                        out.append(f"item {item_id} variant {vid}: {keys}"
                                   + (f" {a and a.get(keys[0])!r} -> {b and b.get(keys[0])!r}" if keys else ""))
            elif old.get(key) != new.get(key):
                out.append(f"item {item_id} {key}: {old.get(key)!r} -> {new.get(key)!r}")
    return out
