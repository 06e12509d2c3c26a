"""The database refuses what can never be sent or shown (0061): each hostile value is refused
by a named CHECK (the main app sees a constraint violation naming the column, not an
internal error) and nothing is written."""

from __future__ import annotations

import decimal

import psycopg
import pytest

HUGE = "99999999999"

# constraint -> hostile values for one column, each set by an UPDATE of the `rows` fixture
HOSTILE = {
    "product_price_is_a_number_below_100000000": (
        "update public.products set price = %s", ["NaN", "100000000", "9999999999", "5000000000.5"]),
    "rate_limit_window_is_between_1_and_86400_seconds": (
        "update loyverse.loyverse_accounts set rate_limit_window_seconds = %s",
        ["NaN", "Infinity", "-Infinity", "1e308", "0", "-1", "0.5", "86401"]),
    "rate_limit_requests_is_at_most_100000": (
        "update loyverse.loyverse_accounts set rate_limit_requests = %s", ["100001", "2147483647"]),
    "rate_limit_safety_is_between_half_and_one": (
        "update loyverse.loyverse_accounts set rate_limit_safety = %s", ["NaN", "Infinity", "1e308"]),
    "restaurant_name_is_at_most_200_characters": (
        "update public.restaurants set name = repeat('x', %s::int)", ["201", "1000000"]),
    "merchant_id_is_at_most_200_characters": (
        "update loyverse.loyverse_accounts set merchant_id = repeat('m', %s::int)", ["201"]),
    "business_name_is_at_most_200_characters": (
        "update loyverse.loyverse_accounts set business_name = repeat('b', %s::int)", ["201"]),
    "base_url_is_at_most_2000_characters": (
        "update loyverse.loyverse_accounts set base_url = 'https://' || repeat('u', %s::int)", ["2000"]),
    "notification_email_is_at_most_254_characters": (
        "update loyverse.loyverse_price_sync_settings set notification_email = repeat('a', %s::int) || '@b.example'",
        ["250"]),
    "hold_change_percent_is_between_1_and_100000": (
        "update loyverse.loyverse_price_sync_settings set hold_change_percent = %s", ["NaN", "0", "-5", "100001"]),
    "hold_change_amount_is_between_0_01_and_99999999": (
        "update loyverse.loyverse_price_sync_settings set hold_change_amount = %s", ["NaN", "0", "-1"]),
    "hold_below_price_is_between_0_and_99999999": (
        "update loyverse.loyverse_price_sync_settings set hold_below_price = %s", ["NaN", "-0.01"]),
    "mapping_pricing_type_is_valid": (
        "update loyverse.loyverse_item_mappings set loyverse_pricing_type = %s", ["OPEN", "fixed", ""]),
    "queue_prices_are_numbers": (
        "update loyverse.loyverse_price_sync_queue set new_price = %s", ["NaN"]),
}
CASES = [(c, v) for c, (_, values) in sorted(HOSTILE.items()) for v in values]



@pytest.fixture
def conn(rolled_back):
    """This module's cases change nothing that outlives them: one database, each test rolled back."""
    return rolled_back

@pytest.fixture
def rows(conn):
    conn.execute("""
        insert into public.restaurants (name) values ('Nord');
        insert into public.products (restaurant_id, name, price) select id, 'Latte', 4.50 from public.restaurants;
        insert into loyverse.loyverse_accounts (name, token_ciphertext, token_key_id, merchant_id) values ('acct', '\\x00', 'k', 'm');
        insert into loyverse.loyverse_item_mappings (product_id, restaurant_id, account_id, loyverse_item_id,
                                                     loyverse_variant_id, loyverse_store_id)
            select p.id, p.restaurant_id, a.id, 'item-1', 'var-1', 'store-1' from public.products p, loyverse.loyverse_accounts a;
        insert into loyverse.loyverse_price_sync_settings (restaurant_id) select id from public.restaurants;
        insert into loyverse.loyverse_price_sync_queue (product_id, restaurant_id, account_id, new_price, price_to_send)
            select p.id, p.restaurant_id, a.id, 4.5, 4.5 from public.products p, loyverse.loyverse_accounts a;
    """)


def snapshot(conn):
    return [conn.execute(f"select * from {t} order by 1").fetchall() for t in (
        "public.restaurants", "public.products", "loyverse.loyverse_accounts", "loyverse.loyverse_price_sync_settings",
        "loyverse.loyverse_item_mappings", "loyverse.loyverse_price_sync_queue")]


@pytest.mark.parametrize(("constraint", "value"), CASES)
def test_a_hostile_value_is_refused_by_its_named_check_and_changes_nothing(conn, rows, constraint, value):
    before = snapshot(conn)
    with pytest.raises(psycopg.errors.CheckViolation) as info, conn.transaction():
        conn.execute(HOSTILE[constraint][0], (value,))
    assert info.value.diag.constraint_name == constraint
    assert snapshot(conn) == before


def test_a_product_price_of_nan_or_out_of_range_is_a_constraint_violation_naming_price(conn, rows):
    # what the main app sees: a constraint violation, not a numeric overflow in a trigger
    for value in ("NaN", "999999999.99", "5000000000"):
        with pytest.raises(psycopg.errors.CheckViolation, match="product_price_is_a_number_below_100000000"), \
                conn.transaction():
            conn.execute("update public.products set price = %s", (value,))
    with pytest.raises(psycopg.errors.NumericValueOutOfRange), conn.transaction():  # the column's own limit
        conn.execute("update public.products set price = %s", (HUGE,))


def test_the_largest_prices_and_sane_limits_are_accepted(conn, rows):
    conn.execute("update public.products set price = 99999999.99")
    conn.execute("update loyverse.loyverse_accounts set rate_limit_window_seconds = 1, rate_limit_requests = 100000")
    conn.execute("update loyverse.loyverse_accounts set rate_limit_window_seconds = 86400, rate_limit_requests = 1")
    conn.execute("update loyverse.loyverse_price_sync_settings set hold_change_percent = null,"
                 " hold_change_amount = 0.01, hold_below_price = 0")
    assert conn.execute("select price from public.products").fetchone()["price"] == decimal.Decimal("99999999.99")


def test_a_price_whose_tax_factor_raises_it_past_the_old_queue_column_still_queues(conn, rows):
    # price / price_factor used to overflow numeric(12, 3) inside the trigger, failing the main
    # app's UPDATE; now the row is queued and the worker fails it alone (PRICE_OUT_OF_RANGE)
    conn.execute("insert into loyverse.loyverse_restaurant_links (restaurant_id, account_id, store_id)"
                 " select r.id, a.id, 'store-1' from public.restaurants r, loyverse.loyverse_accounts a")
    conn.execute("update loyverse.loyverse_item_mappings set price_factor = 0.05")
    conn.execute("delete from loyverse.loyverse_price_sync_queue")
    conn.execute("update public.products set price = 99999999.99")
    (row,) = conn.execute("select price_to_send from loyverse.loyverse_price_sync_queue").fetchall()
    assert row["price_to_send"] == decimal.Decimal("1999999999.8")


def test_settings_refuse_hostile_guardrails_naming_the_allowed_values(conn, rows):
    rid = conn.execute("select id from public.restaurants").fetchone()["id"]
    before = snapshot(conn)
    for key, value in (("hold_change_percent", '"NaN"'), ("hold_change_percent", "0"),
                       ("hold_change_amount", "-1"), ("hold_below_price", '"lots"'),
                       ("price_rounding_rule", '"NEAREST_1"'), ("max_attempts", "1e308")):
        with pytest.raises(psycopg.Error) as info, conn.transaction():
            conn.execute("select loyverse.update_price_sync_settings(%s, %s::jsonb)", (rid, f'{{"{key}": {value}}}'))
        message = str(info.value)
        assert message.startswith(f"{key}: ") and "allowed: " in message, message
        assert info.value.diag.column_name == key
    assert snapshot(conn) == before
    # null turns a guardrail off; the documented NONE rounding is accepted
    settings = conn.execute("select loyverse.update_price_sync_settings(%s, %s::jsonb) as s", (
        rid, '{"hold_change_percent": null, "hold_below_price": 1.5, "price_rounding_rule": "NONE"}')).fetchone()["s"]
    assert (settings["hold_change_percent"], settings["hold_below_price"], settings["price_rounding_rule"]) == (
        None, 1.5, "NONE")
