"""API latency of `serve` (goal: p99 < 50 ms for sync/status, sync/history, sync/settings with
50 restaurants and 1,000,000 queue rows), side by side with the same SQL run in psql.

The server runs in this process (uvicorn on a free port, one worker thread pool as in
production); requests go over real HTTP with a restaurant's key, round-robin over the
restaurants. psql runs each endpoint's query (from loyverse_sync/queries/api.sql) the same
number of times in one session with \\timing.

Usage: .venv/bin/python bench/api_latency.py [--restaurants 50] [--rows 1000000] [--requests 400]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import threading
import time

import _scratch
import httpx
import uvicorn
from psycopg import conninfo as pg_conninfo

from loyverse_sync import accounts, apikeys, db, queries
from loyverse_sync.cli import serve as serve_cmd
from loyverse_sync.web import app as app_mod

API = "/api/integrations/loyverse"


def seed(dsn: str, restaurants: int, rows: int) -> list[tuple[str, str]]:
    """Restaurants with 400 mapped products each, `rows` queue rows (94 % done over the last
    week, the rest pending, failed, dead), one history row per 50 queue rows. Returns (id, key)."""
    out = []
    with db.connect(dsn, autocommit=True) as conn:
        account = accounts.add_account(conn, name="a", token="t", base_url="http://127.0.0.1:9/v1.0")
        for n in range(restaurants):
            rid = accounts.add_restaurant(conn, f"Restaurant {n:02d}")
            accounts.link_restaurant(conn, rid, account, f"s{n}")
            conn.execute("insert into public.categories (restaurant_id, name) select %s, 'Category ' || g"
                         " from generate_series(1, 8) g", (rid,))
            out.append((rid, apikeys.create(conn, f"bench-{n}", restaurant_id=rid, admin=False)))
        conn.execute("insert into public.products (restaurant_id, name, price)"
                     " select r.id, 'p' || g, 10 from public.restaurants r, generate_series(1, 400) g")
        conn.execute("insert into loyverse.loyverse_item_mappings (product_id, restaurant_id, account_id,"
                     " loyverse_item_id, loyverse_variant_id, loyverse_store_id)"
                     " select p.id, p.restaurant_id, %s, 'i' || p.id, 'v' || p.id, l.store_id"
                     " from public.products p join loyverse.loyverse_restaurant_links l using (restaurant_id)",
                     (account,))
        conn.execute("""
            insert into loyverse.loyverse_price_sync_queue (product_id, restaurant_id, account_id, status,
                   new_price, price_to_send, created_at, completed_at, last_error)
            select (p.ids)[1 + s.g %% p.n], (p.rids)[1 + s.g %% p.n], %(account)s, s.status, 10, 10,
                   s.at - interval '3 seconds', s.at, case when s.status in ('failed', 'dead') then 'bench' end
              from (select g, case when g %% 100 < 94 then 'done' when g %% 100 < 97 then 'failed'
                                   when g %% 100 < 98 then 'dead' else 'cancelled' end as status,
                           now() - make_interval(secs => (g %% 604800)) as at
                      from generate_series(1, %(rows)s) g) s,
                   (select array_agg(id order by id) as ids, array_agg(restaurant_id order by id) as rids,
                           count(*)::int as n from public.products) p
        """, {"account": account, "rows": rows})
        conn.execute("update public.products set price = 11 where name in ('p1', 'p2', 'p3')")  # pending rows
        conn.execute("""
            insert into loyverse.loyverse_sync_logs (restaurant_id, account_id, sync_type, status, items_total,
                   items_succeeded, started_at, completed_at)
            select r.id, %s, 'PRICE_SYNC', 'SUCCESS', 50, 50, now() - make_interval(secs => g * 30),
                   now() - make_interval(secs => g * 30) + interval '1 second'
              from public.restaurants r, generate_series(1, %s) g
        """, (account, max(1, rows // 50 // restaurants)))
        conn.execute("vacuum analyze")
    return out


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def psql_times(dsn: str, sql: str, params: list[dict[str, object]], *, jit: bool = True) -> list[float] | None:
    """Each query run in one psql session with \\timing; milliseconds as psql reports them."""
    if shutil.which("psql") is None:
        return None
    script = ["\\timing on", "\\o /dev/null"] + ([] if jit else ["set jit = off;"])
    for p in params:
        text = sql
        for k, v in p.items():
            text = text.replace(f"%({k})s", "null" if v is None else f"'{v}'" if isinstance(v, str) else str(v))
        script.append(text.replace("%%", "%") + ";")
    out = subprocess.run(["psql", "-X", "-q", dsn], input="\n".join(script), capture_output=True, text=True,
                         check=True).stdout
    found = [float(m) for m in re.findall(r"Time: ([0-9.]+) ms", out)]
    return found if jit else found[1:]  # the first is the SET


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--restaurants", type=int, default=50)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--without-index", action="store_true",
                        help="Drop 0063's index of done rows by restaurant first (the figures before it).")
    parser.add_argument("--admin", default=os.environ.get("LOYVERSE_SYNC_BENCH_ADMIN", "host=127.0.0.1 user=postgres dbname=postgres"))
    args = parser.parse_args()
    with _scratch.scratch_database("api", admin=args.admin) as dsn:
        started = time.monotonic()
        keys = seed(dsn, args.restaurants, args.rows)
        print(f"seeded {args.restaurants} restaurants, {args.rows:,} queue rows in {time.monotonic() - started:.0f} s")
        if args.without_index:
            with db.connect(dsn, autocommit=True) as conn:
                conn.execute("drop index loyverse.loyverse_price_sync_queue_restaurant_id_completed_at_idx")
            print("without 0063's index of done rows by restaurant")
        handle = serve_cmd.connector(dsn)  # as `loyverse-sync serve` builds it (no JIT)
        app = app_mod.create_app(handle, session_secret="bench")
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        endpoints = [("sync/status", "sync_status", {}), ("sync/history", "sync_history", {"limit": 51, "offset": 0}),
                     ("sync/settings", "settings", {})]
        url = pg_conninfo.conninfo_to_dict(dsn)
        psql_dsn = f"postgresql://{url.get('user', 'postgres')}@{url.get('host', '127.0.0.1')}:{url.get('port', 5432)}/{url['dbname']}"
        print(f"{'endpoint':<16} {'HTTP p50':>9} {'HTTP p99':>9} {'psql p50':>9} {'psql p99':>9}"
              f" {'no-JIT p50':>10} {'no-JIT p99':>10}  (ms, {args.requests} requests each; serve runs without JIT)")
        try:
            clients = {rid: httpx.Client(base_url=base, headers={"authorization": f"Bearer {key}"}) for rid, key in keys}
            for path, query, extra in endpoints:
                for rid, _ in keys[:5]:  # warm the pool and the caches
                    clients[rid].get(f"{API}/{path}").raise_for_status()
                times = []
                for n in range(args.requests):
                    rid = keys[n % len(keys)][0]
                    t0 = time.perf_counter()
                    clients[rid].get(f"{API}/{path}").raise_for_status()
                    times.append((time.perf_counter() - t0) * 1000)
                params = [{"restaurant_id": keys[n % len(keys)][0], **extra} for n in range(args.requests)]
                psql_cols = ""
                for jit, width in ((True, 9), (False, 10)):
                    sql_times = psql_times(psql_dsn, queries.get("api", query), params, jit=jit)
                    psql_cols += (f" {statistics.median(sql_times):>{width}.2f} {percentile(sql_times, 99):>{width}.2f}"
                                  if sql_times else f" {'-':>{width}} {'-':>{width}}")
                print(f"{path:<16} {statistics.median(times):>9.2f} {percentile(times, 99):>9.2f}{psql_cols}")
            for c in clients.values():
                c.close()
        finally:
            server.should_exit = True
            thread.join(timeout=15)
            handle.close()
            sock.close()


if __name__ == "__main__":
    main()
