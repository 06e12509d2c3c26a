"""Key rotation: every ciphertext at rest (account tokens, OAuth secrets, webhook signing
secrets) re-encrypted under a new key in one transaction, and the key file written safely.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import psycopg

from loyverse_sync import crypto, queries


@dataclasses.dataclass(frozen=True)
class Rotation:
    """What `rotate_key` re-encrypted."""

    #: accounts: each one's token, and an OAuth account's client secret + refresh token
    accounts: int
    #: webhook signing secrets (an OAuth app's client secret, loyverse_inbound_settings)
    webhook_secrets: int


def rotate_key(conn: psycopg.Connection[Any], *, old_keys: list[bytes], new_key: bytes) -> int:
    """Re-encrypt every ciphertext with `new_key` (see `rotate_all`); returns how many accounts."""
    return rotate_all(conn, old_keys=old_keys, new_key=new_key).accounts


def rotate_all(conn: psycopg.Connection[Any], *, old_keys: list[bytes], new_key: bytes) -> Rotation:
    """Re-encrypt every ciphertext with `new_key` in one transaction: the accounts' tokens, an
    OAuth account's client secret and refresh token, and the webhook signing secrets.

    Fails without changing anything if any of them cannot be decrypted with `old_keys`.
    """
    # The new key too: the CLI writes it to the key file before this transaction, and an
    # OAuth refresh or a `subscribe` committed in between stored its ciphertext under it.
    readable = [*old_keys, new_key]
    with conn.transaction():
        rows = queries.execute(conn, "accounts", "all_ciphertexts_for_update").fetchall()
        updated = 0
        for r in rows:
            rd = dict(r)
            token = crypto.decrypt(
                rd["token_ciphertext"], rd["token_key_id"], readable, account=rd["name"]
            )
            ciphertext, key_id = crypto.encrypt(token, [new_key])
            oauth_ciphertext = None
            if rd["oauth_ciphertext"] is not None:  # an OAuth account's client secret + refresh token
                secrets = crypto.decrypt(
                    rd["oauth_ciphertext"], rd["token_key_id"], readable, account=rd["name"]
                )
                oauth_ciphertext, _ = crypto.encrypt(secrets, [new_key])
            queries.execute(
                conn,
                "accounts",
                "set_ciphertext",
                {"id": rd["id"], "token_ciphertext": ciphertext, "token_key_id": key_id,
                 "oauth_ciphertext": oauth_ciphertext},
            )
            updated += 1
        # Webhook signing secrets: with --drop-old, a secret left under the old key would make
        # the receiver answer 503 to every signed delivery of the account.
        hooks = queries.execute(conn, "accounts", "inbound_ciphertexts_for_update").fetchall()
        for r in hooks:
            rd = dict(r)
            secret = crypto.decrypt(
                rd["client_secret_ciphertext"], rd["client_secret_key_id"], readable,
                account=f"{rd['name']} (webhook signing secret)",
            )
            ciphertext, key_id = crypto.encrypt(secret, [new_key])
            queries.execute(
                conn,
                "accounts",
                "set_inbound_ciphertext",
                {"account_id": rd["account_id"], "ciphertext": ciphertext, "key_id": key_id},
            )
    return Rotation(accounts=updated, webhook_secrets=len(hooks))


def write_key_file(path: pathlib.Path, keys: list[bytes]) -> None:
    """Write keys (newest first) to `path` with mode 0600, replacing it atomically."""
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("".join(k.decode() + "\n" for k in keys))
    os.replace(tmp, path)
