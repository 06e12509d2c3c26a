"""Cost of the price-sync trigger on UPDATE products, measured side by side in one run.

Same database, same 20,000 mapped products, the price-sync triggers (every trigger on
products whose function lives in schema loyverse) enabled vs disabled (ALTER TABLE ...
DISABLE TRIGGER), interleaved rounds, medians. A committed `todo` job exists
(steady state, as when a worker is busy); each run with the trigger starts from an empty queue.

* pgbench, single-row `UPDATE ... SET price` of a random mapped product and a non-price UPDATE
  (`SET name = name`), in two settings: durable commits (synchronous_commit=on, 2 clients,
  what production runs) and CPU-bound (synchronous_commit=off, 1 client: no fsync to hide
  the trigger's CPU). Ratio = median tps without / median tps with the trigger (goals: price
  <= 1.5x, non-price <= 1.05x); after it, each round's own ratio (its off and on runs were
  back to back), sorted, for the spread.
* 20,000-row bulk price UPDATE in one statement (psycopg, autocommit, goal <= 3.5x), run in
  a session that made single-row updates first: PL/pgSQL keeps each query plan from its
  first run, so this also catches a plan made for one row being reused for 20,000. Two
  cases with the trigger, each round: from a drained queue (20,000 new queue rows, what a
  chain-wide change meets while a worker keeps up) and right after it, coalescing into
  those 20,000 pending rows (a second change before any worker ran).

Usage: .venv/bin/python bench/trigger_overhead.py [--seconds 3] [--rounds 9] [--bulk-rounds 5]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import subprocess
import tempfile
import time

import _scratch
import psycopg

from loyverse_sync import accounts, db

SCRIPTS = {
    "single-row price UPDATE": "\\set n random(1, 20000)\n"
    "update public.products set price = price + 0.01 where id = (select id from bench_ids where n = :n);\n",
    "non-price UPDATE": "\\set n random(1, 20000)\n"
    "update public.products set name = name where id = (select id from bench_ids where n = :n);\n",
}
MODES = [("durable (sync_commit=on, 2 clients)", "on", 2), ("CPU-bound (sync_commit=off, 1 client)", "off", 1)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0, help="per pgbench run")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved off/on pgbench rounds")
    parser.add_argument("--bulk-rounds", type=int, default=5)
    parser.add_argument("--trigger-sql", help="SQL run after migrating (e.g. another trigger function) to compare designs")
    parser.add_argument("--admin", default=os.environ.get("LOYVERSE_SYNC_BENCH_ADMIN", "host=127.0.0.1 user=postgres dbname=postgres"))
    args = parser.parse_args()
    with _scratch.scratch_database("trg", admin=args.admin) as dsn:  # noqa: SIM117
        with db.connect(dsn, autocommit=True) as conn:
            if args.trigger_sql:
                conn.execute(pathlib.Path(args.trigger_sql).read_text())
            setup(conn)
            print(f"{'case':<30}{'setting':<40}{'without':>12}{'with':>12}{'ratio':>8}   per-round ratios")
            pgbench_cases(conn, dsn, args.seconds, args.rounds)
            bulk(conn, args.bulk_rounds)


def setup(conn: psycopg.Connection) -> None:
    account = accounts.add_account(conn, name="a", token="t", base_url="http://127.0.0.1:9/v1.0")
    rid = accounts.add_restaurant(conn, "R")
    accounts.link_restaurant(conn, rid, account, "s1")
    conn.execute("insert into public.products (restaurant_id, name, price)"
                 " select %s, 'p' || g, 10 from generate_series(1, 20000) g", (rid,))
    conn.execute("insert into loyverse.loyverse_item_mappings (product_id, restaurant_id, account_id,"
                 " loyverse_item_id, loyverse_variant_id, loyverse_store_id)"
                 " select id, restaurant_id, %s, 'i' || id, 'v' || id, 's1' from public.products", (account,))
    conn.execute("create table public.bench_ids as"
                 " select row_number() over (order by id)::int as n, id from public.products")
    conn.execute("alter table public.bench_ids add primary key (n)")
    conn.execute("update public.products set price = 11 where name = 'p1'")  # a committed todo job
    conn.execute("vacuum analyze")


def set_trigger(conn: psycopg.Connection, on: bool) -> None:
    names = [r["tgname"] for r in conn.execute(
        "select t.tgname from pg_trigger t join pg_proc p on p.oid = t.tgfoid"
        " where t.tgrelid = 'public.products'::regclass and not t.tgisinternal"
        " and p.pronamespace = 'loyverse'::regnamespace")]
    for name in names:
        conn.execute(f"alter table public.products {'enable' if on else 'disable'} trigger {name}")


def pgbench(dsn: str, script: pathlib.Path, clients: int, sync_commit: str, seconds: float) -> float:
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    env = dict(os.environ, PGOPTIONS=f"-c synchronous_commit={sync_commit}")
    cmd = ["pgbench", "-n", "-T", str(int(seconds)), "-c", str(clients), "-j", str(clients), "-f", str(script),
           "-h", str(params.get("host", "127.0.0.1")), "-U", str(params.get("user", "postgres")),
           str(params["dbname"])]
    if params.get("port"):
        cmd[1:1] = ["-p", str(params["port"])]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("tps"))
    return float(line.split()[2])


def pgbench_cases(conn: psycopg.Connection, dsn: str, seconds: float, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for label, text in SCRIPTS.items():
            script = pathlib.Path(tmp) / "s.sql"
            script.write_text(text)
            for mode, sync_commit, clients in MODES:
                off, on = [], []
                for _ in range(rounds):
                    set_trigger(conn, False)
                    off.append(pgbench(dsn, script, clients, sync_commit, seconds))
                    # every run starts from an empty queue, as after a worker drained it:
                    # a change makes a new pending row, later ones coalesce into it
                    conn.execute("delete from loyverse.loyverse_price_sync_queue where status = 'pending'")
                    conn.execute("vacuum loyverse.loyverse_price_sync_queue")
                    set_trigger(conn, True)
                    on.append(pgbench(dsn, script, clients, sync_commit, seconds))
                a, b = statistics.median(off), statistics.median(on)
                # each round's off/on pair ran back to back: their ratios show the spread
                pairs = sorted(x / y for x, y in zip(off, on, strict=True))
                print(f"{label:<30}{mode:<40}{a:>8.0f} tps{b:>8.0f} tps{a / b:>7.2f}x   "
                      + " ".join(f"{r:.2f}" for r in pairs), flush=True)


def bulk(conn: psycopg.Connection, rounds: int) -> None:
    ids = [r["id"] for r in conn.execute("select id from public.products order by id limit 50")]
    state = {"k": 0}

    def one() -> float:
        state["k"] += 1
        start = time.perf_counter()
        conn.execute("update public.products set price = price + %s", (0.01 if state["k"] % 2 else -0.01,))
        return time.perf_counter() - start

    set_trigger(conn, True)
    for n in range(200):  # single-row statements first: the trigger's plans are made for them
        conn.execute("update public.products set price = price + 0.01 where id = %s", (ids[n % 50],))
    off, drained, coalescing = [], [], []
    for _ in range(rounds):
        set_trigger(conn, False)
        off.append(one())
        # as after a worker drained the queue (like every pgbench run above): 20,000 new rows
        conn.execute("delete from loyverse.loyverse_price_sync_queue where status = 'pending'")
        conn.execute("vacuum loyverse.loyverse_price_sync_queue")
        set_trigger(conn, True)
        drained.append(one())
        # before any worker ran: each change coalesces into its product's pending row
        coalescing.append(one())
    a = statistics.median(off)
    for label, on in (("from a drained queue", drained), ("coalescing into 20,000 pending", coalescing)):
        b = statistics.median(on)
        print(f"{'20,000-row bulk price UPDATE':<30}{label + ' (sync on)':<40}"
              f"{a / 20000 * 1e6:>6.1f} µs/row{b / 20000 * 1e6:>6.1f} µs/row{b / a:>5.2f}x", flush=True)


if __name__ == "__main__":
    main()
