"""The three roles can do their job and nothing more (checked with SET ROLE)."""

from __future__ import annotations

import psycopg
import pytest


@pytest.fixture
def seeded(conn):
    conn.execute("""
        insert into public.restaurants (name) values ('Nord');
        insert into public.products (restaurant_id, name, sku, price) select id, 'Latte', 'L1', 4.5 from public.restaurants;
        insert into loyverse.loyverse_accounts (name, token_ciphertext, token_key_id) values ('acct', '\\x00', 'k');
    """)


def as_role(conn, role, sql):
    with conn.transaction():
        conn.execute(f"set local role {role}")
        cur = conn.execute(sql)
        return cur.fetchall() if cur.description else None


def test_the_app_can_change_prices_but_cannot_read_accounts_or_tokens(conn, seeded):
    as_role(conn, "loyverse_app", "update public.products set price = price + 1")
    assert conn.execute("select price from public.products").fetchone()["price"] == 5.5
    for sql in (
        "select token_ciphertext from loyverse.loyverse_accounts",
        "select * from loyverse.loyverse_accounts",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            as_role(conn, "loyverse_app", sql)


def test_readonly_reads_views_and_nothing_else(conn, seeded):
    views = [
        r["v"]
        for r in conn.execute(
            "select schemaname || '.' || viewname as v from pg_views where schemaname = 'loyverse'"
        )
    ]
    assert "loyverse.account_overview" in views
    for view in views:
        as_role(conn, "loyverse_readonly", f"select * from {view} limit 1")
    for table in ("loyverse.loyverse_accounts", "loyverse.loyverse_price_sync_queue", "public.products"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            as_role(conn, "loyverse_readonly", f"select * from {table} limit 1")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_role(conn, "loyverse_readonly", "update public.products set price = 1")


def test_no_view_shows_a_token_column(conn):
    cols = conn.execute("""
        select table_name, column_name from information_schema.columns
         where table_schema = 'loyverse' and column_name like '%token_cipher%'
           and table_name in (select viewname from pg_views where schemaname = 'loyverse')""").fetchall()
    assert cols == []


def test_the_worker_does_its_job_but_no_ddl(conn, seeded):
    as_role(conn, "loyverse_worker", "select token_ciphertext from loyverse.loyverse_accounts")
    as_role(
        conn, "loyverse_worker", "select loyverse.rate_governor_take(id, 1) from loyverse.loyverse_accounts"
    )
    as_role(conn, "loyverse_worker", "select count(*) from public.procrastinate_jobs")
    for ddl in (
        "create table loyverse.evil (id int)",
        "drop table loyverse.loyverse_sync_logs",
        "alter table public.products add column evil int",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            as_role(conn, "loyverse_worker", ddl)
