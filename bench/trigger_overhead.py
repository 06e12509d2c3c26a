"""Cost of the price-sync trigger on UPDATE products, measured side by side in one run.

Same database, same rows: the trigger enabled vs disabled (ALTER TABLE ... DISABLE TRIGGER),
interleaved, medians of 3. Cases: single-row price UPDATE of a mapped product (psycopg loop,
autocommit), a non-price UPDATE, a 20,000-row bulk price UPDATE in one statement.
A committed `todo` job exists (steady state), as when a worker is busy.
Usage: .venv/bin/python bench/trigger_overhead.py [--loops 2000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid

import psycopg

from loyverse_sync import accounts, crypto, db


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loops", type=int, default=2000)
    parser.add_argument("--admin", default="host=127.0.0.1 user=postgres dbname=postgres")
    args = parser.parse_args()
    os.environ.setdefault("LOYVERSE_SYNC_HOME", tempfile.mkdtemp())
    os.environ["LOYVERSE_SYNC_KEY"] = crypto.new_key().decode()
    name = f"bench_trg_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.admin, autocommit=True) as c:
        c.execute(f"create database {name}")
    dsn = psycopg.conninfo.make_conninfo(args.admin, dbname=name)
    try:
        db.migrate(dsn)
        with db.connect(dsn, autocommit=True) as conn:
            setup(conn)
            run(conn, args.loops)
    finally:
        with psycopg.connect(args.admin, autocommit=True) as c:
            c.execute(f"drop database {name} with (force)")


def setup(conn: psycopg.Connection) -> None:
    account = accounts.add_account(conn, name="a", token="t", base_url="http://127.0.0.1:9/v1.0")
    rid = accounts.add_restaurant(conn, "R")
    accounts.link_restaurant(conn, rid, account, "s1")
    conn.execute("insert into public.products (restaurant_id, name, price)"
                 " select %s, 'p' || g, 10 from generate_series(1, 20000) g", (rid,))
    conn.execute("insert into loyverse.loyverse_item_mappings (product_id, restaurant_id, account_id,"
                 " loyverse_item_id, loyverse_variant_id, loyverse_store_id)"
                 " select id, restaurant_id, %s, 'i' || id, 'v' || id, 's1' from public.products", (account,))
    conn.execute("update public.products set price = 11 where name = 'p1'")  # a committed todo job
    conn.execute("vacuum analyze")


def timed(conn: psycopg.Connection, fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(conn: psycopg.Connection, loops: int) -> None:
    ids = [r["id"] for r in conn.execute("select id from public.products order by name limit 200")]

    def single() -> None:
        for n in range(loops):
            conn.execute("update public.products set price = %s where id = %s", (10 + (n % 50) / 10, ids[n % 200]))

    def non_price() -> None:
        for n in range(loops):
            conn.execute("update public.products set name = %s where id = %s", (f"p{n % 200}x", ids[n % 200]))

    state = {"k": 0}

    def bulk() -> None:
        state["k"] += 1
        conn.execute("update public.products set price = price + %s", (0.01 if state["k"] % 2 else -0.01,))

    cases = [("single-row price UPDATE", single, loops), ("non-price UPDATE", non_price, loops),
             ("20,000-row bulk price UPDATE", bulk, 20000)]
    print(f"{'case':<32}{'without':>14}{'with':>14}{'ratio':>8}")
    for label, fn, rows in cases:
        off, on = [], []
        for _ in range(3):
            conn.execute("alter table public.products disable trigger _100_enqueue_price_sync")
            off.append(timed(conn, fn))
            conn.execute("alter table public.products enable trigger _100_enqueue_price_sync")
            on.append(timed(conn, fn))
        a, b = statistics.median(off), statistics.median(on)
        print(f"{label:<32}{a / rows * 1e6:>10.1f} µs/row{b / rows * 1e6:>8.1f} µs/row{b / a:>7.2f}x")


if __name__ == "__main__":
    main()
