"""Health checks: is a worker running, is the queue moving, do the tokens still work, each
failure with its reason (`loyverse-sync health`, the server's /health). Queries in queries/ops.sql.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import psycopg
import psycopg_pool

from loyverse_sync import accounts, db, oauth, queries

logger = logging.getLogger(__name__)


def _rows(conn: psycopg.Connection[Any], name: str) -> list[dict[str, Any]]:
    return list(queries.execute(conn, "ops", name).fetchall())


@dataclasses.dataclass
class Check:
    name: str
    ok: bool
    detail: str


def unreachable(exc: Exception) -> Check:
    """The one failed check when the database does not answer (no connector could be built, or
    its pool lent no connection), with libpq's reason."""
    return Check("database", False, f"unreachable: {' '.join(str(exc).split())}")


def run_checks(
    connector: db.Connector,
    *,
    heartbeat_seconds: float = 60.0,
    token_ttl_seconds: float = 300.0,
    check_tokens: bool = True,
) -> list[Check]:
    """Each check with its reason; healthy when all are ok."""
    try:
        with connector.connection() as conn:
            return _checks(connector, conn, heartbeat_seconds, token_ttl_seconds, check_tokens)
    except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
        return [unreachable(exc)]


def _checks(
    connector: db.Connector,
    conn: psycopg.Connection[Any],
    heartbeat_seconds: float,
    token_ttl_seconds: float,
    check_tokens: bool,
) -> list[Check]:
    checks: list[Check] = []
    pending = db.pending_migrations(connector)
    if pending:
        checks.append(
            Check(
                "database",
                False,
                f"reachable, {len(pending)} migration(s) pending: {', '.join(pending)}",
            )
        )
        return checks
    checks.append(Check("database", True, "reachable and migrated"))

    hb = queries.execute(conn, "ops", "worker_heartbeat").fetchone()
    age = hb["age_seconds"] if hb else None
    if hb is None or age is None:
        checks.append(
            Check(
                "worker",
                False,
                "no worker is running: none is registered (a worker unregisters when it stops,"
                " and a stopped one restarts itself only while its process lives);"
                " start `loyverse-sync worker`",
            )
        )
    elif age > heartbeat_seconds:
        checks.append(
            Check(
                "worker",
                False,
                f"no worker is alive: the last heartbeat was {age:.0f} s ago (limit {heartbeat_seconds:.0f} s);"
                " a worker that was killed or hangs leaves its registration behind",
            )
        )
    else:
        checks.append(
            Check("worker", True, f"{hb['workers']} worker(s), last heartbeat {age:.0f} s ago")
        )

    for r in _rows(conn, "health_restaurants"):
        name = r["restaurant_name"]
        if (
            r["oldest_pending_seconds"] is not None
            and r["allowed_seconds"] is not None
            and r["oldest_pending_seconds"] > r["allowed_seconds"]
        ):
            checks.append(
                Check(
                    f"queue:{name}",
                    False,
                    f"oldest pending change is {r['oldest_pending_seconds']:.0f} s old; {r['sync_frequency']} allows {r['allowed_seconds']:.0f} s",
                )
            )
        else:
            checks.append(Check(f"queue:{name}", True, f"{r['pending']} pending"))
        rate = r["failure_rate"]
        if rate is not None and rate >= r["alert_failure_rate"]:
            checks.append(
                Check(
                    f"failures:{name}",
                    False,
                    f"failure rate {rate:.0%} over the last hour (threshold {r['alert_failure_rate']:.0%})",
                )
            )
        else:
            checks.append(
                Check(
                    f"failures:{name}",
                    True,
                    "failure rate under threshold"
                    if rate is not None
                    else "no finished changes in the last hour",
                )
            )

    if check_tokens:
        checks.extend(_token_checks(connector, conn, token_ttl_seconds))
    return checks


def _token_checks(
    connector: db.Connector, conn: psycopg.Connection[Any], ttl: float
) -> list[Check]:
    from loyverse_sync.loyverse import errors as lv_errors

    result = []
    for r in _rows(conn, "health_accounts"):
        name = f"token:{r['name']}"
        fresh = r["checked_seconds_ago"] is not None and r["checked_seconds_ago"] < ttl
        if fresh and r["token_valid"] is not None:
            result.append(
                Check(
                    name,
                    bool(r["token_valid"]),
                    f"{'valid' if r['token_valid'] else 'REJECTED by Loyverse'} (checked {r['checked_seconds_ago']:.0f} s ago)",
                )
            )
            continue
        try:
            account = accounts.get_account(conn, r["account_id"])
            with oauth.client_for(
                account, connector, connection=conn, max_attempts=2, timeout=10
            ) as lv:
                lv.get_merchant()
            valid, detail = True, "valid (checked now with GET /merchant/)"
        except oauth.RefreshRejected:
            valid, detail = (
                False,
                "REJECTED by Loyverse: the OAuth refresh token was refused; connect the account again",
            )
        except lv_errors.Unauthorized:
            valid, detail = False, "REJECTED by Loyverse (401): the token was revoked or expired"
        except lv_errors.LoyverseError as exc:
            result.append(Check(name, False, f"cannot check: {exc}"))
            continue
        except Exception as exc:  # a missing key is a failed check, not a crash
            result.append(Check(name, False, f"cannot check: {exc}"))
            continue
        queries.execute(conn, "ops", "record_token_check", {"id": r["account_id"], "valid": valid})
        result.append(Check(name, valid, detail))
    return result
