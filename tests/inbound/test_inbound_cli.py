"""The inbound commands refuse bad input with an `Error:` line and exit 2, changing nothing."""

from __future__ import annotations

import os
import subprocess
import sys

from loyverse_sync import accounts


def cli(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["DATABASE_URL"] = dsn
    return subprocess.run([sys.executable, "-m", "loyverse_sync", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_bad_input_is_refused_naming_what_is_allowed(conn, dsn, fernet_key):
    account_id = accounts.add_account(conn, name="acc", token="tok", base_url="http://127.0.0.1:9/v1.0")
    rid = accounts.add_restaurant(conn, "Nord")
    accounts.link_restaurant(conn, rid, account_id, "s1")
    bad_policy = cli(dsn, "sync", "settings", "set", "-r", "Nord", "conflict_policy=newest")
    assert bad_policy.returncode == 2
    assert 'Error: conflict_policy: invalid value "newest" (allowed: one of hold, ours, theirs, latest)' \
        in bad_policy.stderr
    ok = cli(dsn, "sync", "settings", "set", "-r", "Nord", "conflict_policy=latest", "catalog_changes=apply",
             "sync_stock=true", "--json")
    assert ok.returncode == 0, ok.stderr
    row = conn.execute("select conflict_policy, catalog_changes, sync_stock from loyverse.loyverse_price_sync_settings"
                       " where restaurant_id = %s", (rid,)).fetchone()
    assert row == {"conflict_policy": "latest", "catalog_changes": "apply", "sync_stock": True}
    plain_http = cli(dsn, "account", "subscribe", "acc", "--url", "http://example.test")
    assert plain_http.returncode == 2 and "--allow-http" in plain_http.stderr
    no_host = cli(dsn, "account", "subscribe", "acc", "--url", "https:///x")
    assert no_host.returncode == 2 and "with a host" in no_host.stderr
    unknown = cli(dsn, "sync", "reconcile", "Nowhere")
    assert unknown.returncode == 2 and unknown.stderr.startswith("Error:")
    assert conn.execute("select count(*) as n from loyverse.loyverse_inbound_settings").fetchone()["n"] == 0


def test_polling_is_shown_and_changed_per_account(conn, dsn, fernet_key):
    accounts.add_account(conn, name="acc", token="tok", base_url="http://127.0.0.1:9/v1.0")
    changed = cli(dsn, "account", "polling", "acc", "--interval", "60", "--disable", "--json")
    assert changed.returncode == 0, changed.stderr
    row = conn.execute("select poll_enabled, poll_interval_seconds, poll_overlap_seconds"
                       " from loyverse.loyverse_inbound_settings").fetchone()
    assert row == {"poll_enabled": False, "poll_interval_seconds": 60, "poll_overlap_seconds": 120}
    bad = cli(dsn, "account", "polling", "acc", "--interval", "5")
    assert bad.returncode == 2 and "from 10 to 86400" in bad.stderr
    assert conn.execute("select poll_interval_seconds from loyverse.loyverse_inbound_settings"
                        ).fetchone()["poll_interval_seconds"] == 60
