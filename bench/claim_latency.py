"""Claiming 100 rows with 1,000,000 done rows in the queue (goal < 5 ms; partial indexes).

Usage: .venv/bin/python bench/claim_latency.py [--done 1000000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import _scratch

from loyverse_sync import accounts, db


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--done", type=int, default=1_000_000)
    parser.add_argument("--admin", default=os.environ.get("LOYVERSE_SYNC_BENCH_ADMIN", "host=127.0.0.1 user=postgres dbname=postgres"))
    args = parser.parse_args()
    with _scratch.scratch_database("claim", admin=args.admin) as dsn:  # noqa: SIM117
        with db.connect(dsn, autocommit=True) as conn:
            account = accounts.add_account(conn, name="a", token="t", base_url="http://127.0.0.1:9/v1.0")
            rid = accounts.add_restaurant(conn, "R")
            accounts.link_restaurant(conn, rid, account, "s1")
            conn.execute("insert into public.products (restaurant_id, name, price)"
                         " select %s, 'p' || g, 10 from generate_series(1, 20000) g", (rid,))
            conn.execute("insert into loyverse.loyverse_item_mappings (product_id, restaurant_id, account_id,"
                         " loyverse_item_id, loyverse_variant_id, loyverse_store_id)"
                         " select id, restaurant_id, %s, 'i' || id, 'v' || id, 's1' from public.products", (account,))
            conn.execute("insert into loyverse.loyverse_price_sync_queue (product_id, restaurant_id, account_id,"
                         " status, new_price, price_to_send, completed_at)"
                         " select (ids.a)[1 + g %% 20000], %s::uuid, %s, 'done', 10, 10, now() - interval '1 hour'"
                         " from generate_series(1, %s) g,"
                         " (select array_agg(id) as a from public.products) ids", (rid, account, args.done))
            conn.execute("update public.products set price = 12")  # 20,000 pending rows
            conn.execute("vacuum analyze")
            times = []
            for n in range(30):
                start = time.perf_counter()
                rows = conn.execute("select * from loyverse.claim_price_sync_batch(%s, %s, 100)",
                                    (account, f"bench:{n}")).fetchall()
                times.append((time.perf_counter() - start) * 1000)
                assert len(rows) == 100
            print(f"claim 100 rows (100 items), {args.done:,} done rows + 20,000 pending: "
                  f"median {statistics.median(times):.2f} ms, max {max(times):.2f} ms")


if __name__ == "__main__":
    main()
