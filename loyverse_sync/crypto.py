"""Tokens encrypted at rest, by the application.

Loyverse tokens are encrypted with Fernet (AES-128-CBC + HMAC-SHA256) before they reach
the database; the key never does (pgcrypto would put it in query text and logs, and the
embedded server lacks pgcrypto). Keys come from ``LOYVERSE_SYNC_KEY`` (one or more Fernet
keys, comma-separated, newest first) or the file named by ``LOYVERSE_SYNC_KEY_FILE``
(default ``$LOYVERSE_SYNC_HOME/key``; one key per line, newest first). Each ciphertext is
stored with the fingerprint of the key that made it, so a wrong key gives a clear error.
"""

from __future__ import annotations

import hashlib
import os
import pathlib

from cryptography import fernet

from loyverse_sync import config


class KeyError_(Exception):
    """No usable encryption key, or the configured keys cannot decrypt a token."""


def key_file() -> pathlib.Path:
    return pathlib.Path(
        os.environ.get("LOYVERSE_SYNC_KEY_FILE") or (config.home() / "key")
    ).expanduser()


def fingerprint(key: bytes) -> str:
    """A short, non-reversible name for a key (sha256 prefix), stored beside ciphertexts."""
    return hashlib.sha256(key).hexdigest()[:12]


def _parse(text: str, where: str) -> list[bytes]:
    keys = [k.strip().encode() for k in text.replace(",", "\n").splitlines() if k.strip()]
    for k in keys:
        try:
            fernet.Fernet(k)
        except ValueError:
            raise KeyError_(
                f"{where} holds something that is not a Fernet key "
                "(32 url-safe base64 bytes; make one with `loyverse-sync account rotate-key`)"
            ) from None
    return keys


def load_keys(*, create: bool = False) -> list[bytes]:
    """The configured keys, newest first. With `create`, make the default key file if no key
    is configured anywhere (mode 0600) — the first `account add` on a new machine."""
    env = os.environ.get("LOYVERSE_SYNC_KEY")
    if env:
        return _parse(env, "LOYVERSE_SYNC_KEY")
    path = key_file()
    if path.exists():
        return _parse(path.read_text(), str(path))
    if not create:
        raise KeyError_(
            f"no encryption key: set LOYVERSE_SYNC_KEY or LOYVERSE_SYNC_KEY_FILE (looked for {path})"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    key = fernet.Fernet.generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.decode() + "\n")
    return [key]


def encrypt(token: str, keys: list[bytes]) -> tuple[bytes, str]:
    """Encrypt with the newest key; returns (ciphertext, key fingerprint)."""
    return fernet.Fernet(keys[0]).encrypt(token.encode()), fingerprint(keys[0])


def decrypt(ciphertext: bytes, key_id: str, keys: list[bytes], *, account: str = "") -> str:
    by_id = {fingerprint(k): k for k in keys}
    key = by_id.get(key_id)
    if key is None:
        raise KeyError_(
            f"the token of account {account or '?'} was encrypted with key {key_id}, but the "
            f"configured keys are {', '.join(by_id) or 'none'}: is LOYVERSE_SYNC_KEY(_FILE) right?"
        )
    try:
        return fernet.Fernet(key).decrypt(bytes(ciphertext)).decode()
    except fernet.InvalidToken:
        raise KeyError_(
            f"the token of account {account or '?'} does not decrypt with key {key_id}: "
            "the stored ciphertext is damaged"
        ) from None


def new_key() -> bytes:
    return fernet.Fernet.generate_key()
