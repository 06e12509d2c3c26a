"""The price-sync SQL API with bad arguments: every error names the problem (message starts with
the field, diagnostics column set where documented) and nothing is written, not even partly."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from loyverse_sync import accounts

UNKNOWN = str(uuid.uuid4())


@pytest.fixture
def world(conn, fernet_key):
    account_id = accounts.add_account(conn, name="a", token="tok-" + "y" * 20, base_url="http://127.0.0.1:9/v1.0")
    rid = accounts.add_restaurant(conn, "Nord")
    accounts.link_restaurant(conn, rid, account_id, "store-1")
    other = accounts.add_restaurant(conn, "Süd")
    accounts.link_restaurant(conn, other, account_id, "store-2")
    unlinked = accounts.add_restaurant(conn, "Solo")
    cat = conn.execute("insert into public.categories (restaurant_id, name) values (%s, 'Other') returning id",
                       (other,)).fetchone()["id"]
    pid = conn.execute("insert into public.products (restaurant_id, name, price) values (%s, 'Tea', 2.5)"
                       " returning id", (rid,)).fetchone()["id"]
    conn.execute("insert into loyverse.loyverse_item_mappings (product_id, restaurant_id, account_id,"
                 " loyverse_item_id, loyverse_variant_id, loyverse_store_id, last_synced_price)"
                 " values (%s, %s, %s, 'i1', 'v1', 'store-1', 2.5)", (pid, rid, account_id))
    conn.execute("update public.products set price = 3 where id = %s", (pid,))  # one pending row
    return {"rid": rid, "other": other, "unlinked": unlinked, "foreign_category": str(cat), "pid": str(pid)}


def state(conn) -> list:
    return [
        conn.execute("select t::text from loyverse.loyverse_price_sync_settings t order by restaurant_id").fetchall(),
        conn.execute("select t::text from loyverse.loyverse_price_sync_queue t order by id").fetchall(),
        conn.execute("select t::text from loyverse.loyverse_sync_logs t order by id").fetchall(),
        conn.execute("select t::text from loyverse.loyverse_item_mappings t order by product_id").fetchall(),
        conn.execute("select t::text from public.products t order by id").fetchall(),
    ]


def bad_calls(w):
    r = w["rid"]

    def settings(changes: str):
        return ("select loyverse.update_price_sync_settings(%s, %s::jsonb)", (r, changes))

    return [
        # (sql, params, the message starts with, diagnostics column or None)
        (*settings('{"max_attempts": 0}'), "max_attempts", "max_attempts"),
        (*settings('{"max_attempts": "many"}'), "max_attempts", "max_attempts"),
        (*settings('{"priority": 101}'), "priority", "priority"),
        (*settings('{"price_rounding_rule": "NEAREST_1"}'), "price_rounding_rule", "price_rounding_rule"),
        (*settings('{"sync_frequency": "WEEKLY"}'), "sync_frequency", "sync_frequency"),
        (*settings('{"sync_direction": "UP"}'), "sync_direction", "sync_direction"),
        (*settings('{"notification_email": "x"}'), "notification_email", "notification_email"),
        (*settings('{"notify_on_error": true}'), "notification_email", "notification_email"),
        (*settings('{"enabled": null}'), "enabled", "enabled"),
        (*settings('{"colour": "red"}'), "colour", "colour"),
        (*settings('{"alert_failure_rate": 2}'), "alert_failure_rate", "alert_failure_rate"),
        # several keys, the last one bad: nothing of the good ones applies either
        (*settings('{"sync_frequency": "MANUAL", "price_rounding_rule": "UP", "max_attempts": 0}'),
         "max_attempts", "max_attempts"),
        (*settings(f'{{"include_category_ids": ["{w["foreign_category"]}"]}}'), "include_category_ids", None),
        (*settings('"REALTIME"'), "settings", "settings"),
        ("select loyverse.update_price_sync_settings(%s, '{}'::jsonb)", (None,), "restaurant", "restaurant"),
        ("select loyverse.update_price_sync_settings(%s, '{}'::jsonb)", (UNKNOWN,), "restaurant", "restaurant"),
        ("select loyverse.price_sync_settings(%s)", (w["unlinked"],), "restaurant", "restaurant"),
        ("select loyverse.trigger_price_sync(%s)", (None,), "restaurant", "restaurant"),
        ("select loyverse.trigger_price_sync(%s)", (UNKNOWN,), "restaurant", "restaurant"),
        ("select loyverse.trigger_price_sync(%s, true)", (w["unlinked"],), "restaurant", "restaurant"),
        ("select loyverse.retry_price_sync(%s, null, 'pending')", (r,), "status", "status"),
        ("select loyverse.retry_price_sync(%s, null, null)", (UNKNOWN,), "restaurant", "restaurant"),
        ("select loyverse.retry_price_sync(%s, %s, null)", (r, UNKNOWN), "product", "product"),
        ("select loyverse.pause_price_sync(%s)", (UNKNOWN,), "restaurant", "restaurant"),
        ("select loyverse.resume_price_sync(%s)", (None,), "restaurant", "restaurant"),
        ("select loyverse.resolve_price_sync_conflicts(%s, 'both')", (r,), "keep", "keep"),
        ("select loyverse.resolve_price_sync_conflicts(%s, null)", (r,), "keep", "keep"),
        ("select loyverse.resolve_price_sync_conflicts(%s, 'ours', %s)", (r, UNKNOWN), "product", "product"),
        ("select loyverse.resolve_price_sync_conflicts(%s, 'ours')", (UNKNOWN,), "restaurant", "restaurant"),
    ]


def test_bad_arguments_name_the_problem_and_write_nothing(conn, world):
    before = state(conn)
    wrong = []
    for sql, params, field, column in bad_calls(world):
        try:
            conn.execute(sql, params)
        except psycopg.Error as exc:
            message = exc.diag.message_primary or ""
            if not message.startswith(field) or (column is not None and exc.diag.column_name != column):
                wrong.append((sql, params, message, exc.diag.column_name))
        else:
            wrong.append((sql, params, "no error", None))
    assert wrong == []
    assert state(conn) == before


def test_trigger_on_a_paused_or_disabled_restaurant_is_refused_without_writes(conn, world):
    rid = world["rid"]
    conn.execute("select loyverse.pause_price_sync(%s)", (rid,))
    before = state(conn)
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match=r"^restaurant: price sync is paused"):
        conn.execute("select loyverse.trigger_price_sync(%s, true)", (rid,))
    assert state(conn) == before
    conn.execute("select loyverse.resume_price_sync(%s)", (rid,))
    conn.execute("select loyverse.update_price_sync_settings(%s, '{\"enabled\": false}')", (rid,))
    before = state(conn)
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="disabled"):
        conn.execute("select loyverse.trigger_price_sync(%s)", (rid,))
    assert state(conn) == before
