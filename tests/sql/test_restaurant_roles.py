"""The main app's roles read the status and history views of their own restaurants only
(loyverse.readable_restaurants, granted with loyverse.grant_restaurant_to_role); operators read all.
Two real login roles, each connected on its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import conninfo, rows

VIEWS = {
    "price_sync_status": "select restaurant_id as r from loyverse.price_sync_status",
    "price_sync_history": "select unnest(restaurant_ids) as r from loyverse.price_sync_history",
    "import_runs": "select restaurant_id as r from loyverse.import_runs",
    "audit_trail": "select restaurant_id as r from loyverse.audit_trail",
}


@pytest.fixture
def app_roles(conn: psycopg.Connection[Any]) -> Iterator[list[str]]:
    """Two login roles of the main app (members of loyverse_app); roles are cluster-wide: unique names, dropped after."""
    suffix = uuid.uuid4().hex[:8]
    names = [f"lvs_app_a_{suffix}", f"lvs_app_b_{suffix}"]
    for name in names:
        conn.execute(f"create role {name} login in role loyverse_app")
    try:
        yield names
    finally:
        for name in names:
            conn.execute(f"drop role if exists {name}")


def seen_as(dsn: str, role: str) -> dict[str, set[str]]:
    """What each view shows a session logged in as `role`, by restaurant."""
    with psycopg.connect(conninfo.make_conninfo(dsn, user=role), row_factory=rows.dict_row, autocommit=True) as c:
        return {view: {str(r["r"]) for r in c.execute(sql)} for view, sql in VIEWS.items()}


@pytest.fixture
def activity(conn: psycopg.Connection[Any], world: dict[str, Any]) -> list[str]:
    """A manual trigger (history, audit) and a requested import (import_runs) for each restaurant."""
    for rid in world["restaurants"]:
        conn.execute("select loyverse.trigger_price_sync(%s)", (rid,))
        conn.execute("select loyverse.request_menu_import(%s)", (rid,))
    return [str(r) for r in world["restaurants"]]


def test_each_app_role_reads_only_its_restaurants_and_an_operator_reads_all(conn, dsn, app_roles, activity):
    a, b = app_roles
    r0, r1 = activity
    assert conn.execute("select loyverse.grant_restaurant_to_role(%s, %s) as new", (a, r0)).fetchone()["new"] is True
    assert conn.execute("select loyverse.grant_restaurant_to_role(%s, %s) as new", (a, r0)).fetchone()["new"] is False
    conn.execute("select loyverse.grant_restaurant_to_role(%s, %s)", (b, r1))

    assert seen_as(dsn, a) == {view: {r0} for view in VIEWS}  # every view shows a something, and only r0
    assert seen_as(dsn, b) == {view: {r1} for view in VIEWS}
    # the owner (here a superuser) and the operators' roles read every restaurant
    for view, sql in VIEWS.items():
        assert {str(r["r"]) for r in conn.execute(sql)} == {r0, r1}, view
    for operator in ("loyverse_readonly", "loyverse_worker"):
        with conn.transaction(force_rollback=True):
            conn.execute(f"set local role {operator}")
            assert {str(r["r"]) for r in conn.execute(VIEWS["price_sync_status"])} == {r0, r1}
            assert {str(r["r"]) for r in conn.execute(VIEWS["price_sync_history"])} == {r0, r1}
    listed = conn.execute("select role_name, restaurant_name, role_exists from loyverse.restaurant_roles"
                          " order by role_name").fetchall()
    assert [(r["role_name"], r["restaurant_name"], r["role_exists"]) for r in listed] == [(a, "R0", True), (b, "R1", True)]


def test_a_role_granted_nothing_reads_nothing_and_cannot_ask_for_another_roles_restaurants(conn, dsn, app_roles, activity):
    a, b = app_roles
    conn.execute("select loyverse.grant_restaurant_to_role(%s, %s)", (b, activity[1]))
    assert seen_as(dsn, a) == {view: set() for view in VIEWS}
    with psycopg.connect(conninfo.make_conninfo(dsn, user=a), row_factory=rows.dict_row, autocommit=True) as c:
        assert c.execute("select loyverse.readable_restaurants(%s) as ids", (b,)).fetchone()["ids"] == []
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("select loyverse.grant_restaurant_to_role(%s, %s)", (a, activity[1]))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("select * from loyverse.loyverse_restaurant_roles")


def test_a_grant_to_a_group_role_reaches_its_members_and_revoking_takes_it_back(conn, dsn, app_roles, activity):
    a, b = app_roles
    r0, r1 = activity
    conn.execute(f"grant {a} to {b}")  # b is a member of a: it reads a's restaurants too
    conn.execute("select loyverse.grant_restaurant_to_role(%s, %s)", (a, r0))
    conn.execute("select loyverse.grant_restaurant_to_role(%s, %s)", (b, r1))
    assert seen_as(dsn, b)["price_sync_status"] == {r0, r1}
    assert seen_as(dsn, a)["price_sync_status"] == {r0}
    assert conn.execute("select loyverse.revoke_restaurant_from_role(%s) as n", (a,)).fetchone()["n"] == 1
    assert seen_as(dsn, b)["price_sync_status"] == {r1}
    assert seen_as(dsn, a)["price_sync_status"] == set()


@pytest.mark.parametrize(("role", "restaurant", "field", "sqlstate"), [
    ("no_such_role_xyz", 0, "role", "22023"),
    ("loyverse_readonly", 0, "role", "22023"),  # not a member of loyverse_app: the grant would change nothing
    ("app", None, "restaurant", "P0002"),
])
def test_a_bad_grant_names_the_field_and_changes_nothing(conn, app_roles, activity, role, restaurant, field, sqlstate):
    role = app_roles[0] if role == "app" else role
    rid = str(uuid.uuid4()) if restaurant is None else activity[restaurant]
    with pytest.raises(psycopg.Error) as info:
        conn.execute("select loyverse.grant_restaurant_to_role(%s, %s)", (role, rid))
    conn.rollback()
    assert (info.value.sqlstate, info.value.diag.column_name) == (sqlstate, field)
    assert conn.execute("select count(*) as n from loyverse.loyverse_restaurant_roles").fetchone()["n"] == 0
