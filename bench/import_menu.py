"""Benchmark of the menu import: a generated menu from the emulator (default 10,000 items,
~19,000 live variants), fetch phase (requests, seconds) reported apart from the DB phase; the
DB phase against, all measured in the same run on the same rows:
  (a) a row-by-row baseline: one prepared INSERT per row, one transaction;
  (b) a naive row-by-row baseline: one INSERT per row, each its own transaction (autocommit);
  (c) the write floor: the same rows written set-based (one INSERT ... SELECT per table, one
      transaction, same foreign keys), with no plan, validation, journal or report;
a re-import of the unchanged menu (rows written, proved with xmin); and a menu-size curve.

    .venv/bin/python bench/import_menu.py [--items 10000] [--curve 100,1000,10000]

Uses a scratch database `lvs_bench_import` on the local server (dropped at the end).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
import uuid
from typing import Any

import psycopg
import rig
from psycopg import rows

from loyverse_emulator import server
from loyverse_sync import accounts, config, crypto, db
from loyverse_sync.importer import runs, snapshot

TABLES = ["public.products", "public.categories", "public.product_groups", "loyverse.loyverse_item_mappings"]


def _versions(conn: psycopg.Connection[Any], restaurant_id: str) -> dict[str, set[tuple[str, str]]]:
    return {t: {(r["id"], r["xmin"]) for r in conn.execute(
        f"select id::text as id, xmin::text as xmin from {t} where restaurant_id = %s", (restaurant_id,))}
        for t in TABLES}


def _import(dsn: str, conn: psycopg.Connection[Any], emu: server.EmulatorServer, name: str) -> dict[str, Any]:
    restaurant_id, _account, _store = rig.link_emulator(conn, emu, restaurant=name, account=name)
    with db.Connector(dsn) as connector:
        t0 = time.perf_counter()
        snap = snapshot.fetch(connector, restaurant_id)
        fetch_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = runs.run(connector, restaurant_id, snap.id, runs.Options())
        db_s = time.perf_counter() - t0
    return {"restaurant_id": restaurant_id, "snapshot": snap, "fetch_s": fetch_s, "db_s": db_s, "result": result}


def _source(conn: psycopg.Connection[Any], run_id: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows the set-based run created, from its plan: objects, and the 'create' variants."""
    objs = conn.execute("select kind, loyverse_id, parent_loyverse_id, name, price, position, description,"
                        " option1_name, option2_name, option3_name from loyverse.loyverse_import_plan_objects"
                        " where run_id = %s order by kind, loyverse_id", (run_id,)).fetchall()
    plan = conn.execute("select * from loyverse.loyverse_import_plan where run_id = %s and decision = 'create'"
                        " order by row_no", (run_id,)).fetchall()
    return objs, plan


def _row_by_row(conn: psycopg.Connection[Any], objs: list[dict[str, Any]], plan: list[dict[str, Any]],
                restaurant_id: str, account_id: int, store: str, *, per_row_commit: bool = False) -> tuple[float, dict[str, int]]:
    """The baseline: one INSERT per row (prepared by psycopg after 5 uses, one round trip
    each) of every catalogue row the set-based run created: categories, product groups,
    modifier groups and options, products, their modifier links and item mappings, into the
    same tables for another restaurant. (No plan, journal or report: those are the set-based
    import's extra work.) Committed as one transaction, or (`per_row_commit`, `conn` in
    autocommit) each INSERT its own transaction, as a naive script runs."""
    n: dict[str, int] = {}

    def ins(table: str, sql: str, params: tuple[Any, ...]) -> Any:
        n[table] = n.get(table, 0) + 1
        return conn.execute(sql, params).fetchone()

    t0 = time.perf_counter()
    with contextlib.nullcontext() if per_row_commit else conn.transaction():
        conn.execute("select set_config('loyverse_sync.origin', 'loyverse', %s)", (not per_row_commit,))
        ids: dict[tuple[str, str], Any] = {}
        for o in objs:
            if o["kind"] == "category":
                ids["category", o["loyverse_id"]] = ins("categories",
                    "insert into public.categories (restaurant_id, name) values (%s, %s) returning id",
                    (restaurant_id, o["name"]))["id"]
            elif o["kind"] == "modifier":
                ids["modifier", o["loyverse_id"]] = ins("modifier_groups",
                    "insert into public.modifier_groups (restaurant_id, name, position) values (%s, %s, %s) returning id",
                    (restaurant_id, o["name"], o["position"] or 0))["id"]
        item_cat = {p["item_id"]: ids.get(("category", p["category_ref"])) for p in plan}
        for o in objs:
            if o["kind"] == "modifier_option":
                ins("modifier_options", "insert into public.modifier_options (modifier_group_id, name, price, position)"
                    " values (%s, %s, %s, %s) returning id",
                    (ids["modifier", o["parent_loyverse_id"]], o["name"], o["price"] or 0, o["position"] or 0))
            elif o["kind"] == "item":
                ids["item", o["loyverse_id"]] = ins("product_groups",
                    "insert into public.product_groups (restaurant_id, category_id, name, description, option1_name,"
                    " option2_name, option3_name) values (%s, %s, %s, %s, %s, %s, %s) returning id",
                    (restaurant_id, item_cat.get(o["loyverse_id"]), o["name"], o["description"], o["option1_name"],
                     o["option2_name"], o["option3_name"]))["id"]
        for p in plan:
            pid = ins("products",
                "insert into public.products (restaurant_id, category_id, product_group_id, name, sku, price, is_active,"
                " option1_value, option2_value, option3_value) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) returning id",
                (restaurant_id, ids.get(("category", p["category_ref"])), ids.get(("item", p["item_id"])), p["name"],
                 p["sku"], p["price"], p["is_active"], p["option1_value"], p["option2_value"], p["option3_value"]))["id"]
            for mid in p["modifier_ids"]:
                if ("modifier", mid) in ids:
                    ins("product_modifier_groups", "insert into public.product_modifier_groups (product_id, modifier_group_id)"
                        " values (%s, %s) returning product_id", (pid, ids["modifier", mid]))
            ins("loyverse_item_mappings",
                "insert into loyverse.loyverse_item_mappings (product_id, restaurant_id, account_id, loyverse_item_id,"
                " loyverse_variant_id, loyverse_store_id, last_synced_price, price_factor)"
                " values (%s, %s, %s, %s, %s, %s, %s, %s) returning id",
                (pid, restaurant_id, account_id, p["item_id"], p["variant_id"], store, p["loyverse_price"], p["price_factor"]))
    return time.perf_counter() - t0, n


FLOOR_SQL = [
    # every object gets a new id (kept in a temp table for the foreign keys of the rows below)
    ("", """create temp table _floor_obj on commit drop as
            select kind, loyverse_id, parent_loyverse_id, gen_random_uuid() as id, name, price, position, description,
                   option1_name, option2_name, option3_name
              from loyverse.loyverse_import_plan_objects where run_id = %(run)s"""),
    ("", """create temp table _floor_plan on commit drop as
            select p.*, gen_random_uuid() as new_id from loyverse.loyverse_import_plan p
             where p.run_id = %(run)s and p.decision = 'create'"""),
    ("categories", """insert into public.categories (id, restaurant_id, name)
            select id, %(rid)s, name from _floor_obj where kind = 'category'"""),
    ("modifier_groups", """insert into public.modifier_groups (id, restaurant_id, name, position)
            select id, %(rid)s, name, coalesce(position, 0) from _floor_obj where kind = 'modifier'"""),
    ("modifier_options", """insert into public.modifier_options (modifier_group_id, name, price, position)
            select g.id, o.name, coalesce(o.price, 0), coalesce(o.position, 0)
              from _floor_obj o join _floor_obj g on g.kind = 'modifier' and g.loyverse_id = o.parent_loyverse_id
             where o.kind = 'modifier_option'"""),
    ("product_groups", """insert into public.product_groups (id, restaurant_id, category_id, name, description,
                                                option1_name, option2_name, option3_name)
            select o.id, %(rid)s, c.id, o.name, o.description, o.option1_name, o.option2_name, o.option3_name
              from _floor_obj o
              left join (select distinct on (item_id) item_id, category_ref from _floor_plan order by item_id, row_no) ic
                     on ic.item_id = o.loyverse_id
              left join _floor_obj c on c.kind = 'category' and c.loyverse_id = ic.category_ref
             where o.kind = 'item'"""),
    ("products", """insert into public.products (id, restaurant_id, category_id, product_group_id, name, sku, price,
                                          is_active, option1_value, option2_value, option3_value)
            select p.new_id, %(rid)s, c.id, g.id, p.name, p.sku, p.price, p.is_active,
                   p.option1_value, p.option2_value, p.option3_value
              from _floor_plan p
              left join _floor_obj c on c.kind = 'category' and c.loyverse_id = p.category_ref
              left join _floor_obj g on g.kind = 'item' and g.loyverse_id = p.item_id"""),
    ("product_modifier_groups", """insert into public.product_modifier_groups (product_id, modifier_group_id)
            select p.new_id, g.id from _floor_plan p cross join unnest(p.modifier_ids) mid
              join _floor_obj g on g.kind = 'modifier' and g.loyverse_id = mid"""),
    ("loyverse_item_mappings", """insert into loyverse.loyverse_item_mappings (product_id, restaurant_id, account_id,
                 loyverse_item_id, loyverse_variant_id, loyverse_store_id, last_synced_price, price_factor)
            select p.new_id, %(rid)s, %(account)s, p.item_id, p.variant_id, %(store)s, p.loyverse_price, p.price_factor
              from _floor_plan p"""),
]


def _write_floor(conn: psycopg.Connection[Any], run_id: int, restaurant_id: str, account_id: int, store: str) -> tuple[float, dict[str, int]]:
    """The write floor: the rows the baselines write, set-based (one INSERT ... SELECT per
    table, one transaction, the same foreign keys and indexes), with no plan, validation,
    conflict detection, journal or report: what any import of these rows must pay."""
    n: dict[str, int] = {}
    params = {"run": run_id, "rid": restaurant_id, "account": account_id, "store": store}
    t0 = time.perf_counter()
    with conn.transaction():
        conn.execute("select set_config('loyverse_sync.origin', 'loyverse', true)")
        for table, sql in FLOOR_SQL:
            cur = conn.execute(sql, params)
            if table:
                n[table] = cur.rowcount
    return time.perf_counter() - t0, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=10000)
    ap.add_argument("--curve", default="100,1000,10000")
    args = ap.parse_args()
    os.environ.setdefault("LOYVERSE_SYNC_HOME", tempfile.mkdtemp())
    os.environ["LOYVERSE_SYNC_KEY"] = crypto.new_key().decode()
    admin = os.environ.get("LOYVERSE_SYNC_BENCH_ADMIN") or (config.local_server("postgres") or config.embedded_server("postgres")).conninfo
    name = "lvs_bench_import"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f"drop database if exists {name} with (force)")
        c.execute(f"create database {name}")
    dsn = psycopg.conninfo.make_conninfo(admin, dbname=name)
    try:
        db.migrate(dsn)
        with psycopg.connect(dsn, autocommit=True, row_factory=rows.dict_row) as conn:
            with server.EmulatorServer(menu=args.items, token="tok", merchants=1, seed=7) as emu:
                first = _import(dsn, conn, emu, "Bench")
                r = first["result"]
                variants = len(emu.state.items(include_deleted=True))
                print(f"menu: {variants} items, {r['created']} live variants imported, status {r['status']}")
                print(f"fetch phase: {first['snapshot'].requests_made} requests, {first['fetch_s']:.2f} s")
                print(f"DB phase (plan + write + finish, set-based): {first['db_s']:.2f} s")
                before = _versions(conn, first["restaurant_id"])
                t0 = time.perf_counter()
                with db.Connector(dsn) as connector:
                    again = runs.run(connector, first["restaurant_id"], first["snapshot"].id, runs.Options())
                re_s = time.perf_counter() - t0
                after = _versions(conn, first["restaurant_id"])
                changed = sum(len(after[t] - before[t]) for t in TABLES)
                print(f"re-import of the unchanged menu: {re_s:.2f} s, created {again['created']}, "
                      f"updated {again['updated']}, row versions changed (xmin): {changed}")
                link = conn.execute("select account_id, store_id from loyverse.loyverse_restaurant_links"
                                    " where restaurant_id = %s", (first["restaurant_id"],)).fetchone()
                baseline_rid = accounts.add_restaurant(conn, f"Baseline {uuid.uuid4().hex[:6]}")
                objs, plan = _source(conn, r["run_id"])
                db_s = first["db_s"]
                base_s, base_rows = _row_by_row(conn, objs, plan, baseline_rid, link["account_id"], link["store_id"])
                print(f"(a) row-by-row baseline, one transaction: {sum(base_rows.values())} INSERTs in {base_s:.2f} s "
                      f"({', '.join(f'{t} {k}' for t, k in base_rows.items())}); "
                      f"set-based DB phase is {base_s / db_s:.1f}x faster")
                naive_rid = accounts.add_restaurant(conn, f"Naive {uuid.uuid4().hex[:6]}")
                with psycopg.connect(dsn, autocommit=True, row_factory=rows.dict_row) as naive_conn:
                    naive_s, naive_rows = _row_by_row(naive_conn, objs, plan, naive_rid, link["account_id"],
                                                      link["store_id"], per_row_commit=True)
                print(f"(b) row-by-row baseline, one transaction per INSERT (autocommit): {sum(naive_rows.values())} "
                      f"INSERTs in {naive_s:.2f} s; set-based DB phase is {naive_s / db_s:.1f}x faster")
                floor_rid = accounts.add_restaurant(conn, f"Floor {uuid.uuid4().hex[:6]}")
                floor_s, floor_rows = _write_floor(conn, r["run_id"], floor_rid, link["account_id"], link["store_id"])
                assert floor_rows == base_rows == naive_rows, (floor_rows, base_rows, naive_rows)
                print(f"(c) write floor (same rows, one INSERT ... SELECT per table, same FKs, no plan/journal): "
                      f"{floor_s:.2f} s = {100 * floor_s / db_s:.0f} % of the DB phase; "
                      f"baseline (a) is {base_s / floor_s:.1f}x the floor, (b) {naive_s / floor_s:.1f}x")
            print("menu-size curve (DB phase):")
            for n in [int(x) for x in args.curve.split(",") if x]:
                with server.EmulatorServer(menu=n, token="tok", merchants=1, seed=7) as emu:
                    out = _import(dsn, conn, emu, f"Curve {n} {uuid.uuid4().hex[:4]}")
                    v = out["result"]["created"]
                    print(f"  {n:>6} items / {v:>6} variants: DB {out['db_s']:.2f} s "
                          f"({1000 * out['db_s'] / max(v, 1):.3f} ms/variant), fetch {out['fetch_s']:.2f} s")
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f"drop database if exists {name} with (force)")


if __name__ == "__main__":
    main()
