"""`account rotate-key --drop-old` re-encrypts every ciphertext: after it, only the new key is on
disk, a signed webhook delivery still verifies (the OAuth app's client secret was re-encrypted)
and every token and OAuth secret still decrypts."""

from __future__ import annotations

import decimal
import os
import subprocess
import sys

from loyverse_emulator import server
from loyverse_sync import accounts, crypto, db, key_rotation, oauth
from tests.support import inbound as itesting
from tests.support import pricesync as testing

D = decimal.Decimal


def cli(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"DATABASE_URL": dsn}
    return subprocess.run([sys.executable, "-m", "loyverse_sync", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def key_ids(conn) -> set[str]:
    """The fingerprints of every stored ciphertext's key."""
    rows = conn.execute("select token_key_id as k from loyverse.loyverse_accounts"
                        " union all select client_secret_key_id from loyverse.loyverse_inbound_settings"
                        " where client_secret_key_id is not null").fetchall()
    return {r["k"] for r in rows}


def test_rotate_key_drop_old_keeps_webhooks_verified_and_tokens_readable(conn, dsn, fernet_key, tmp_path,
                                                                           monkeypatch):
    # the key in a file (rotate-key rewrites it), not in the environment
    key_file = tmp_path / "key"
    key_rotation.write_key_file(key_file, [fernet_key])
    monkeypatch.delenv("LOYVERSE_SYNC_KEY")
    monkeypatch.setenv("LOYVERSE_SYNC_KEY_FILE", str(key_file))
    with server.EmulatorServer(menu=3, seed=3, stores=1) as emu, emu.admin() as adm:
        seed = testing.seed_from_emulator(conn, emu, stores=1, settings={"sync_direction": "FROM_LOYVERSE"})
        token = emu.merchants[0]["tokens"][0]
        oauth_id = oauth.add_oauth_account(conn, name="oauth-shop", client_id="cid", client_secret="the-cs",
                                           refresh_token="the-rt", access_token="the-at",
                                           base_url="http://127.0.0.1:9/v1.0")
        adm.mark_oauth(token, "the-app-secret")  # the account's token is an OAuth app's: deliveries are signed
        monkeypatch.setenv("H7_CLIENT_SECRET", "the-app-secret")
        with itesting.running_receiver(dsn) as url:
            done = cli(dsn, "account", "subscribe", str(seed.account_id), "--url", url, "--allow-http",
                       "--client-secret-env", "H7_CLIENT_SECRET")
            assert done.returncode == 0 and "(signed)" in done.stdout, done.stderr
            assert key_ids(conn) == {crypto.fingerprint(fernet_key)}

            rotated = cli(dsn, "account", "rotate-key", "--drop-old")
            assert rotated.returncode == 0, rotated.stderr
            assert "re-encrypted 2 token(s) and 1 webhook signing secret(s)" in rotated.stdout
            new_keys = crypto.load_keys()
            assert len(new_keys) == 1 and new_keys[0] != fernet_key  # the old key is gone from disk
            assert key_ids(conn) == {crypto.fingerprint(new_keys[0])}

            # a signed delivery after the rotation verifies and is applied
            (variant_id, store_id), product_id = sorted(seed.products.items())[0]
            with itesting.running_worker(dsn):
                adm.set_price(variant_id, store_id, 7.77, merchant_id=seed.merchant_id)
                itesting.wait_for(lambda: conn.execute("select price from public.products where id = %s",
                                                       (product_id,)).fetchone()["price"] == D("7.77"),
                                  what="the signed delivery applied after the rotation")
            # logged by the emulator once our answer reached it: possibly after the apply
            deliveries = itesting.wait_for(adm.webhook_deliveries, what="the delivery in the emulator's log")
    assert [(d["signed"], d["status"]) for d in deliveries] == [(True, 200)]
    assert conn.execute("select count(*) as n from loyverse.loyverse_inbound_audit"
                        " where decision = 'DELIVERY_REJECTED'").fetchone()["n"] == 0
    # every token and OAuth secret decrypts with the new key alone
    with db.connect(dsn) as fresh:
        assert accounts.get_account(fresh, seed.account_id).token == token
        assert accounts.get_account(fresh, oauth_id).token == "the-at"
        row = fresh.execute("select name, oauth_ciphertext, token_key_id from loyverse.loyverse_accounts where id = %s",
                            (oauth_id,)).fetchone()
        assert oauth._open_secrets(dict(row), crypto.load_keys()) == ("the-cs", "the-rt")
