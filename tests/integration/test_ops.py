"""Operators' view: metrics exposition, health reasons, alerts once per breach, dashboard frame."""

from __future__ import annotations

import json
import socket
import uuid

import httpx
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from loyverse_emulator import admin as emu_admin
from loyverse_emulator import server as emu_server
from loyverse_sync import accounts, apicalls, db, health, metrics


@pytest.fixture
def emulator():
    with emu_server.EmulatorServer(menu=5, seed=3, stores=2, merchants=1) as emu:
        yield emu


@pytest.fixture
def restaurant(conn, fernet_key, emulator):
    """A linked restaurant with queue rows in every state and some API calls recorded."""
    merchant = emulator.merchants[0]
    account_id = accounts.add_account(
        conn, name="acct", token=merchant["tokens"][0], base_url=emulator.base_url
    )
    rid = accounts.add_restaurant(conn, "Nord")
    accounts.link_restaurant(conn, rid, account_id, merchant["store_ids"][0], "Main")
    conn.execute(
        "update loyverse.loyverse_price_sync_settings set notification_email = 'ops@example.com', alert_dead_letters = 2"
    )
    for i, status in enumerate(["done", "done", "done", "failed", "dead", "dead", "pending"]):
        pid = conn.execute(
            "insert into public.products (restaurant_id, name, price) values (%s, %s, 1) returning id",
            (rid, f"p{i}"),
        ).fetchone()["id"]
        conn.execute(
            """insert into loyverse.loyverse_price_sync_queue
                   (product_id, restaurant_id, account_id, new_price, price_to_send)
               values (%s, %s, %s, 1, 1)""",
            (pid, rid, account_id),
        )
        conn.execute(  # rows enter their outcome as the worker's would (outcome totals count it)
            """update loyverse.loyverse_price_sync_queue
                  set status = %s, completed_at = case when %s <> 'pending' then now() end,
                      last_error = case when %s in ('failed','dead') then 'boom' end
                where product_id = %s""",
            (status, status, status, pid),
        )
    calls = [
        {"method": "GET", "endpoint": "/items", "status": 200, "seconds": s}
        for s in (0.03, 0.2, 0.4, 1.5)
    ]
    calls.append({"method": "POST", "endpoint": "/items", "status": 429, "seconds": 0.01})
    conn.execute("select loyverse.record_api_calls(%s, %s::jsonb)", (account_id, json.dumps(calls)))
    return {"id": rid, "account_id": account_id}


def test_metrics_are_valid_exposition_with_queue_outcomes_requests_and_latency(connector, restaurant):
    families = {f.name: f for f in text_string_to_metric_families(metrics.render_metrics(connector))}
    queue = {s.labels["status"]: s.value for s in families["loyverse_sync_queue_rows"].samples}
    assert queue["pending"] == 1 and queue["dead"] == 2 and queue["failed"] == 1
    outcomes = {
        s.labels["outcome"]: s.value
        for s in families["loyverse_sync_items"].samples
        if s.name.endswith("_total")
    }
    assert outcomes == {"done": 3, "failed": 1, "dead": 2}
    requests = {
        (s.labels["method"], s.labels["status"]): s.value
        for s in families["loyverse_sync_loyverse_requests"].samples
        if s.name.endswith("_total")
    }
    assert requests == {("GET", "200"): 4, ("POST", "429"): 1}
    buckets = {
        s.labels["le"]: s.value
        for s in families["loyverse_sync_loyverse_request_seconds"].samples
        if s.name.endswith("_bucket") and s.labels["method"] == "GET"
    }
    assert buckets["0.05"] == 1 and buckets["0.5"] == 3 and buckets["+Inf"] == 4


def test_items_counter_does_not_drop_when_the_queue_is_pruned_or_retried(conn, connector, restaurant):
    def scrape():
        families = {f.name: f for f in text_string_to_metric_families(metrics.render_metrics(connector))}
        items = {
            s.labels["outcome"]: s.value
            for s in families["loyverse_sync_items"].samples
            if s.name.endswith("_total")
        }
        queue = {s.labels["status"]: s.value for s in families["loyverse_sync_queue_rows"].samples}
        return items, queue

    assert scrape()[0] == {"done": 3, "failed": 1, "dead": 2}
    conn.execute(
        "update loyverse.loyverse_price_sync_queue set completed_at = now() - interval '8 days'"
        " where status = 'done'"
    )
    assert conn.execute("select loyverse.prune_price_sync_queue() as n").fetchone()["n"] == 3
    conn.execute("select loyverse.retry_price_sync()")
    items, queue = scrape()
    assert queue["failed"] == 0 and queue["dead"] == 0  # the rows are gone, the counts stay
    assert items == {"done": 3, "failed": 1, "dead": 2}


def test_metrics_are_served_over_http(connector, restaurant):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = metrics.serve_metrics(connector, port)
    try:
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        server.shutdown()
        server.server_close()
    names = {f.name for f in text_string_to_metric_families(body)}
    assert {
        "loyverse_sync_queue_rows",
        "loyverse_sync_oldest_pending_seconds",
        "loyverse_sync_rate_limited",
    } <= names


def test_api_latency_view_gives_p50_and_p95(conn, restaurant):
    row = conn.execute("select * from loyverse.api_latency where method = 'GET'").fetchone()
    assert row["calls"] == 4 and row["p50_seconds"] == 0.25 and row["p95_seconds"] == 2.5


def test_health_fails_with_a_reason_when_no_worker_runs_and_passes_with_a_heartbeat(
    conn, connector, restaurant
):
    checks = {c.name: c for c in health.run_checks(connector)}
    assert not checks["worker"].ok and "worker" in checks["worker"].detail
    assert checks["token:acct"].ok
    conn.execute("insert into public.procrastinate_workers default values")
    checks = {c.name: c for c in health.run_checks(connector)}
    assert checks["worker"].ok
    conn.execute(
        "update public.procrastinate_workers set last_heartbeat = now() - interval '5 minutes'"
    )
    checks = {c.name: c for c in health.run_checks(connector)}
    assert not checks["worker"].ok and "300 s ago" in checks["worker"].detail


def test_health_notices_a_revoked_token(conn, connector, restaurant, emulator):
    with emu_admin.AdminClient(emulator.admin_url) as adm:
        adm.revoke_token(emulator.merchants[0]["tokens"][0])
    checks = {c.name: c for c in health.run_checks(connector, token_ttl_seconds=0)}
    assert not checks["token:acct"].ok and "401" in checks["token:acct"].detail
    assert (
        conn.execute("select token_valid from loyverse.loyverse_accounts").fetchone()["token_valid"] is False
    )


def test_health_command_exits_1_with_reasons(dsn, restaurant, monkeypatch):
    from loyverse_sync.cli import main

    monkeypatch.setenv("DATABASE_URL", dsn)
    result = CliRunner().invoke(main.cli, ["health", "--no-token-check"])
    assert result.exit_code == 1
    assert "FAIL  worker" in result.output and "UNHEALTHY" in result.output


def test_health_command_reports_a_database_that_does_not_answer(monkeypatch):
    import socket

    from loyverse_sync.cli import main

    with socket.socket() as sock:  # a port nothing listens on once it is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("DATABASE_URL", f"postgresql://127.0.0.1:{port}/nowhere")
    result = CliRunner().invoke(main.cli, ["health"])
    assert result.exit_code == 1
    assert "FAIL  database: unreachable: " in result.output and "UNHEALTHY" in result.output


def test_an_alert_is_sent_once_per_breach_and_once_on_recovery(conn, restaurant):
    changes = conn.execute("select * from loyverse.evaluate_alerts()").fetchall()
    assert {(c["alert"], c["change"]) for c in changes} >= {("DEAD_LETTERS", "BREACHED")}
    assert conn.execute("select * from loyverse.evaluate_alerts()").fetchall() == []
    conn.execute(
        "update loyverse.loyverse_price_sync_queue set status = 'cancelled' where status = 'dead'"
    )
    changes = conn.execute("select * from loyverse.evaluate_alerts()").fetchall()
    assert ("DEAD_LETTERS", "RECOVERED") in {(c["alert"], c["change"]) for c in changes}
    mails = conn.execute(
        "select kind, subject from loyverse.loyverse_notification_outbox where payload->>'alert' = 'DEAD_LETTERS' order by id"
    ).fetchall()
    assert [m["kind"] for m in mails] == ["ALERT", "RECOVERY"]
    assert "Nord" in mails[0]["subject"]


def test_dashboard_once_shows_every_element_of_the_dashboard(dsn, restaurant, monkeypatch):
    from loyverse_sync.cli import main

    monkeypatch.setenv("DATABASE_URL", dsn)
    result = CliRunner().invoke(main.cli, ["dashboard", "--once", "--width", "160"])
    assert result.exit_code == 0, result.output
    out = result.output
    for element in (
        "Restaurants",
        "Nord",
        "Queue",
        "Processing rate",
        "last hour",
        "Rate budget per account",
        "Recent sync history",
        "Failed and dead items",
        "[r] retry",
        "boom",
        "Sync statistics",
        "success rate",
        "[t] trigger sync",
    ):
        assert element in out, element


def test_dashboard_for_an_unknown_restaurant_is_exit_2(dsn, monkeypatch):
    from loyverse_sync.cli import main

    monkeypatch.setenv("DATABASE_URL", dsn)
    result = CliRunner().invoke(
        main.cli, ["dashboard", "--once", "--restaurant", str(uuid.uuid4())]
    )
    assert result.exit_code == 2 and "no restaurant" in result.output


def test_api_calls_kept_while_the_database_was_away_reach_it_through_flush_unsent(conn, connector, restaurant):
    """A drain whose recorder could not write keeps its calls; the worker's flusher sends them
    even when no later drain of that account runs in the process (the restart chaos test's gap)."""
    account_id = restaurant["account_id"]
    before = conn.execute("select coalesce(sum(calls), 0)::int as n from loyverse.loyverse_api_call_stats"
                          " where account_id = %s", (account_id,)).fetchone()["n"]
    away = "host=127.0.0.1 port=1 dbname=nowhere connect_timeout=1"  # nothing listens on port 1
    with db.Connector(away, probe=False, timeout=1.0) as gone:
        recorder = apicalls.ApiCallRecorder(gone, account_id)
        for status in (200, 200, 429):
            recorder(type("Record", (), {"method": "POST", "endpoint": "/items", "status": status, "elapsed": 0.1})())
        recorder.close()  # fails: the three calls are kept for (away, account)
        assert apicalls.flush_unsent(gone) == 3  # still away: still kept, nothing lost
        kept = apicalls._UNSENT.pop((gone.database, account_id))
    apicalls._UNSENT[(connector.database, account_id)] = kept  # the database is back
    assert apicalls.flush_unsent(connector) == 0
    after = conn.execute("select coalesce(sum(calls), 0)::int as n from loyverse.loyverse_api_call_stats"
                         " where account_id = %s", (account_id,)).fetchone()["n"]
    assert after - before == 3
