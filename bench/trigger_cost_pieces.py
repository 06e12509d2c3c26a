"""Where the price-sync trigger's cost goes, per single-row price UPDATE, step by step.

Same scratch database and workload as bench/trigger_overhead.py (20,000 mapped products, a
committed `todo` job, pgbench updating the price of one random product per transaction,
synchronous_commit=off and 1 client: the CPU the trigger adds, which no fsync hides).
Between pgbench runs the shipped trigger functions are swapped for cut-down copies that stop
one step further each time; every round runs every step, back to back; medians. The
originals (and the queue's constraints) are restored afterwards.

  no trigger        the price-sync triggers disabled
  flag              the row trigger flags the transaction; the statement trigger (with its
                    transition tables) checks the flag and returns
  + changed rows    ... and collects the (id, old price) pairs whose price changed
  + call            ... and calls loyverse.enqueue_price_changes, which returns at once
                    (SECURITY DEFINER, its SET clauses, the trigger-only check)
  + bare upsert     ... which upserts one queue row of constants: no lookups, no wake-up,
                    the queue's CHECK constraints in place
  bare, no constraints  the same with the queue's CHECK (and any foreign key) constraints dropped
  shipped           the shipped functions (lookups of mapping, settings, account, the
                    product's current price; rounding; filters; the wake-up)

Usage: .venv/bin/python bench/trigger_cost_pieces.py [--seconds 3] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import tempfile

import _scratch
import psycopg
import trigger_overhead

from loyverse_sync import db

TRIGGER_FN = "loyverse.tg_products__enqueue_price_sync()"
ENQUEUE_FN = "loyverse.enqueue_price_changes(uuid[],numeric[])"
CALL = "perform loyverse.enqueue_price_changes(v_ids, v_old_prices);"
PAIRS = "    -- The (id, old price) pairs"

# enqueue_price_changes cut down: the same header (SECURITY DEFINER, SET clauses), a body of {body}
ENQUEUE_HEAD = """create or replace function loyverse.enqueue_price_changes(p_product_ids uuid[], p_old_prices numeric[])
returns void language plpgsql security definer
set search_path = '' set plan_cache_mode = force_generic_plan
as $$
begin
    if pg_catalog.pg_trigger_depth() = 0 then
        raise exception 'loyverse.enqueue_price_changes is for the products trigger only';
    end if;
{body}
end;
$$;"""
BARE_UPSERT = """    insert into loyverse.loyverse_price_sync_queue as q
           (product_id, restaurant_id, account_id, priority, old_price, new_price,
            price_to_send, max_attempts, next_attempt_at, loyverse_item_id)
    values (p_product_ids[1], '00000000-0000-0000-0000-000000000001', 1, 0, p_old_prices[1], 1, 1, 8,
            pg_catalog.now(), 'item')
    on conflict (product_id) where status = 'pending' do update
       set new_price = excluded.new_price, version = q.version + 1, updated_at = pg_catalog.now();"""

QUEUE = "loyverse.loyverse_price_sync_queue"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0, help="per pgbench run")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--admin", default=os.environ.get("LOYVERSE_SYNC_BENCH_ADMIN", "host=127.0.0.1 user=postgres dbname=postgres"))
    args = parser.parse_args()
    with _scratch.scratch_database("pieces", admin=args.admin) as dsn, db.connect(dsn, autocommit=True) as conn:
        trigger_overhead.setup(conn)
        run(conn, dsn, args.seconds, args.rounds)


def definition(conn: psycopg.Connection, signature: str) -> str:
    return conn.execute("select pg_get_functiondef(%s::regprocedure) as d", (signature,)).fetchone()["d"]


def steps(conn: psycopg.Connection) -> dict[str, tuple[str, bool]]:
    """name -> (SQL run after restoring the shipped functions, whether the queue keeps its constraints)."""
    trigger, enqueue = definition(conn, TRIGGER_FN), definition(conn, ENQUEUE_FN)
    # the cut-down copies are cut out of the shipped trigger function: fail loudly if it changed shape
    assert CALL in trigger and PAIRS in trigger, "the products trigger function changed: update this script"
    return {
        "no trigger": ("", True),
        "flag": (trigger.replace(PAIRS, "    return null;\n" + PAIRS), True),
        "+ changed rows": (trigger.replace(CALL, "null;"), True),
        "+ call": (ENQUEUE_HEAD.format(body="    return;"), True),
        "+ bare upsert": (ENQUEUE_HEAD.format(body=BARE_UPSERT), True),
        "bare, no constraints": (ENQUEUE_HEAD.format(body=BARE_UPSERT), False),
        "shipped": (enqueue, True),
    }


def run(conn: psycopg.Connection, dsn: str, seconds: float, rounds: int) -> None:
    originals = definition(conn, TRIGGER_FN) + ";\n" + definition(conn, ENQUEUE_FN) + ";"
    constraints = [(r["conname"], r["def"]) for r in conn.execute(
        "select conname, pg_get_constraintdef(oid) as def from pg_constraint"
        " where conrelid = %s::regclass and contype in ('c', 'f') order by conname", (QUEUE,))]
    plan = steps(conn)
    tps: dict[str, list[float]] = {name: [] for name in plan}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            script = pathlib.Path(tmp) / "price.sql"
            script.write_text(trigger_overhead.SCRIPTS["single-row price UPDATE"])
            for _ in range(rounds):
                for name, (sql, keep_constraints) in plan.items():
                    conn.execute(originals)
                    set_constraints(conn, constraints, keep_constraints)
                    trigger_overhead.set_trigger(conn, name != "no trigger")
                    if sql:
                        conn.execute(sql)
                    conn.execute(f"delete from {QUEUE} where status = 'pending'")
                    conn.execute(f"vacuum {QUEUE}")
                    tps[name].append(trigger_overhead.pgbench(dsn, script, 1, "off", seconds))
    finally:
        conn.execute(originals)
        set_constraints(conn, constraints, True)
        trigger_overhead.set_trigger(conn, True)
    base = 1e6 / statistics.median(tps["no trigger"])
    print(f"single-row price UPDATE, CPU-bound (sync_commit=off, 1 client), {rounds} rounds of {seconds:g} s, medians")
    print(f"{'step':<24}{'tps':>8}{'us/statement':>14}{'added':>10}{'ratio':>8}")
    for name, values in tps.items():
        us = 1e6 / statistics.median(values)
        print(f"{name:<24}{statistics.median(values):>8.0f}{us:>14.1f}{us - base:>+10.1f}{us / base:>7.2f}x", flush=True)


def set_constraints(conn: psycopg.Connection, constraints: list[tuple[str, str]], present: bool) -> None:
    have = {r["conname"] for r in conn.execute(
        "select conname from pg_constraint where conrelid = %s::regclass and contype in ('c', 'f')", (QUEUE,))}
    for name, definition_sql in constraints:
        if present and name not in have:
            conn.execute(f"alter table {QUEUE} add constraint {name} {definition_sql}")
        elif not present and name in have:
            conn.execute(f"alter table {QUEUE} drop constraint {name}")


if __name__ == "__main__":
    main()
