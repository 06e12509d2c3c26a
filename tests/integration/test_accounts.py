"""Tokens are encrypted at rest: no plaintext anywhere in the database; a wrong key is a clear error."""

from __future__ import annotations

import pytest

from loyverse_sync import accounts, crypto, key_rotation
from tests import pgtools

TOKEN = "lv-secret-token-3f9a0c1e7b2d4a68"


def test_the_token_appears_nowhere_in_a_dump_of_the_database(conn, dsn, fernet_key):
    account_id = accounts.add_account(
        conn, name="Café Nord", token=TOKEN, base_url="http://127.0.0.1:1/v1.0"
    )
    dump = pgtools.pg_dump(dsn, "--data-only")
    assert "Café Nord" in dump
    assert TOKEN not in dump
    assert TOKEN.encode().hex() not in dump
    assert accounts.get_account(conn, account_id).token == TOKEN


def test_account_repr_never_shows_the_token(conn, fernet_key):
    account_id = accounts.add_account(conn, name="a", token=TOKEN)
    account = accounts.get_account(conn, account_id)
    assert TOKEN not in repr(account) and TOKEN not in str(account)


def test_a_wrong_key_is_a_clear_error_not_garbage(conn, fernet_key, monkeypatch):
    accounts.add_account(conn, name="Nord", token=TOKEN)
    monkeypatch.setenv("LOYVERSE_SYNC_KEY", crypto.new_key().decode())
    with pytest.raises(
        crypto.KeyError_,
        match=r"account Nord was encrypted with key [0-9a-f]{12}, but the configured keys are",
    ):
        accounts.get_account(conn, "Nord")


def test_a_malformed_key_is_named(monkeypatch):
    monkeypatch.setenv("LOYVERSE_SYNC_KEY", "not-a-key")
    with pytest.raises(
        crypto.KeyError_, match="LOYVERSE_SYNC_KEY holds something that is not a Fernet key"
    ):
        crypto.load_keys()


def test_rotating_the_key_re_encrypts_every_token(conn, fernet_key, monkeypatch):
    ids = [accounts.add_account(conn, name=f"a{i}", token=f"{TOKEN}-{i}") for i in range(3)]
    new = crypto.new_key()
    assert key_rotation.rotate_key(conn, old_keys=[fernet_key], new_key=new) == 3
    monkeypatch.setenv("LOYVERSE_SYNC_KEY", new.decode())
    assert [accounts.get_account(conn, i).token for i in ids] == [f"{TOKEN}-{i}" for i in range(3)]
    key_ids = {
        r["token_key_id"] for r in conn.execute("select token_key_id from loyverse.loyverse_accounts")
    }
    assert key_ids == {crypto.fingerprint(new)}


def test_rotation_with_the_wrong_old_key_changes_nothing(conn, fernet_key):
    accounts.add_account(conn, name="a", token=TOKEN)
    before = conn.execute("select token_ciphertext from loyverse.loyverse_accounts").fetchone()
    with pytest.raises(crypto.KeyError_):
        key_rotation.rotate_key(conn, old_keys=[crypto.new_key()], new_key=crypto.new_key())
    assert conn.execute("select token_ciphertext from loyverse.loyverse_accounts").fetchone() == before


def test_restaurants_resolve_by_id_or_name_and_link_with_default_settings(conn, fernet_key):
    account_id = accounts.add_account(conn, name="acct", token=TOKEN)
    rid = accounts.add_restaurant(conn, "Nord")
    assert (
        accounts.resolve_restaurant_id(conn, "Nord")
        == rid
        == accounts.resolve_restaurant_id(conn, rid)
    )
    with pytest.raises(accounts.NotFound, match="no restaurant 'Sud'"):
        accounts.resolve_restaurant_id(conn, "Sud")
    accounts.link_restaurant(conn, rid, account_id, "store-1", "Main")
    settings = conn.execute(
        "select enabled, sync_direction, sync_frequency from loyverse.loyverse_price_sync_settings"
    ).fetchone()
    assert settings == {
        "enabled": True,
        "sync_direction": "TO_LOYVERSE",
        "sync_frequency": "REALTIME",
    }
    listed = accounts.list_restaurants(conn)
    assert listed[0]["store_id"] == "store-1" and listed[0]["account_name"] == "acct"
