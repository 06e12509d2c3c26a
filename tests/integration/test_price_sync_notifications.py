"""Error digests reach a real (local) SMTP server; a failing server never blocks anything."""

from __future__ import annotations

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Sink

from loyverse_sync.pricesync import notify
from loyverse_sync.worker import tasks


class Recorder(Sink):
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp():
    import socket

    with socket.socket() as probe:  # aiosmtpd's start() checks its own port, so it cannot be 0
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = Recorder()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def failures(conn, fernet_key):
    from loyverse_sync import accounts

    account_id = accounts.add_account(conn, name="acc", token="tok", base_url="http://127.0.0.1:9/v1.0")
    rid = accounts.add_restaurant(conn, "Café Nord")
    accounts.link_restaurant(conn, rid, account_id, "s1")
    conn.execute("select loyverse.update_price_sync_settings(%s, '{\"notify_on_error\": true,"
                 " \"notification_email\": \"ops@example.com\"}')", (rid,))
    for k in range(2):
        pid = conn.execute("insert into public.products (restaurant_id, name, price) values (%s, %s, 10)"
                           " returning id", (rid, f"Latte {k}")).fetchone()["id"]
        conn.execute("insert into loyverse.loyverse_item_mappings (product_id, restaurant_id, account_id,"
                     " loyverse_item_id, loyverse_variant_id, loyverse_store_id) values (%s, %s, %s, 'i', %s, 's1')",
                     (pid, rid, account_id, f"v{k}"))
    conn.execute("update public.products set price = 11")
    conn.execute("update loyverse.loyverse_price_sync_queue set status = 'dead', completed_at = now(),"
                 " last_error_code = 'INTERNAL_SERVER_ERROR', last_error = '500 after 8 attempts'")
    return rid


def test_one_digest_per_restaurant_is_sent_by_smtp(conn, dsn, connector, smtp, failures):
    handler, port = smtp
    settings = notify.SmtpSettings(host="127.0.0.1", port=port, sender="sync@example.com")
    assert tasks.run_notifications(connector, settings) == {"queued": 1, "sent": 1, "failed": 0}
    assert tasks.run_notifications(connector, settings) == {"queued": 0, "sent": 0, "failed": 0}
    ((sender, rcpts, content),) = handler.messages
    assert sender == "sync@example.com" and rcpts == ["ops@example.com"]
    text = content.decode()
    assert "Café Nord" in text or "Caf=C3=A9 Nord" in text or "=?utf-8?" in text
    assert "500 after 8 attempts" in text
    (row,) = conn.execute("select status, sent_at from loyverse.loyverse_notification_outbox").fetchall()
    assert row["status"] == "sent" and row["sent_at"] is not None


def test_the_email_links_to_the_console_page_that_fixes_it(conn, dsn, connector, smtp, failures):
    handler, port = smtp
    settings = notify.SmtpSettings(host="127.0.0.1", port=port, console_url="https://sync.example.com")
    assert tasks.run_notifications(connector, settings)["sent"] == 1
    ((_, _, content),) = handler.messages
    import email
    import email.policy

    body = email.message_from_bytes(content, policy=email.policy.default).get_content()
    assert f"Failed and dead changes, with Retry: https://sync.example.com/console/r/{failures}/" in body


def test_smtp_failure_is_retried_later(conn, dsn, connector, smtp, failures):
    handler, port = smtp
    down = notify.SmtpSettings(host="127.0.0.1", port=1, timeout=2)
    assert tasks.run_notifications(connector, down)["failed"] == 1
    (row,) = conn.execute("select status, attempts, last_error, next_attempt_at > now() as later"
                          " from loyverse.loyverse_notification_outbox").fetchall()
    assert (row["status"], row["attempts"], row["later"]) == ("pending", 1, True) and row["last_error"]
    conn.execute("update loyverse.loyverse_notification_outbox set next_attempt_at = now()")
    up = notify.SmtpSettings(host="127.0.0.1", port=port)
    assert tasks.run_notifications(connector, up)["sent"] == 1 and len(handler.messages) == 1


def test_settings_come_from_the_environment():
    env = {"LOYVERSE_SYNC_SMTP_HOST": "mail", "LOYVERSE_SYNC_SMTP_PORT": "587", "LOYVERSE_SYNC_SMTP_USER": "u",
           "LOYVERSE_SYNC_SMTP_PASSWORD": "p", "LOYVERSE_SYNC_SMTP_FROM": "a@b.c", "LOYVERSE_SYNC_SMTP_STARTTLS": "yes"}
    assert notify.SmtpSettings.from_env(env) == notify.SmtpSettings("mail", 587, "u", "p", "a@b.c", True)
    assert notify.SmtpSettings.from_env({}) is None
