"""The SQL side of the HTTP server (0063): who acted, settings audited, keys, import requests."""

from __future__ import annotations

import hashlib

import psycopg
import pytest


def test_a_settings_change_is_audited_with_who_and_from_to(conn, world):
    rid = world["restaurants"][0]
    with conn.transaction():
        conn.execute("set local loyverse.actor = 'cli:alice'")
        conn.execute("select loyverse.update_price_sync_settings(%s, '{\"sync_frequency\": \"MANUAL\"}')", (rid,))
    conn.execute("update loyverse.loyverse_price_sync_settings set priority = 7 where restaurant_id = %s", (rid,))
    rows = conn.execute("select actor, db_role, details from loyverse.audit_trail"
                        " where action = 'SETTINGS_CHANGE' and restaurant_id = %s order by log_id", (rid,)).fetchall()
    assert [r["actor"] for r in rows] == ["cli:alice", "sql:postgres"]
    assert {r["db_role"] for r in rows} == {"postgres"}
    assert rows[0]["details"]["changes"] == {"sync_frequency": {"from": "REALTIME", "to": "MANUAL"}}
    assert rows[1]["details"]["changes"] == {"priority": {"from": 0, "to": 7}}


def test_an_update_that_changes_nothing_is_not_logged(conn, world):
    rid = world["restaurants"][0]
    conn.execute("update loyverse.loyverse_price_sync_settings set priority = priority where restaurant_id = %s", (rid,))
    assert conn.execute("select count(*) as n from loyverse.audit_trail where action = 'SETTINGS_CHANGE'").fetchone()["n"] == 0


def test_keys_are_found_by_hash_until_revoked_and_both_are_logged(conn, world):
    rid = world["restaurants"][0]
    digest = hashlib.sha256(b"lvs_secret").digest()
    conn.execute("select loyverse.create_api_key('app', %s, %s, false)", (digest, rid))
    assert conn.execute("select name from loyverse.api_key_lookup(%s)", (digest,)).fetchone()["name"] == "app"
    assert conn.execute("select loyverse.revoke_api_key('app') as r").fetchone()["r"] is True
    assert conn.execute("select * from loyverse.api_key_lookup(%s)", (digest,)).fetchall() == []
    assert conn.execute("select status from loyverse.api_keys").fetchone()["status"] == "revoked"
    assert [r["details"]["action"] for r in conn.execute(
        "select details from loyverse.audit_trail where action = 'API_KEY' order by log_id")] == ["create", "revoke"]
    with pytest.raises(psycopg.errors.UniqueViolation) as exc:
        conn.execute("select loyverse.create_api_key('app', %s, null, true)", (hashlib.sha256(b"x").digest(),))
    assert exc.value.diag.column_name == "name"


@pytest.mark.parametrize(("request_", "field"), [
    ('{"conflict": "merge"}', "conflict"),
    ('{"decisions": {"v1": "keep"}}', "decisions"),
    ('{"map": {"item_name": "price"}}', "map"),
    ('{"batch_size": 0}', "batch_size"),
    ('{"colour": 1}', "colour"),
    ('{"conflict": "manual"}', "decisions"),
])
def test_a_bad_import_request_names_the_field_and_queues_nothing(conn, world, request_, field):
    with pytest.raises(psycopg.errors.InvalidParameterValue) as exc:
        conn.execute("select loyverse.request_menu_import(%s, %s)", (world["restaurants"][0], request_))
    assert exc.value.diag.column_name == field
    assert conn.execute("select count(*) as n from loyverse.loyverse_import_runs").fetchone()["n"] == 0
    assert conn.execute("select count(*) as n from public.procrastinate_jobs"
                        " where task_name = 'import_loyverse_menu'").fetchone()["n"] == 0


def test_an_import_request_records_a_pending_run_and_one_job(conn, world):
    rid = world["restaurants"][0]
    run_id = conn.execute("select loyverse.request_menu_import(%s, '{\"conflict\": \"update\"}') as id",
                          (rid,)).fetchone()["id"]
    run = conn.execute("select status, options from loyverse.loyverse_import_runs where id = %s", (run_id,)).fetchone()
    assert run["status"] == "PENDING"
    assert run["options"]["requested_by"] == "sql:postgres"
    job = conn.execute("select args, lock from public.procrastinate_jobs where task_name = 'import_loyverse_menu'").fetchone()
    assert job["args"] == {"run_id": run_id}
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        conn.execute("select loyverse.request_menu_import(%s)", (rid,))  # one at a time per restaurant


def test_the_main_apps_role_reads_status_history_and_requests_imports(conn, world):
    rid = world["restaurants"][0]
    with conn.transaction():
        conn.execute("set local role loyverse_app")
        # its own restaurants only (tests/sql/test_restaurant_roles.py): none until a DBA grants them
        assert conn.execute("select count(*) as n from loyverse.price_sync_status").fetchone()["n"] == 0
    conn.execute("select loyverse.grant_restaurant_to_role('loyverse_app', %s)", (rid,))
    with conn.transaction():
        conn.execute("set local role loyverse_app")
        assert conn.execute("select count(*) as n from loyverse.price_sync_status").fetchone()["n"] == 1
        conn.execute("select count(*) from loyverse.price_sync_history")
        conn.execute("select count(*) from loyverse.audit_trail")
        assert conn.execute("select loyverse.request_menu_import(%s) as id", (rid,)).fetchone()["id"] > 0
    with conn.transaction(), pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("set local role loyverse_app")
        conn.execute("select * from loyverse.api_key_lookup('\\x00'::bytea)")
