"""`loyverse-sync restaurant grant-role|revoke-role|roles`: a DBA decides which role of the main
app reads which restaurant; bad input is one line naming what is wrong, exit 2, nothing changed."""

from __future__ import annotations

import uuid

import pytest

from loyverse_sync import accounts, audit


@pytest.mark.slow  # a few seconds: left out of the fast lane, run by CI
def test_grant_list_and_revoke_a_restaurant_for_an_app_role(run_cli, conn):
    accounts.add_restaurant(conn, "Café Nord")
    accounts.add_restaurant(conn, "Café Sud")
    role = f"lvs_app_cli_{uuid.uuid4().hex[:8]}"
    conn.execute(f"create role {role} in role loyverse_app")
    try:
        made = run_cli("restaurant", "grant-role", "Café Nord", "--role", role)
        assert made.returncode == 0, made.stderr
        assert f"role {role} reads restaurant Café Nord" in made.stdout
        assert "already" in run_cli("restaurant", "grant-role", "Café Nord", "--role", role).stdout
        assert run_cli("restaurant", "grant-role", "Café Sud", "--role", role).returncode == 0
        listed = run_cli("restaurant", "roles", "--role", role)
        assert listed.returncode == 0 and "Café Nord" in listed.stdout and "Café Sud" in listed.stdout
        by = {r["granted_by"] for r in conn.execute("select granted_by from loyverse.restaurant_roles")}
        assert by == {f"cli:{audit.os_user()}"}

        for args, says in ((("grant-role", "Café Nord", "--role", "no_such_role_q"), "no database role"),
                           (("grant-role", "Café Nord", "--role", "loyverse_readonly"), "not a member of loyverse_app"),
                           (("grant-role", "Nowhere", "--role", role), "no restaurant"),
                           (("revoke-role", "--role", role), "RESTAURANT or --all")):
            bad = run_cli("restaurant", *args)
            assert bad.returncode == 2 and says in bad.stderr, (args, bad.stderr)

        gone = run_cli("restaurant", "revoke-role", "Café Sud", "--role", role)
        assert gone.returncode == 0 and "1 grant(s) taken back" in gone.stdout
        assert [r["restaurant_name"] for r in conn.execute("select restaurant_name from loyverse.restaurant_roles")] == [
            "Café Nord"]
        assert "1 grant(s)" in run_cli("restaurant", "revoke-role", "--all", "--role", role).stdout
        assert "no role is granted" in run_cli("restaurant", "roles").stdout
    finally:
        conn.execute(f"drop role if exists {role}")
