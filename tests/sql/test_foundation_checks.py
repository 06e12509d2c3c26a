"""Every named CHECK of the foundation rejects bad data, naming itself."""

from __future__ import annotations

import psycopg
import pytest

# constraint name -> an UPDATE that violates it (on rows made by the `rows` fixture)
VIOLATIONS = {
    "restaurant_name_is_not_blank": "update public.restaurants set name = '  '",
    "category_name_is_not_blank": "update public.categories set name = ''",
    "product_group_name_is_not_blank": "update public.product_groups set name = ''",
    "product_name_is_not_blank": "update public.products set name = ' '",
    "product_sku_is_not_blank": "update public.products set sku = ''",
    "product_price_is_nonnegative": "update public.products set price = -0.01",
    "modifier_group_name_is_not_blank": "update public.modifier_groups set name = ''",
    "modifier_option_name_is_not_blank": "update public.modifier_options set name = ''",
    "modifier_option_price_is_nonnegative": "update public.modifier_options set price = -1",
    "account_name_is_valid": "update loyverse.loyverse_accounts set name = repeat('x', 101)",
    "currency_code_is_iso4217": "update loyverse.loyverse_accounts set currency_code = 'eur'",
    "decimal_places_is_between_0_and_3": "update loyverse.loyverse_accounts set decimal_places = 4",
    "base_url_is_http": "update loyverse.loyverse_accounts set base_url = 'ftp://x'",
    "api_key_name_is_not_blank": "insert into loyverse.loyverse_api_keys (name, key_hash, is_admin)"
                                 " values (' ', sha256('k'), true)",
    "api_key_hash_is_sha256": "insert into loyverse.loyverse_api_keys (name, key_hash, is_admin)"
                              " values ('k', '\\x00', true)",
    "api_key_is_admin_or_one_restaurant": "insert into loyverse.loyverse_api_keys (name, key_hash, is_admin)"
                                          " values ('k', sha256('k'), false)",
    "auth_kind_is_valid": "update loyverse.loyverse_accounts set auth_kind = 'password'",
    "oauth_token_url_is_http": "update loyverse.loyverse_accounts set auth_kind = 'oauth', oauth_client_id = 'c',"
                               " oauth_ciphertext = '\\x00', oauth_token_url = 'ftp://x'",
    "oauth_fields_match_auth_kind": "update loyverse.loyverse_accounts set auth_kind = 'oauth'",  # no client id, secret
    "rate_limit_requests_is_positive": "update loyverse.loyverse_accounts set rate_limit_requests = 0",
    "rate_limit_window_is_between_1_and_86400_seconds": "update loyverse.loyverse_accounts set rate_limit_window_seconds = 0",
    "rate_limit_safety_is_between_half_and_one": "update loyverse.loyverse_accounts set rate_limit_safety = 1.5",
    "store_id_is_not_blank": "update loyverse.loyverse_restaurant_links set store_id = ''",
    "mapping_direction_is_valid": "update loyverse.loyverse_item_mappings set sync_direction = 'SIDEWAYS'",
    "sync_direction_is_valid": "update loyverse.loyverse_price_sync_settings set sync_direction = 'UP'",
    "sync_frequency_is_valid": "update loyverse.loyverse_price_sync_settings set sync_frequency = 'WEEKLY'",
    "price_rounding_rule_is_valid": "update loyverse.loyverse_price_sync_settings set price_rounding_rule = 'NEAREST_1'",
    "notification_email_is_valid": "update loyverse.loyverse_price_sync_settings set notification_email = 'not-an-email'",
    "max_attempts_is_between_1_and_50": "update loyverse.loyverse_price_sync_settings set max_attempts = 0",
    "priority_is_between_minus_100_and_100": "update loyverse.loyverse_price_sync_settings set priority = 101",
    "alert_failure_rate_is_a_fraction": "update loyverse.loyverse_price_sync_settings set alert_failure_rate = 2",
    "alert_queue_depth_is_positive": "update loyverse.loyverse_price_sync_settings set alert_queue_depth = 0",
    "alert_oldest_pending_seconds_is_positive": "update loyverse.loyverse_price_sync_settings set alert_oldest_pending_seconds = 0",
    "alert_dead_letters_is_positive": "update loyverse.loyverse_price_sync_settings set alert_dead_letters = 0",
    "notify_on_error_needs_an_email": "update loyverse.loyverse_price_sync_settings set notify_on_error = true, notification_email = null",
    "categories_are_not_both_included_and_excluded": "update loyverse.loyverse_price_sync_settings set exclude_category_ids = array['00000000-0000-0000-0000-000000000001'::uuid], include_category_ids = array['00000000-0000-0000-0000-000000000001'::uuid]",
    "queue_status_is_valid": "update loyverse.loyverse_price_sync_queue set status = 'lost'",
    "queue_source_is_valid": "update loyverse.loyverse_price_sync_queue set source = 'magic'",
    "queue_version_is_positive": "update loyverse.loyverse_price_sync_queue set version = 0",
    "queue_new_price_is_nonnegative": "update loyverse.loyverse_price_sync_queue set new_price = -5",
    "queue_price_to_send_is_nonnegative": "update loyverse.loyverse_price_sync_queue set price_to_send = -5",
    "queue_attempts_is_nonnegative": "update loyverse.loyverse_price_sync_queue set attempts = -1",
    "queue_max_attempts_is_positive": "update loyverse.loyverse_price_sync_queue set max_attempts = 0",
    "processing_rows_have_a_lease": "update loyverse.loyverse_price_sync_queue set status = 'processing', lease_until = null",
    "sync_type_is_valid": "update loyverse.loyverse_sync_logs set sync_type = 'SOMETHING'",
    "sync_log_status_is_valid": "update loyverse.loyverse_sync_logs set status = 'DONE'",
    "sync_log_counts_are_nonnegative": "update loyverse.loyverse_sync_logs set items_failed = -1",
    "sync_log_completes_after_it_starts": "update loyverse.loyverse_sync_logs set completed_at = started_at - interval '1 s'",
    "import_run_status_is_valid": "update loyverse.loyverse_import_runs set status = 'DONE'",
    "journal_table_is_known": "update loyverse.loyverse_import_journal set table_name = 'accounts'",
    "journal_action_is_valid": "update loyverse.loyverse_import_journal set action = 'UPSERT'",
    "updates_keep_a_before_image": "update loyverse.loyverse_import_journal set action = 'UPDATE', before_image = null",
    "notification_kind_is_valid": "update loyverse.loyverse_notification_outbox set kind = 'SPAM'",
    "notification_recipient_is_an_email": "update loyverse.loyverse_notification_outbox set recipient = 'nobody'",
    "notification_status_is_valid": "update loyverse.loyverse_notification_outbox set status = 'lost'",
    "applied_how_is_valid": "update loyverse.procrastinate_migrations set applied_how = 'magic'",
}



@pytest.fixture
def conn(rolled_back):
    """This module's cases change nothing that outlives them: one database, each test rolled back."""
    return rolled_back

@pytest.fixture
def rows(conn):
    """One valid row in every table with a CHECK."""
    conn.execute("""
        with r as (insert into public.restaurants (name) values ('Nord') returning id),
             c as (insert into public.categories (restaurant_id, name) select id, 'Drinks' from r returning id, restaurant_id),
             g as (insert into public.product_groups (restaurant_id, category_id, name) select restaurant_id, id, 'Latte' from c returning id, restaurant_id, category_id),
             p as (insert into public.products (restaurant_id, category_id, product_group_id, name, sku, price)
                   select restaurant_id, category_id, id, 'Latte L', 'L-1', 4.50 from g returning id, restaurant_id),
             m as (insert into public.modifier_groups (restaurant_id, name) select id, 'Milk' from r returning id)
        insert into public.modifier_options (modifier_group_id, name, price) select id, 'Oat', 0.5 from m
    """)
    conn.execute("""
        insert into loyverse.loyverse_accounts (name, token_ciphertext, token_key_id) values ('acct', '\\x00', 'k');
        insert into loyverse.loyverse_restaurant_links (restaurant_id, account_id, store_id)
            select r.id, a.id, 'store-1' from public.restaurants r, loyverse.loyverse_accounts a;
        insert into loyverse.loyverse_item_mappings (product_id, restaurant_id, account_id, loyverse_item_id, loyverse_variant_id, loyverse_store_id)
            select p.id, p.restaurant_id, a.id, 'item-1', 'var-1', 'store-1' from public.products p, loyverse.loyverse_accounts a;
        insert into loyverse.loyverse_price_sync_settings (restaurant_id) select id from public.restaurants;
        insert into loyverse.loyverse_price_sync_queue (product_id, restaurant_id, account_id, new_price, price_to_send)
            select p.id, p.restaurant_id, a.id, 4.5, 4.5 from public.products p, loyverse.loyverse_accounts a;
        insert into loyverse.loyverse_sync_logs (sync_type) values ('PRICE_SYNC');
        insert into loyverse.loyverse_import_runs (restaurant_id) select id from public.restaurants;
        insert into loyverse.loyverse_import_journal (run_id, table_name, row_key, action)
            select id, 'products', 'x', 'INSERT' from loyverse.loyverse_import_runs;
        insert into loyverse.loyverse_notification_outbox (recipient, kind, subject, body) values ('a@b.example', 'ALERT', 's', 'b');
    """)


@pytest.mark.parametrize("constraint", sorted(VIOLATIONS))
def test_bad_data_is_rejected_by_the_named_check(conn, rows, constraint):
    with pytest.raises(psycopg.errors.CheckViolation) as info:
        conn.execute(VIOLATIONS[constraint])
    assert info.value.diag.constraint_name == constraint


def test_every_check_of_ours_has_a_test_naming_it(conn):
    """Each named CHECK in our schemas appears in some test module (this one or the
    module of the migration that added it)."""
    import pathlib

    names = {
        r["conname"]
        for r in conn.execute("""
        select conname from pg_constraint c join pg_namespace n on n.oid = c.connamespace
         where c.contype = 'c' and n.nspname in ('loyverse', 'public')
           and c.conrelid::regclass::text not like 'procrastinate%'""")
    }
    tests_text = "\n".join(
        p.read_text() for p in pathlib.Path(__file__).parents[1].rglob("test_*.py")
    )
    untested = sorted(n for n in names if f'"{n}"' not in tests_text and f"'{n}'" not in tests_text)
    assert not untested, f"CHECKs without a test: {untested}"


def test_a_valid_row_passes_every_check(conn, rows):
    assert conn.execute("select count(*) as n from public.products").fetchone()["n"] == 1
