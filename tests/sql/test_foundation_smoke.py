from __future__ import annotations


def test_clone_has_schema(conn):
    assert conn.execute("select count(*) as n from loyverse.loyverse_accounts").fetchone()["n"] == 0
