"""The privilege matrix of docs/dba.md is the database's: every function, view and table, for
each role, allowed or refused as documented, checked in the catalogue AND by trying it.
Plus issue #18's reproduction 3: queue rows spoofed from a trigger on a temp table."""

from __future__ import annotations

import pathlib
import re

import psycopg
import pytest

DOC = pathlib.Path(__file__).parents[2] / "docs" / "dba.md"
ROLES = ("loyverse_app", "loyverse_worker", "loyverse_readonly", "PUBLIC")
NOBODY = "lvs_nobody_0061"  # stands for PUBLIC: a role with no grant of ours (made in a rolled-back transaction)


def documented() -> dict[str, dict[str, str]]:
    text = DOC.read_text(encoding="utf-8")
    block = text.split("<!-- privilege-matrix:start -->", 1)[1].split("<!-- privilege-matrix:end -->", 1)[0]
    rows = [line for line in block.splitlines() if line.startswith("| `")]
    out = {}
    for line in rows:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = cells[0].strip("`")
        assert len(cells) == 1 + len(ROLES), f"docs/dba.md matrix row has the wrong number of cells: {line}"
        assert name not in out, f"docs/dba.md lists {name} twice"
        out[name] = dict(zip(ROLES, cells[1:], strict=True))
    assert len(out) > 50, "the matrix in docs/dba.md was not found or is nearly empty"
    return out


OBJECTS = """
select 'function' as kind, p.prokind, p.oid::regprocedure::text as name, p.oid,
       pg_get_function_identity_arguments(p.oid) as args, p.oid::regproc::text as fn,
       (select array_agg(format_type(t, null) order by i)
          from unnest(p.proargtypes::oid[]) with ordinality a(t, i)) as types
  from pg_proc p join pg_namespace n on n.oid = p.pronamespace
 where n.nspname = 'loyverse'
union all
select case c.relkind when 'v' then 'view' else 'table' end, null, n.nspname || '.' || c.relname, c.oid,
       null, null, null
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
 where c.relkind in ('r', 'v', 'p', 'm')
   and (n.nspname = 'loyverse'
        or (n.nspname = 'public' and c.relname not like 'procrastinate%' and c.relname not like '%yoyo%'))
"""


def actual(conn, obj, role: str) -> str:
    who = "public" if role == "PUBLIC" else role
    if obj["kind"] == "function":
        ok = conn.execute("select has_function_privilege(%s, %s::oid, 'EXECUTE') as ok",
                          (who, obj["oid"])).fetchone()["ok"]
        return "X" if ok else "-"
    letters = "".join(
        letter for letter, priv in (("r", "SELECT"), ("a", "INSERT"), ("w", "UPDATE"), ("d", "DELETE"))
        if conn.execute("select has_table_privilege(%s, %s::oid, %s) as ok", (who, obj["oid"], priv)).fetchone()["ok"]
    )
    return letters or "-"


def test_the_documented_matrix_is_the_catalogues(conn):
    doc = documented()
    objects = conn.execute(OBJECTS).fetchall()
    names = {o["name"] for o in objects}
    assert sorted(names - set(doc)) == [], "objects missing from the matrix in docs/dba.md"
    assert sorted(set(doc) - names) == [], "the matrix in docs/dba.md lists objects that do not exist"
    wrong = [(o["name"], role, doc[o["name"]][role], actual(conn, o, role))
             for o in objects for role in ROLES if doc[o["name"]][role] != actual(conn, o, role)]
    assert wrong == [], "(object, role, documented, actual)"


def test_no_function_of_ours_is_executable_by_public_now_or_when_created_later(conn):
    public = conn.execute("""
        select p.oid::regprocedure::text as f from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where n.nspname = 'loyverse' and has_function_privilege('public', p.oid, 'EXECUTE')""").fetchall()
    assert public == []
    with conn.transaction():
        conn.execute("create function loyverse.brand_new_0061() returns int language sql as 'select 1'")
        assert not conn.execute("select has_function_privilege('public', 'loyverse.brand_new_0061()', 'EXECUTE')"
                                " as ok").fetchone()["ok"]
        raise psycopg.Rollback()


def _call(obj) -> str:
    args = ", ".join(f"null::{t}" for t in (obj["types"] or []))
    if obj["prokind"] == "a":
        return f"select {obj['fn']}(x) from (select null::{obj['types'][0]}) t(x)"
    return f"select {obj['fn']}({args})"


def _refused(conn, sql: str, kind: str) -> bool:
    try:
        with conn.transaction():
            conn.execute(sql)
    except psycopg.errors.InsufficientPrivilege as exc:
        text = str(exc)
        # refused for THIS object (a function allowed may itself be refused something inside)
        return (kind == "function" and re.search(r"permission denied for (function|aggregate)", text) is not None
                and "CONTEXT" not in text and exc.diag.context is None) or (
            kind != "function" and re.search(r"permission denied for (table|view|relation)", text) is not None)
    except psycopg.Error:
        return False
    return False


def test_every_function_view_and_table_is_tried_as_each_role(conn):
    """Call every function with null arguments and read every view and table, as each role:
    refused exactly where the matrix says so (a trigger function is refused to everyone)."""
    doc = documented()
    objects = conn.execute(OBJECTS).fetchall()
    mismatches = []
    with conn.transaction():
        conn.execute(f"create role {NOBODY}")
        for role in ROLES:
            as_role = NOBODY if role == "PUBLIC" else role
            for obj in objects:
                allowed = doc[obj["name"]][role]
                sql = _call(obj) if obj["kind"] == "function" else f"select 1 from {obj['name']} limit 0"
                with conn.transaction():
                    conn.execute(f"set local role {as_role}")
                    conn.execute("set local statement_timeout = '5s'")
                    refused = _refused(conn, sql, obj["kind"])
                expected_refused = "X" not in allowed and "r" not in allowed
                if refused != expected_refused:
                    mismatches.append((obj["name"], role, allowed, "refused" if refused else "allowed"))
        raise psycopg.Rollback()
    assert mismatches == [], "(object, role, documented, tried)"


# ---- issue #18, reproduction 3: a queue row spoofed from a trigger on a temp table ----

SPOOF = """
create temp table t (id uuid, price numeric);
create function pg_temp.spoof() returns trigger language plpgsql as $$
begin
    perform loyverse.enqueue_price_changes(array[new.id], array[0.01]);
    return null;
end $$;
create trigger spoof after insert on pg_temp.t for each row execute function pg_temp.spoof();
"""


@pytest.mark.parametrize("role", ["loyverse_readonly", "loyverse_app", "loyverse_worker"])
def test_no_role_can_queue_a_spoofed_row_from_its_own_trigger(conn, world, role):
    pid = world["products"][0]
    with conn.transaction():
        conn.execute(f"set local role {role}")
        conn.execute(SPOOF)
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info, conn.transaction():
            conn.execute("insert into pg_temp.t values (%s, 99)", (pid,))
        conn.execute("reset role")
        raise psycopg.Rollback()
    expected = ("permission denied for function enqueue_price_changes" if role == "loyverse_readonly"
                else "is for the products trigger only")
    assert expected in str(info.value)
    assert conn.execute("select count(*) as n from loyverse.loyverse_price_sync_queue").fetchone()["n"] == 0


@pytest.mark.parametrize("role", ["loyverse_readonly", "loyverse_app", "loyverse_worker"])
def test_no_role_can_attach_the_products_trigger_function_to_its_own_table(conn, world, role):
    with conn.transaction():
        conn.execute(f"set local role {role}")
        conn.execute("create temp table t (id uuid, price numeric)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute("create trigger x after update on pg_temp.t referencing old table as old_rows"
                         " new table as new_rows for each statement"
                         " execute function loyverse.tg_products__enqueue_price_sync()")
        raise psycopg.Rollback()


def test_a_real_price_change_by_the_app_still_queues(conn, world):
    pid = world["products"][0]
    with conn.transaction():
        conn.execute("set local role loyverse_app")
        conn.execute("update public.products set price = 12.5 where id = %s", (pid,))
    rows = conn.execute("select product_id, old_price, new_price from loyverse.loyverse_price_sync_queue").fetchall()
    assert [(r["product_id"], r["old_price"], r["new_price"]) for r in rows] == [(pid, 10, 12.5)]


@pytest.mark.parametrize("search_path", ["loyverse, public", "public, loyverse", "pg_temp, loyverse, public"])
def test_the_caller_check_never_refuses_a_real_price_change_whatever_the_search_path(dsn, world, search_path):
    # PL/pgSQL prints the trigger function's name as compiled: unqualified when loyverse is on
    # the search path of the session that first ran it (a fresh session here)
    pid = world["products"][1]
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f"set search_path = {search_path}")
        c.execute("update public.products set price = 13 where id = %s", (pid,))
        rows = c.execute("select product_id from loyverse.loyverse_price_sync_queue").fetchall()
    assert [r[0] for r in rows] == [pid]
