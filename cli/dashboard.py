"""`loyverse-sync dashboard`: the Sync Dashboard in the terminal (rich), read from the views.

Panels: per-restaurant status; queue size and processing rate with a chart of the last
hour; rate budget in use per account; recent sync history; failed and dead items; sync
statistics. Keys: r = retry failed and dead items, t = trigger a sync of every restaurant,
q = quit. `--once` prints one frame and exits (scripts, tests, a look over SSH).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import select
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import click
import psycopg
from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from loyverse_sync import queries
from loyverse_sync.cli import _common

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[int]) -> str:
    top = max(values) if values else 0
    if top == 0:
        return SPARK[0] * len(values)
    return "".join(SPARK[min(len(SPARK) - 1, round(v / top * (len(SPARK) - 1)))] for v in values)


def _age(value: dt.timedelta | None) -> str:
    if value is None:
        return "-"
    s = int(value.total_seconds())
    return (
        f"{s // 3600}h{s % 3600 // 60:02d}m"
        if s >= 3600
        else (f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")
    )


def _when(value: dt.datetime | None) -> str:
    return value.astimezone().strftime("%H:%M:%S") if value else "-"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{float(value):.0%}"


def snapshot(conn: psycopg.Connection[Any], restaurant_id: str | None = None) -> dict[str, Any]:
    """Everything one frame shows, read from the views in one go."""
    params = {"restaurant_id": restaurant_id}
    q = {
        name: list(queries.execute(conn, "dashboard", name, params).fetchall())
        for name in ("status", "accounts", "history", "problems", "throughput")
    }
    per_minute = [0] * 60
    for r in q["throughput"]:
        per_minute[int(r["minute_index"])] = int(r["n"])
    q["per_minute"] = per_minute
    q["taken_at"] = dt.datetime.now().astimezone()
    return q


def render(data: dict[str, Any], message: str = "") -> Group:
    status = Table(box=box.SIMPLE_HEAD, expand=True, title="Restaurants", title_justify="left")
    for col in (
        "restaurant",
        "sync",
        "pending",
        "in flight",
        "failed",
        "dead",
        "conflicts",
        "held",
        "oldest",
        "last ok",
        "synced 1h",
        "ok 1h",
    ):
        status.add_column(
            col,
            justify="right" if col not in ("restaurant", "sync") else "left",
            no_wrap=True,
            min_width=16 if col == "restaurant" else len(col),
        )
    for r in data["status"]:
        sync = "PAUSED" if r["paused"] else ("off" if not r["enabled"] else r["sync_frequency"])
        status.add_row(
            r["restaurant_name"],
            sync,
            str(r["pending"]),
            str(r["processing"]),
            Text(str(r["failed"]), style="bold red" if r["failed"] else ""),
            Text(str(r["dead"]), style="bold red" if r["dead"] else ""),
            str(r["conflicts"]),
            Text(str(r["held"]), style="bold yellow" if r["held"] else ""),
            _age(r["oldest_pending_age"]),
            _when(r["last_success_at"]),
            str(r["synced_last_hour"]),
            _pct(r["success_rate_last_hour"]),
        )
    if not data["status"]:
        status.add_row("(no restaurants linked)", *[""] * 10)

    queue_total = sum(int(r["pending"]) + int(r["processing"]) for r in data["status"])
    per_minute = data["per_minute"]
    rate_now = sum(per_minute[-5:]) / 5
    chart = Text.assemble(
        ("Queue ", "bold"),
        f"{queue_total} waiting or in flight   ",
        ("Processing rate ", "bold"),
        f"{rate_now:.1f} items/min (last 5 min)\n",
        ("last hour  ", "dim"),
        (sparkline(per_minute), "green"),
        ("  now", "dim"),
    )

    budget = Table(
        box=box.SIMPLE_HEAD, expand=True, title="Rate budget per account", title_justify="left"
    )
    for col in (
        "account",
        "budget/min",
        "used/min",
        "in use",
        "pending",
        "in flight",
        "retrying",
        "429s",
        "throttled until",
    ):
        budget.add_column(col, justify="left" if col == "account" else "right", no_wrap=True)
    for r in data["accounts"]:
        used = float(r["requests_per_minute"] or 0)
        cap = float(r["budget_per_minute"] or 0)
        share = used / cap if cap else 0.0
        bar = "█" * round(share * 10) + "░" * (10 - round(share * 10))
        budget.add_row(
            r["account_name"],
            f"{cap:.0f}",
            f"{used:.1f}",
            f"{bar} {share:.0%}",
            str(r["pending"]),
            str(r["processing"]),
            str(r["retrying"]),
            str(r["rate_limited_total"] or 0),
            _when(r["throttled_until"]),
        )

    history = Table(
        box=box.SIMPLE_HEAD, expand=True, title="Recent sync history", title_justify="left"
    )
    for col in ("started", "type", "status", "items", "ok", "failed", "requests", "took"):
        history.add_column(
            col, justify="left" if col in ("started", "type", "status") else "right", no_wrap=True
        )
    for r in data["history"]:
        took = (r["completed_at"] - r["started_at"]).total_seconds() if r["completed_at"] else None
        history.add_row(
            _when(r["started_at"]),
            r["sync_type"],
            Text(r["status"], style="red" if r["status"] in ("FAILED", "PARTIAL") else "green"),
            str(r["items_total"]),
            str(r["items_succeeded"]),
            str(r["items_failed"]),
            str(r["requests_made"]),
            "-" if took is None else f"{took:.2f}s",
        )
    if not data["history"]:
        history.add_row("(nothing synced yet)", *[""] * 7)

    problems = Table(
        box=box.SIMPLE_HEAD,
        expand=True,
        title="Failed and dead items  \\[r] retry all",
        title_justify="left",
    )
    for col in ("restaurant", "product", "status", "price", "attempts", "error"):
        problems.add_column(col, no_wrap=col != "error", overflow="fold")
    for r in data["problems"]:
        problems.add_row(
            r["restaurant_name"],
            r["product_name"],
            Text(r["status"], style="red"),
            str(r["price_to_send"]),
            f"{r['attempts']}/{r['max_attempts']}",
            f"{r['last_error_code'] or ''} {r['last_error'] or ''}".strip(),
        )
    if not data["problems"]:
        problems.add_row("(none)", "", "", "", "", "")

    synced_day = sum(int(r["synced_last_day"]) for r in data["status"])
    stats = Text.assemble(
        ("Sync statistics  ", "bold"),
        f"items synced: {sum(int(r['synced_last_hour']) for r in data['status'])} in the last hour, {synced_day} in the last day   ",
        f"success rate (24h): {_pct(_overall_rate(data['status']))}",
    )
    footer = Text.assemble(
        (f"{data['taken_at']:%Y-%m-%d %H:%M:%S}  ", "dim"),
        ("[t] trigger sync  [r] retry failed & dead  [q] quit", "bold"),
        ("  " + message if message else "", "yellow"),
    )
    return Group(
        Panel(Group(status, chart), title="loyverse-sync dashboard", border_style="cyan"),
        budget,
        history,
        problems,
        stats,
        footer,
    )


def _overall_rate(rows: list[dict[str, Any]]) -> float | None:
    done = sum(int(r["synced_last_day"]) for r in rows)
    rates = [
        (int(r["synced_last_day"]), r["success_rate_last_day"])
        for r in rows
        if r["success_rate_last_day"]
    ]
    finished = sum(n / float(rate) for n, rate in rates if float(rate) > 0)
    return done / finished if finished else None


@contextlib.contextmanager
def _cbreak() -> Iterator[bool]:
    """Single keypresses without Enter, when stdin is a terminal."""
    if not sys.stdin.isatty():
        yield False
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _read_key(timeout: float) -> str | None:
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    return os.read(sys.stdin.fileno(), 1).decode(errors="ignore") if ready else None


@click.command("dashboard")
@click.option("--once", is_flag=True, help="Print one frame and exit.")
@click.option(
    "--refresh",
    type=_common.seconds(3600, low=0.2),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes.",
)
@click.option("--restaurant", "restaurant_ref", help="Show only this restaurant (id or name).")
@click.option(
    "--width", type=_common.IntBetween(60, 1000), help="Frame width for --once (default: the terminal's)."
)
def dashboard(once: bool, refresh: float, restaurant_ref: str | None, width: int | None) -> None:
    """Live terminal dashboard of price sync (every number from the SQL views)."""
    from loyverse_sync import accounts

    with _common.connection() as conn:
        restaurant_id = (
            accounts.resolve_restaurant_id(conn, restaurant_ref) if restaurant_ref else None
        )
        if once:
            console = Console(
                width=width or 160, force_terminal=False, color_system=None, soft_wrap=False
            )
            console.print(render(snapshot(conn, restaurant_id)))
            return
    stop = threading.Event()
    message = ""
    console = Console()
    with (
        _common.connection() as conn,
        _cbreak() as keys,
        Live(console=console, auto_refresh=False, screen=True) as live,
    ):
        try:
            while not stop.is_set():
                live.update(render(snapshot(conn, restaurant_id), message), refresh=True)
                deadline = time.monotonic() + refresh
                while time.monotonic() < deadline:
                    key = (
                        _read_key(max(0.0, deadline - time.monotonic()))
                        if keys
                        else (time.sleep(refresh) or None)
                    )
                    if key in ("q", "Q", "\x03"):
                        stop.set()
                        break
                    if key in ("r", "R"):
                        n = queries.execute(
                            conn, "dashboard", "retry", {"restaurant_id": restaurant_id}
                        ).fetchone()
                        message = f"retried {n['n'] if n else 0} item(s)"
                        break
                    if key in ("t", "T"):
                        n = queries.execute(
                            conn, "dashboard", "trigger", {"restaurant_id": restaurant_id}
                        ).fetchone()
                        message = f"triggered: {n['n'] if n else 0} change(s) due now"
                        break
                    if not keys:
                        break
        except KeyboardInterrupt:
            pass
