"""The rig the benchmarks and the tests share: a catalogue seeded from an emulator merchant,
real worker processes, a cron, a random price updater and the convergence checks.

It lives in bench/ because a benchmark imports installed code and its own folder only;
tests/support/ re-exports it beside the helpers only tests use. Nothing here ships in the
wheel: the product never imports it.

- Seeding: ``seed_from_emulator`` registers an emulator merchant as an account, links one
  restaurant per store, and creates one mapped product per (variant, store) with Loyverse's
  current price as both our price and the last synced price (a catalogue in sync, ready for
  ``UPDATE products SET price = ...``); ``link_emulator`` links one restaurant to one store.
- Processes: ``WorkerPool`` (`loyverse-sync worker` subprocesses, SIGKILLed at will), ``Cron``
  (the real periodic sweep deferred at 1 Hz instead of once a minute), ``running_receiver``
  (the webhook receiver under uvicorn on a thread).
- Checks every chaos run ends with: convergence per (variant, store), the last write in the
  emulator's log carries the final price, nothing stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import decimal
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import psycopg
import uvicorn
from psycopg import rows as pg_rows

from loyverse_emulator import menu
from loyverse_sync import accounts, db
from loyverse_sync.inbound import receiver as receiver_mod
from loyverse_sync.loyverse import client as client_mod

D = decimal.Decimal

# -- seeding ------------------------------------------------------------------------------------

@dataclasses.dataclass
class Seed:
    """What seed_from_emulator created."""

    account_id: int
    merchant_id: str
    restaurants: dict[str, str]  # store_id -> restaurant_id
    products: dict[tuple[str, str], str]  # (variant_id, store_id) -> product_id
    items: dict[str, str]  # variant_id -> item_id


# What the menu import writes on a mapping whose Loyverse price is VARIABLE (sql/0610).
VARIABLE_REASON = "VARIABLE price in Loyverse: imported as 0"


def seed_from_emulator(
    conn: psycopg.Connection[Any],
    emu: Any,
    *,
    merchant_index: int = 0,
    stores: int | None = None,
    items: int | None = None,
    settings: dict[str, Any] | None = None,
    account_name: str | None = None,
    rate_limit_requests: int = 300,
    rate_limit_window_seconds: float = 300.0,
) -> Seed:
    """Account + restaurants + mapped products mirroring an emulator merchant's menu.

    The guardrails are off (hold_change_percent null) unless ``settings`` sets them: tests
    move prices by arbitrary amounts; the guardrails have tests of their own.
    """
    settings = {"hold_change_percent": None, **(settings or {})}
    merchant = emu.merchants[merchant_index]
    token = merchant["tokens"][0]
    currency = merchant["currency"]
    account_id = accounts.add_account(
        conn, name=account_name or f"emu-{merchant['merchant_id'][:8]}", token=token,
        base_url=emu.base_url, merchant_id=merchant["merchant_id"],
        currency_code=currency.get("code", "EUR"), decimal_places=int(currency.get("decimal_places", 2)),
        rate_limit_requests=rate_limit_requests, rate_limit_window_seconds=rate_limit_window_seconds,
    )
    store_ids = list(merchant["store_ids"])[: stores or None]
    with client_mod.LoyverseClient(emu.base_url, token) as client:
        all_items = [i for i in client.iter_items() if not i.get("deleted_at")]
    all_items = [i for i in all_items if any(not v.get("deleted_at") for v in i.get("variants") or [])]
    all_items.sort(key=lambda i: i["id"])
    if items is not None:
        all_items = all_items[:items]
    restaurants: dict[str, str] = {}
    products: dict[tuple[str, str], str] = {}
    variant_items: dict[str, str] = {}
    for n, store_id in enumerate(store_ids):
        restaurant_id = accounts.add_restaurant(conn, f"Restaurant {n + 1} ({store_id[:6]})")
        accounts.link_restaurant(conn, restaurant_id, account_id, store_id)
        if settings:
            conn.execute("update loyverse.loyverse_price_sync_settings set "
                         + ", ".join(f"{k} = %({k})s" for k in settings)  # test-only keys
                         + " where restaurant_id = %(rid)s", {**settings, "rid": restaurant_id})
        restaurants[store_id] = restaurant_id
        rows = []
        for item in all_items:
            for variant in item["variants"]:
                if variant.get("deleted_at"):
                    continue
                entry = next((e for e in variant.get("stores") or [] if e["store_id"] == store_id), None)
                pricing = (entry or {}).get("pricing_type") or variant.get("default_pricing_type") or "FIXED"
                price = entry.get("price") if entry and pricing == "FIXED" else None
                if price is None:
                    price = variant.get("default_price") or 0
                if pricing == "VARIABLE":
                    price = 0  # as the import does: a 0 placeholder, flagged (see VARIABLE_REASON)
                rows.append((item, variant, decimal.Decimal(str(price)).quantize(decimal.Decimal("0.01")),
                             pricing == "VARIABLE"))
        with conn.cursor() as cur:
            for item, variant, price, variable in rows:
                name = (item.get("item_name") or "item")[:50]
                opt = variant.get("option1_value")
                cur.execute(
                    "insert into public.products (restaurant_id, name, price) values (%s, %s, %s) returning id",
                    (restaurant_id, f"{name} {opt}" if opt else name, price),
                )
                product_id = str(_first(cur.fetchone()))
                cur.execute(
                    "insert into loyverse.loyverse_item_mappings (product_id, restaurant_id, account_id,"
                    " loyverse_item_id, loyverse_variant_id, loyverse_store_id, last_synced_price,"
                    " last_synced_at, sync_direction, needs_attention, attention_reason, loyverse_pricing_type)"
                    " values (%s, %s, %s, %s, %s, %s, %s, now(), 'FROM_LOYVERSE', %s, %s, %s)",
                    (product_id, restaurant_id, account_id, item["id"], variant["variant_id"], store_id, price,
                     variable, VARIABLE_REASON if variable else None, "VARIABLE" if variable else "FIXED"),
                )
                products[(variant["variant_id"], store_id)] = product_id
                variant_items[variant["variant_id"]] = item["id"]
    return Seed(account_id, merchant["merchant_id"], restaurants, products, variant_items)


def _first(row: Any) -> Any:
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


def loyverse_prices(emu: Any, merchant_id: str) -> dict[tuple[str, str], decimal.Decimal | None]:
    """(variant_id, store_id) -> the store's price in the emulator right now."""
    out: dict[tuple[str, str], decimal.Decimal | None] = {}
    merchant = next(m for m in emu.merchants if m["merchant_id"] == merchant_id)
    with client_mod.LoyverseClient(emu.base_url, merchant["tokens"][0]) as client:
        for item in client.iter_items():
            for variant in item.get("variants") or []:
                for entry in variant.get("stores") or []:
                    price = entry.get("price")
                    out[(variant["variant_id"], entry["store_id"])] = (
                        None if price is None else decimal.Decimal(str(price)).quantize(decimal.Decimal("0.001"))
                    )
    return out


def db_prices(conn: psycopg.Connection[Any], account_id: int) -> dict[tuple[str, str], decimal.Decimal]:
    """(variant_id, store_id) -> our final rounded price, as Loyverse should show it.

    Mappings of a VARIABLE price (entered at the counter; imported as a 0 placeholder and
    flagged) are left out: there is no price of ours that Loyverse should show for them.
    """
    rows = conn.execute(
        "select m.loyverse_variant_id, m.loyverse_store_id,"
        " loyverse.round_price(p.price, s.price_rounding_rule, a.decimal_places) as price"
        " from loyverse.loyverse_item_mappings m join public.products p on p.id = m.product_id"
        " join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id"
        " join loyverse.loyverse_accounts a on a.id = m.account_id where m.account_id = %s"
        " and m.loyverse_pricing_type = 'FIXED'",
        (account_id,),
    ).fetchall()
    out = {}
    for row in rows:
        values = list(row.values()) if isinstance(row, dict) else list(row)
        out[(values[0], values[1])] = decimal.Decimal(values[2]).quantize(decimal.Decimal("0.001"))
    return out


def link_emulator(
    conn: psycopg.Connection[Any],
    emu: Any,
    *,
    restaurant: str = "Bistro",
    account: str = "emu",
    merchant_index: int = 0,
    store_index: int = 0,
    rate_limit_requests: int = 100_000,
) -> tuple[str, int, str]:
    """Register the emulator's merchant as an account and link a new restaurant to one of its
    stores. Returns (restaurant_id, account_id, store_id). Needs LOYVERSE_SYNC_KEY."""
    merchant = emu.merchants[merchant_index]
    currency = merchant.get("currency") or {}
    account_id = accounts.add_account(
        conn,
        name=account,
        token=merchant["tokens"][0],
        base_url=emu.base_url,
        merchant_id=merchant["merchant_id"],
        currency_code=(currency.get("code") if isinstance(currency, dict) else None) or "EUR",
        decimal_places=(currency.get("decimal_places") if isinstance(currency, dict) else None) or 2,
        rate_limit_requests=rate_limit_requests,
        rate_limit_window_seconds=1.0,
    )
    restaurant_id = accounts.add_restaurant(conn, restaurant)
    store_id = merchant["store_ids"][store_index]
    accounts.link_restaurant(conn, restaurant_id, account_id, store_id)
    return restaurant_id, account_id, store_id


# -- processes and threads ----------------------------------------------------------------

class LoopThread:
    """Runs `main()` in asyncio on a daemon thread; `error` keeps what ended it."""

    def __init__(self, name: str, main: Callable[[], Any]) -> None:
        self._main = main
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by the fixture
            self.error = exc


@contextlib.contextmanager
def running_receiver(conninfo: str, **kwargs: Any) -> Iterator[str]:
    """Serve the receiver on 127.0.0.1:<free port> under uvicorn; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    connector = db.Connector(conninfo, role="receiver", min_size=0, max_size=1)  # only its async_pool is used
    rec = receiver_mod.Receiver(connector, **kwargs)
    server = uvicorn.Server(uvicorn.Config(rec.app(), log_level="warning", lifespan="on"))

    async def main() -> None:
        await server.serve(sockets=[sock])

    runner = LoopThread("receiver", main)
    runner.thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if runner.error is not None or not runner.thread.is_alive():
            raise RuntimeError(f"receiver did not start: {runner.error!r}")
        if time.monotonic() > deadline:
            raise RuntimeError("receiver did not start within 30 s")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        runner.thread.join(30)
        sock.close()
        connector.close()


def wait_for(condition: Callable[[], Any], *, timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll ``condition`` until truthy; a failsafe timeout only (tests assert on final states)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


#: Worker tuning for time-compressed runs (production defaults: lease 120 s, HTTP timeout 15 s,
#: heartbeat 10 s).
FAST_ENV = {
    "LOYVERSE_SYNC_LEASE_SECONDS": "6",
    "LOYVERSE_SYNC_HTTP_TIMEOUT": "1.0",
    "LOYVERSE_SYNC_HEARTBEAT_SECONDS": "1",
    "LOYVERSE_SYNC_LOG_FORMAT": "json",
}

#: Backoff (base, cap) of a failed row in time-compressed runs, set on every restaurant by
#: WorkerPool.start.
FAST_BACKOFF = (0.2, 1.5)

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
        # a failed row's backoff is each restaurant's setting (production: 2 s..900 s)
        with connect(self.dsn) as conn:
            conn.execute("update loyverse.loyverse_price_sync_settings"
                         " set backoff_base_seconds = %s, backoff_cap_seconds = %s", FAST_BACKOFF)
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

        app = app_mod.build_app(app_mod.worker_connector(self.dsn), close_connector=True, max_pool_size=2)

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


# -- checks -------------------------------------------------------------------------------------

def diverged(conn: psycopg.Connection[Any], emu: Any, seed: Seed) -> dict[Any, Any]:
    """(variant, store) -> (ours, Loyverse's) for every mapped product where they differ."""
    want = db_prices(conn, seed.account_id)
    have = loyverse_prices(emu, seed.merchant_id)
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


def stale_last_writes(emu: Any, seed: Seed, want: dict[Any, D]) -> dict[Any, Any]:
    """(variant, store) whose LAST applied write (in the emulator's request log) carried a price
    other than the database's final one (an older version written last)."""
    last: dict[tuple[str, str], D] = {}
    for e in applied_writes(emu, seed.merchant_id):
        for v in e["body"].get("variants") or []:
            for s in v.get("stores") or []:
                if s.get("price") is not None:
                    last[(v["variant_id"], s["store_id"])] = D(str(s["price"])).quantize(D("0.001"))
    return {k: (want[k], p) for k, p in last.items() if k in want and p != want[k]}


def stale_last_changes(emu: Any, seed: Seed, want: dict[Any, D]) -> dict[Any, Any]:
    """Same check on the emulator's price-change log (every applied change, in apply order)."""
    last: dict[tuple[str, str], D] = {}
    for c in emu.state.price_changes_since(0, seed.merchant_id):
        if c["new_price"] is not None:
            last[(c["variant_id"], c["store_id"])] = D(str(c["new_price"])).quantize(D("0.001"))
    return {k: (want[k], p) for k, p in last.items() if k in want and p != want[k]}


def fault_counts(emu: Any) -> dict[str, int]:
    """Requests per injected fault kind, all merchants."""
    out: dict[str, int] = {}
    for e in emu.state.requests_since(0):
        if e.get("fault"):
            out[e["fault"]] = out.get(e["fault"], 0) + 1
    return out


def grow_menu(emu: Any, merchant_index: int, n_items: int, seed: int = 99) -> None:
    """Give a merchant (the emulator makes only the first one big) `n_items` more generated items."""
    info = emu.merchants[merchant_index]
    merchant = emu.state.merchants[info["merchant_id"]]
    generated = menu.generate(n_items, list(info["store_ids"]), seed=seed,
                              decimal_places=int(info["currency"]["decimal_places"]))
    with emu.state.lock:
        menu.load_into(merchant, generated)
