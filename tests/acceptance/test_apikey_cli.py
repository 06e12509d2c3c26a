"""`loyverse-sync apikey create|list|revoke`, and the CLI's changes audited as cli:<OS user>."""

from __future__ import annotations

import hashlib

from loyverse_sync import accounts, audit


def test_create_list_revoke_and_the_audit_trail_names_the_os_user(run_cli, conn):
    rid = accounts.add_restaurant(conn, "Café Nord")
    made = run_cli("apikey", "create", "--restaurant", "Café Nord", "--name", "nord-app")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("lvs_") and len(key) > 40
    stored = conn.execute("select key_hash, restaurant_id from loyverse.loyverse_api_keys").fetchone()
    assert bytes(stored["key_hash"]) == hashlib.sha256(key.encode()).digest()
    assert str(stored["restaurant_id"]) == rid

    listed = run_cli("apikey", "list")
    assert "nord-app" in listed.stdout and "Café Nord" in listed.stdout and "active" in listed.stdout
    assert key not in listed.stdout + listed.stderr

    assert run_cli("apikey", "revoke", "nord-app").returncode == 0
    assert "revoked" in run_cli("apikey", "list").stdout
    again = run_cli("apikey", "revoke", "nord-app")
    assert again.returncode == 0 and "already revoked" in again.stdout

    actors = {r["actor"] for r in conn.execute("select actor from loyverse.audit_trail where action = 'API_KEY'")}
    assert actors == {f"cli:{audit.os_user()}"}


def test_bad_input_is_one_line_and_exit_2(run_cli, conn):
    accounts.add_restaurant(conn, "Café Nord")
    both = run_cli("apikey", "create", "--restaurant", "Café Nord", "--admin")
    assert both.returncode == 2 and "exactly one of --restaurant R or --admin" in both.stderr
    assert run_cli("apikey", "create", "--admin", "--name", "ops").returncode == 0
    dup = run_cli("apikey", "create", "--admin", "--name", "ops")
    assert dup.returncode == 2 and dup.stderr.strip().splitlines()[-1].startswith("Error: name: an API key named ops exists")
    gone = run_cli("apikey", "revoke", "nobody")
    assert gone.returncode == 2 and "no API key named nobody" in gone.stderr
    assert conn.execute("select count(*) as n from loyverse.loyverse_api_keys").fetchone()["n"] == 1
