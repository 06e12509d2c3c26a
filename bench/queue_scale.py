"""Queue size: claim latency and trigger cost with 10k, 100k and 1M historical (done) rows,
then with a backlog of 100k pending rows. Should stay flat.

claim = `claim_price_sync_batch(account, 100 items)` with 1,000 due rows (median of 20, each
claim released again); trigger = a single-row `UPDATE products SET price` on a mapped product
(median of 300, autocommit) and a 1,000-row bulk UPDATE (median of 5).

Usage: .venv/bin/python bench/queue_scale.py [--sizes 10000,100000,1000000] [--backlog 100000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import _scratch

from loyverse_sync import accounts, db

PRODUCTS = 120_000


def claim_ms(conn, account: int, n: int = 20) -> float:
    times = []
    for k in range(n):
        start = time.perf_counter()
        rows = conn.execute("select id from loyverse.claim_price_sync_batch(%s, %s, 100)",
                            (account, f"bench:{k}")).fetchall()
        times.append((time.perf_counter() - start) * 1000)
        assert rows, "nothing claimed"
        conn.execute("update loyverse.loyverse_price_sync_queue set status = 'pending', claimed_by = null,"
                     " lease_until = null where status = 'processing'")
    return statistics.median(times)


def trigger_us(conn, ids: list, n: int = 300) -> tuple[float, float]:
    single = []
    for k in range(n):
        start = time.perf_counter()
        conn.execute("update public.products set price = price + 0.01 where id = %s", (ids[k % len(ids)],))
        single.append((time.perf_counter() - start) * 1e6)
    bulk = []
    for k in range(5):
        chunk = ids[k * 1000:(k + 1) * 1000]
        start = time.perf_counter()
        conn.execute("update public.products set price = price + 0.01 where id = any(%s::uuid[])", (chunk,))
        bulk.append((time.perf_counter() - start) * 1e3)
    return statistics.median(single), statistics.median(bulk)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--backlog", type=int, default=100_000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with _scratch.scratch_database("queue") as dsn, db.connect(dsn, autocommit=True) as conn:
        account = accounts.add_account(conn, name="a", token="t" * 20, base_url="http://127.0.0.1:9/v1.0")
        rid = accounts.add_restaurant(conn, "R")
        accounts.link_restaurant(conn, rid, account, "s1")
        # MANUAL: the trigger queues but defers no procrastinate job (no worker here)
        conn.execute("select loyverse.update_price_sync_settings(%s, '{\"sync_frequency\": \"MANUAL\"}')", (rid,))
        conn.execute("insert into public.products (restaurant_id, name, price)"
                     " select %s, 'p' || g, 10 from generate_series(1, %s) g", (rid, PRODUCTS))
        conn.execute("insert into loyverse.loyverse_item_mappings (product_id, restaurant_id, account_id,"
                     " loyverse_item_id, loyverse_variant_id, loyverse_store_id)"
                     " select id, restaurant_id, %s, 'i' || id, 'v' || id, 's1' from public.products", (account,))
        ids = [r["id"] for r in conn.execute("select id from public.products order by id").fetchall()]
        hot, due, rest = ids[:5000], ids[5000:6000], ids[6000:]
        print("| historical rows | pending rows | claim 100 items, ms | single-row UPDATE, µs | 1,000-row UPDATE, ms |")
        print("|---|---|---|---|---|")
        have = 0
        for size in sizes:
            conn.execute("insert into loyverse.loyverse_price_sync_queue (product_id, restaurant_id, account_id,"
                         " status, new_price, price_to_send, completed_at)"
                         " select (%s::uuid[])[1 + g %% %s], %s::uuid, %s, 'done', 10, 10, now() - interval '1 hour'"
                         " from generate_series(1, %s) g", (rest, len(rest), rid, account, size - have))
            have = size
            conn.execute("vacuum analyze loyverse.loyverse_price_sync_queue")
            conn.execute("delete from loyverse.loyverse_price_sync_queue where status in ('pending', 'processing')")
            conn.execute("update public.products set price = price + 1 where id = any(%s::uuid[])", (due,))
            conn.execute("select loyverse.trigger_price_sync(%s)", (rid,))
            c = claim_ms(conn, account)
            s, b = trigger_us(conn, hot)
            print(f"| {size:,} | 1,000 | {c:.2f} | {s:.0f} | {b:.1f} |", flush=True)
        backlog = rest[:args.backlog]
        conn.execute("update public.products set price = price + 1 where id = any(%s::uuid[])", (backlog,))
        conn.execute("select loyverse.trigger_price_sync(%s)", (rid,))
        conn.execute("vacuum analyze loyverse.loyverse_price_sync_queue")
        pending = conn.execute("select count(*) as n from loyverse.loyverse_price_sync_queue"
                               " where status = 'pending'").fetchone()["n"]
        c = claim_ms(conn, account)
        s, b = trigger_us(conn, hot)
        print(f"| {have:,} | {pending:,} | {c:.2f} | {s:.0f} | {b:.1f} |")


if __name__ == "__main__":
    main()
