"""Error digests by email: the outbox (loyverse_notification_outbox) sent through SMTP.

The database decides what to send (``loyverse.enqueue_price_sync_digests``: one digest per
restaurant per interval, deduplicated); this module claims pending rows with SKIP LOCKED,
sends each with smtplib, and records the outcome. A failed send goes back to pending with
exponential backoff and is given up after ``max_attempts``; price sync never waits for it.
Settings come from the environment: LOYVERSE_SYNC_SMTP_HOST, _PORT, _USER, _PASSWORD,
_FROM, _STARTTLS (1/true/yes). With LOYVERSE_SYNC_CONSOLE_URL (where `loyverse-sync serve`
is reached, e.g. https://sync.example.com), each email links to the console page that fixes
the problem.
"""

from __future__ import annotations

import dataclasses
import email.message
import logging
import os
import smtplib
from typing import Any

import psycopg

from loyverse_sync import queries

logger = logging.getLogger("loyverse_sync.pricesync.notify")


@dataclasses.dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send email."""

    host: str
    port: int = 25
    user: str | None = None
    password: str | None = None
    sender: str = "loyverse-sync@localhost"
    starttls: bool = False
    timeout: float = 15.0
    console_url: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> SmtpSettings | None:
        """The settings from LOYVERSE_SYNC_SMTP_*; None when no host is configured."""
        env = dict(os.environ if env is None else env)
        host = env.get("LOYVERSE_SYNC_SMTP_HOST", "").strip()
        if not host:
            return None
        return cls(
            host=host,
            port=int(env.get("LOYVERSE_SYNC_SMTP_PORT", "25") or 25),
            user=env.get("LOYVERSE_SYNC_SMTP_USER") or None,
            password=env.get("LOYVERSE_SYNC_SMTP_PASSWORD") or None,
            sender=env.get("LOYVERSE_SYNC_SMTP_FROM") or "loyverse-sync@localhost",
            starttls=env.get("LOYVERSE_SYNC_SMTP_STARTTLS", "").lower() in ("1", "true", "yes", "on"),
            console_url=(env.get("LOYVERSE_SYNC_CONSOLE_URL") or "").rstrip("/") or None,
        )


def console_links(console_url: str | None, kind: str, restaurant_id: Any) -> str:
    """The lines an email ends with: the console pages that fix what it reports."""
    if not console_url or restaurant_id is None:
        return ""
    base = f"{console_url.rstrip('/')}/console/r/{restaurant_id}"
    lines = [f"Failed and dead changes, with Retry: {base}/"]
    if kind == "ALERT":
        lines.append(f"Alert thresholds and notifications: {base}/settings")
    elif kind == "RECOVERY":
        lines = [f"Dashboard: {base}/"]
    return "\n\n" + "\n".join(lines) + "\n"


def send_pending(
    conn: psycopg.Connection[Any],
    settings: SmtpSettings,
    *,
    limit: int = 20,
    max_attempts: int = 8,
    backoff_base: float = 30.0,
) -> dict[str, int]:
    """Send due outbox emails; returns {"sent": n, "failed": n}. ``conn`` must be autocommit."""
    queries.execute(conn, "pricesync", "release_stuck_notifications")
    rows = queries.execute(conn, "pricesync", "claim_notifications", {"limit": limit}).fetchall()
    sent = failed = 0
    for row in rows:
        message = email.message.EmailMessage()
        message["From"] = settings.sender
        message["To"] = row["recipient"]
        message["Subject"] = row["subject"]
        message.set_content(row["body"] + console_links(settings.console_url, row.get("kind", ""),
                                                         row.get("restaurant_id")))
        try:
            with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
                if settings.starttls:
                    smtp.starttls()
                if settings.user:
                    smtp.login(settings.user, settings.password or "")
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            failed += 1
            delay = min(3600.0, backoff_base * 2 ** (row["attempts"] - 1))
            logger.warning("notification %s to %s failed: %s", row["id"], row["recipient"], exc)
            queries.execute(conn, "pricesync", "notification_failed", {
                "id": row["id"], "error": f"{type(exc).__name__}: {exc}"[:500],
                "delay_seconds": delay, "max_attempts": max_attempts,
            })
            continue
        sent += 1
        queries.execute(conn, "pricesync", "notification_sent", {"id": row["id"]})
    return {"sent": sent, "failed": failed}
