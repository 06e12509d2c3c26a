"""A claim never takes a row of an item another claim holds: writes restate the whole item."""

from __future__ import annotations


def seed(conn):
    conn.execute("""
        insert into public.restaurants (name) values ('Nord');
        insert into loyverse.loyverse_accounts (name, token_ciphertext, token_key_id) values ('acct', '\\x00', 'k');
        insert into loyverse.loyverse_restaurant_links (restaurant_id, account_id, store_id)
            select r.id, a.id, 's1' from public.restaurants r, loyverse.loyverse_accounts a;
        insert into loyverse.loyverse_price_sync_settings (restaurant_id) select id from public.restaurants;
        insert into public.products (restaurant_id, name, price)
            select r.id, n, 5 from public.restaurants r, unnest(array['Latte S', 'Latte L', 'Tea']) n;
        insert into loyverse.loyverse_item_mappings (product_id, restaurant_id, account_id, loyverse_item_id,
                                                     loyverse_variant_id, loyverse_store_id)
            select p.id, p.restaurant_id, a.id, case when p.name like 'Latte%' then 'latte' else 'tea' end,
                   'v-' || p.name, 's1'
              from public.products p, loyverse.loyverse_accounts a;
    """)
    return conn.execute("select id from loyverse.loyverse_accounts").fetchone()["id"]


def claim(conn, account_id, token):
    return conn.execute(
        "select product_id, loyverse_item_id from loyverse.claim_price_sync_batch(%s, %s, 250, 60, 2000)",
        (account_id, token),
    ).fetchall()


def test_a_second_claim_skips_an_item_in_flight_and_takes_the_others(conn):
    account_id = seed(conn)
    conn.execute("update public.products set price = 6 where name = 'Latte S'")
    first = claim(conn, account_id, "worker-a:1")
    assert [r["loyverse_item_id"] for r in first] == ["latte"]

    conn.execute("update public.products set price = 7 where name in ('Latte L', 'Tea')")
    second = claim(conn, account_id, "worker-b:1")
    assert [r["loyverse_item_id"] for r in second] == ["tea"]  # Latte L waits for worker-a's write

    pending = conn.execute(
        "select p.name from loyverse.loyverse_price_sync_queue q join public.products p on p.id = q.product_id"
        " where q.status = 'pending'"
    ).fetchall()
    assert [r["name"] for r in pending] == ["Latte L"]
