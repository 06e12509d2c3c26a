"""Loyverse requests per synced price change, counted in the emulator's request log.

(a) chain-wide +5 % on N items x ~2.4 variants x 3 stores of one account (goal <= 0.2),
(b) one isolated change (goal <= 2), (c) a backlog of single-variant changes, one per item
(goal <= 1 + 1/250 per item). Naive baseline: GET + POST per variant and store = 2.0.
Also the mean size of a POST /items body (the write restates the whole item).
Usage: .venv/bin/python bench/price_sync_requests.py [--items 500] [--post-semantics whole]
"""

from __future__ import annotations

import argparse
import json
import os

import _scratch
import rig

from loyverse_emulator import server
from loyverse_sync import db
from loyverse_sync.pricesync import engine


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--post-semantics", choices=("merge", "whole"), default="merge",
                        help="the emulator's reading of an update POST (docs/emulator.md)")
    parser.add_argument("--admin", default=os.environ.get("LOYVERSE_SYNC_BENCH_ADMIN", "host=127.0.0.1 user=postgres dbname=postgres"))
    args = parser.parse_args()

    with _scratch.scratch_database("ps", admin=args.admin) as dsn:
        run(dsn, args.items, args.post_semantics)


def run(dsn: str, n_items: int, post_semantics: str = "merge") -> None:
    config = engine.EngineConfig()
    modes = {} if post_semantics == "merge" else {"post_semantics": post_semantics}
    with server.EmulatorServer(menu=n_items, seed=7, stores=3, time_scale=1000, **modes) as emu, \
            db.connect(dsn, autocommit=True) as conn, db.Connector(dsn, role="worker") as connector:
        # no effective limit, within the accounts' bounds (loyverse_sync/limits.py: at most
        # 100000 requests; the window at least 1 s)
        seed = rig.seed_from_emulator(conn, emu, stores=3, rate_limit_requests=100000,
                                          rate_limit_window_seconds=1.0)
        items = len(set(seed.items.values()))
        variants = len(seed.items)

        def measure(label: str, sql: str, params: tuple = ()) -> None:
            start = len(emu.state.requests_since(0))
            conn.execute(sql, params)
            changes = conn.execute("select count(*) as n from loyverse.loyverse_price_sync_queue"
                                   " where status = 'pending'").fetchone()["n"]
            engine.drain_account(connector, seed.account_id, config=config)
            log = emu.state.requests_since(0)[start:]
            requests = len(log)
            posts = [len(json.dumps(e["body"], separators=(",", ":"))) for e in log if e["method"] == "POST"]
            print(f"{label:<48} changes={changes:>5} requests={requests:>4} "
                  f"per change={requests / max(changes, 1):.3f}   naive=2.000   "
                  f"POST body {sum(posts) / max(len(posts), 1):.0f} B")

        print(f"{items} items, {variants / items:.2f} variants/item, 3 stores, {len(seed.products)} mapped prices,"
              f" post_semantics {post_semantics}")
        measure("(a) chain-wide +5%", "update public.products set price = round(price * 1.05, 2) + 0.01")
        pid = next(iter(seed.products.values()))
        measure("(b) one isolated change", "update public.products set price = price + 1 where id = %s", (pid,))
        one_per_item = list({item: pid for (vid, _), pid in seed.products.items()
                             for item in [seed.items[vid]]}.values())
        measure("(c) backlog: one variant of every item", "update public.products set price = price + 0.5"
                " where id = any(%s::uuid[])", (one_per_item,))


if __name__ == "__main__":
    main()
