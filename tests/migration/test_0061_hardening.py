"""0061's data migration: VARIABLE mappings (known then only by the import's flag) get the
explicit pricing type, in the table and in the import journal's images."""

from __future__ import annotations

import psycopg

from loyverse_sync import db


def test_the_import_flag_becomes_the_pricing_type_and_undo_images_are_completed(empty_database):
    db.migrate(empty_database)
    db.rollback(empty_database, "2")  # back to the schema before 0061
    with psycopg.connect(empty_database, autocommit=True) as c:
        c.execute("""
            insert into public.restaurants (name) values ('Nord');
            insert into public.products (restaurant_id, name, price) select id, n, 0 from public.restaurants,
                   (values ('Soup of the day'), ('Latte')) v(n);
            insert into loyverse.accounts (name, token_ciphertext, token_key_id) values ('acct', '\\x00', 'k');
            insert into loyverse.loyverse_item_mappings (product_id, restaurant_id, account_id, loyverse_item_id,
                   loyverse_variant_id, loyverse_store_id, needs_attention, attention_reason)
            select p.id, p.restaurant_id, a.id, 'i-' || p.name, 'v-' || p.name, 's',
                   p.name like 'Soup%', case when p.name like 'Soup%' then 'VARIABLE price in Loyverse: imported as 0' end
              from public.products p, loyverse.accounts a;
            insert into loyverse.loyverse_import_runs (restaurant_id) select id from public.restaurants;
            insert into loyverse.loyverse_import_journal (run_id, table_name, row_key, action, before_image)
            select r.id, 'loyverse_item_mappings', m.id::text, 'UPDATE', to_jsonb(m)
              from loyverse.loyverse_import_runs r, loyverse.loyverse_item_mappings m;
        """)
    assert db.migrate(empty_database) == ["0061_hardening"]
    with psycopg.connect(empty_database) as c:
        types = dict(c.execute("select loyverse_variant_id, loyverse_pricing_type from loyverse.loyverse_item_mappings"))
        images = dict(c.execute("select before_image ->> 'loyverse_variant_id', before_image ->> 'loyverse_pricing_type'"
                                " from loyverse.loyverse_import_journal"))
    assert types == images == {"v-Soup of the day": "VARIABLE", "v-Latte": "FIXED"}
