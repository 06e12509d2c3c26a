"""Loyverse accounts and the restaurants linked to their stores: registration, linking,
token access, the decrypted-account cache (re-encryption under a new key: key_rotation.py).

Python only encrypts and decrypts tokens; everything else is plain SQL against the
foundation's tables (queries in loyverse_sync/queries/accounts.sql).
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import psycopg

from loyverse_sync import crypto, limits, queries


class NotFound(Exception):
    """An account or restaurant named on the command line does not exist."""


@dataclasses.dataclass(frozen=True)
class Account:
    id: int
    name: str
    base_url: str
    token: str
    merchant_id: str | None
    currency_code: str
    decimal_places: int
    #: "personal" (a token that does not expire) or "oauth" (``token`` is the access token as
    #: last read; clients take theirs from ``oauth.StoredTokens``, which refreshes it)
    auth_kind: str = "personal"

    def __repr__(self) -> str:  # never show the token, even in a traceback's locals
        return f"Account(id={self.id}, name={self.name!r}, base_url={self.base_url!r})"


def add_account(
    conn: psycopg.Connection[Any],
    *,
    name: str,
    token: str,
    base_url: str = "https://api.loyverse.com/v1.0",
    merchant_id: str | None = None,
    business_name: str | None = None,
    currency_code: str = "EUR",
    decimal_places: int = 2,
    rate_limit_requests: int = 300,
    rate_limit_window_seconds: float = 300.0,
    keys: list[bytes] | None = None,
) -> int:
    """Store an account with its token encrypted; returns the account id."""
    if not token or not token.strip():
        raise ValueError("the token is empty")
    ciphertext, key_id = crypto.encrypt(token.strip(), keys or crypto.load_keys(create=True))
    row = queries.execute(
        conn,
        "accounts",
        "insert_account",
        {
            "name": name,
            "merchant_id": merchant_id,
            "business_name": business_name,
            "currency_code": currency_code,
            "decimal_places": decimal_places,
            "base_url": base_url.rstrip("/"),
            "token_ciphertext": ciphertext,
            "token_key_id": key_id,
            "rate_limit_requests": rate_limit_requests,
            "rate_limit_window_seconds": rate_limit_window_seconds,
        },
    ).fetchone()
    assert row is not None
    return int(_first(row))


def _first(row: Any) -> Any:
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


def resolve_account_id(conn: psycopg.Connection[Any], ref: str | int) -> int:
    """An account by id or by name."""
    text = str(ref).strip()
    # an id only when it fits bigint: a longer number is a name (or nothing), not an overflow
    as_id = int(text) if text.isdigit() and int(text) <= limits.BIGINT_MAX else None
    row = queries.execute(
        conn, "accounts", "resolve_account", {"ref": str(ref), "id": as_id}
    ).fetchone()
    if row is None:
        raise NotFound(f"no Loyverse account {ref!r} (see `loyverse-sync account list`)")
    return int(_first(row))


def get_account(
    conn: psycopg.Connection[Any], ref: str | int, *, keys: list[bytes] | None = None
) -> Account:
    """The account with its token decrypted. Call this only in the process that calls Loyverse."""
    account_id = resolve_account_id(conn, ref)
    row = queries.execute(conn, "accounts", "get_account", {"id": account_id}).fetchone()
    assert row is not None
    r = dict(row)
    token = crypto.decrypt(
        r["token_ciphertext"], r["token_key_id"], keys or crypto.load_keys(), account=r["name"]
    )
    return _account(r, token)


def _account(r: dict[str, Any], token: str) -> Account:
    """An Account from a row of the ``get_account`` query and its decrypted token."""
    return Account(
        id=r["id"],
        name=r["name"],
        base_url=r["base_url"],
        token=token,
        merchant_id=r["merchant_id"],
        currency_code=r["currency_code"],
        decimal_places=r["decimal_places"],
        auth_kind=r.get("auth_kind") or "personal",
    )


class AccountCache:
    """Accounts by id with their tokens decrypted once per process (a worker drains the same
    accounts again and again; each decrypt also re-reads the key file).

    Every ``get`` still reads the account row, so renames and base-URL changes show at once;
    only the decrypted token is reused, keyed by account id + ciphertext + key fingerprint, so
    a new token or a key rotation (both change the ciphertext) is decrypted afresh. Thread-safe.
    """

    def __init__(self, *, max_accounts: int = 10_000) -> None:
        self.max_accounts = max_accounts
        self._tokens: dict[tuple[int, bytes, str], str] = {}
        self._lock = threading.Lock()

    def get(self, conn: psycopg.Connection[Any], account_id: int) -> Account:
        """The account ``account_id`` (by id, never by name), its token decrypted at most once."""
        row = queries.execute(conn, "accounts", "get_account", {"id": int(account_id)}).fetchone()
        if row is None:
            raise NotFound(f"no Loyverse account {account_id!r} (see `loyverse-sync account list`)")
        r = dict(row)
        key = (int(r["id"]), bytes(r["token_ciphertext"]), str(r["token_key_id"]))
        with self._lock:
            token = self._tokens.get(key)
        if token is None:
            token = crypto.decrypt(r["token_ciphertext"], r["token_key_id"], crypto.load_keys(),
                                   account=r["name"])
            with self._lock:
                # drop the account's older tokens (rotated away); bound the size
                for old in [k for k in self._tokens if k[0] == key[0]]:
                    del self._tokens[old]
                if len(self._tokens) >= self.max_accounts:
                    self._tokens.clear()
                self._tokens[key] = token
        return _account(r, token)


def delete_account(conn: psycopg.Connection[Any], account_id: int) -> None:
    """Delete an account (its links and queue rows go with it)."""
    queries.execute(conn, "accounts", "delete_account", {"id": int(account_id)})


def list_accounts(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return [dict(r) for r in queries.execute(conn, "accounts", "list_accounts").fetchall()]


def update_merchant(
    conn: psycopg.Connection[Any], account_id: int, merchant: dict[str, Any]
) -> None:
    """Record what GET /merchant/ said (id, name, currency) and that the token works."""
    currency = merchant.get("currency") or {}
    queries.execute(
        conn,
        "accounts",
        "update_merchant",
        {
            "id": account_id,
            "merchant_id": merchant.get("id"),
            "business_name": merchant.get("business_name"),
            "currency_code": currency.get("code"),
            "decimal_places": currency.get("decimal_places"),
        },
    )


# -- restaurants ----------------------------------------------------------------------------


def add_restaurant(conn: psycopg.Connection[Any], name: str) -> str:
    row = queries.execute(conn, "accounts", "insert_restaurant", {"name": name}).fetchone()
    assert row is not None
    return str(_first(row))


def resolve_restaurant_id(conn: psycopg.Connection[Any], ref: str) -> str:
    """A restaurant by id or by (unique) name."""
    rows = queries.execute(conn, "accounts", "resolve_restaurant", {"ref": ref}).fetchall()
    if not rows:
        raise NotFound(f"no restaurant {ref!r} (see `loyverse-sync restaurant list`)")
    if len(rows) > 1:
        raise NotFound(f"{len(rows)} restaurants are named {ref!r}: give the id instead")
    return str(_first(rows[0]))


def list_restaurants(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return [dict(r) for r in queries.execute(conn, "accounts", "list_restaurants").fetchall()]


def link_restaurant(
    conn: psycopg.Connection[Any],
    restaurant_id: str,
    account_id: int,
    store_id: str,
    store_name: str | None = None,
) -> None:
    """Link a restaurant to an account's store, and give it default sync settings."""
    with conn.transaction():
        queries.execute(
            conn,
            "accounts",
            "link_restaurant",
            {
                "restaurant_id": restaurant_id,
                "account_id": account_id,
                "store_id": store_id,
                "store_name": store_name,
            },
        )
        queries.execute(conn, "accounts", "ensure_settings", {"restaurant_id": restaurant_id})
