"""API keys of `loyverse-sync serve`: made here (random, shown once), stored as SHA-256
by loyverse.create_api_key, looked up by hash (loyverse.api_key_lookup)."""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from typing import Any

import psycopg

from loyverse_sync import queries

PREFIX = "lvs_"


@dataclasses.dataclass(frozen=True)
class Key:
    """A live key: who it is and what it reaches."""

    id: int
    name: str
    restaurant_id: str | None
    is_admin: bool

    def may_reach(self, restaurant_id: str) -> bool:
        return self.is_admin or self.restaurant_id == restaurant_id


def new_key() -> str:
    """A new key: 256 random bits, URL-safe."""
    return PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def create(conn: psycopg.Connection[Any], name: str, *, restaurant_id: str | None, admin: bool) -> str:
    """Register a new key and return it (the only time it is visible)."""
    key = new_key()
    queries.execute(conn, "api", "create_key", {"name": name, "hash": digest(key),
                                                "restaurant_id": restaurant_id, "admin": admin})
    return key


def revoke(conn: psycopg.Connection[Any], name: str) -> bool:
    row = queries.execute(conn, "api", "revoke_key", {"name": name}).fetchone()
    return bool(row and row["revoked"])


def lookup_hash(conn: psycopg.Connection[Any], key_hash: bytes) -> Key | None:
    row = queries.execute(conn, "api", "lookup_key", {"hash": key_hash}).fetchone()
    if row is None:
        return None
    rid = row["restaurant_id"]
    return Key(int(row["key_id"]), row["name"], None if rid is None else str(rid), bool(row["is_admin"]))


def lookup(conn: psycopg.Connection[Any], key: str) -> Key | None:
    """The live key, or None (unknown or revoked)."""
    if not key or len(key) > 200:
        return None
    return lookup_hash(conn, digest(key))


def list_keys(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return [dict(r) for r in queries.execute(conn, "api", "list_keys")]
