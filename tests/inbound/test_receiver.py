"""The webhook receiver under uvicorn on a real socket: authentication, storage as received,
idempotency, refusals with 4xx and an audit row."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
import pytest

from loyverse_sync import crypto
from loyverse_sync.inbound import receiver
from tests.support import inbound as itesting

BODY = json.dumps({"merchant_id": None, "type": "items.update", "created_at": "2030-01-01T00:00:00Z",
                   "items": []}).encode()


@pytest.fixture
def account(conn, fernet_key):
    from loyverse_sync import accounts

    account_id = accounts.add_account(conn, name="acc", token="tok", base_url="http://127.0.0.1:9/v1.0")
    row = conn.execute("select url_secret from loyverse.inbound_settings_row(%s)", (account_id,)).fetchone()
    return account_id, row["url_secret"]


def rejected(conn):
    return [(r["account_id"], r["details"]["reason"]) for r in conn.execute(
        "select account_id, details from loyverse.loyverse_inbound_audit where decision = 'DELIVERY_REJECTED'"
        " order by id").fetchall()]


def inbox(conn):
    return conn.execute("select account_id, source, body, headers, status from loyverse.loyverse_inbox order by id"
                        ).fetchall()


def test_unsigned_deliveries_are_authenticated_by_the_url_secret(conn, dsn, account):
    account_id, secret = account
    with itesting.running_receiver(dsn) as url, httpx.Client(base_url=url) as http:
        ok = http.post(f"/loyverse/webhooks/{secret}", content=BODY, headers={"Content-Type": "application/json"})
        again = http.post(f"/loyverse/webhooks/{secret}", content=BODY)
        unknown = http.post("/loyverse/webhooks/" + "0" * 64, content=BODY)
        wrong_method = http.get(f"/loyverse/webhooks/{secret}")
        empty = http.post(f"/loyverse/webhooks/{secret}", content=b"")
        malformed = http.post(f"/loyverse/webhooks/{secret}", content=b"<html>not json")
    assert ok.status_code == 200 and ok.json()["duplicate"] is False
    assert again.status_code == 200 and again.json() == {"received": True, "inbox_id": None, "duplicate": True}
    assert unknown.status_code == 404 and unknown.json() == {"error": "unknown webhook URL"}
    assert wrong_method.status_code == 405
    assert empty.status_code == 400
    # stored as received (then refused, and failed by the apply job), never a traceback
    assert malformed.status_code == 400 and malformed.json()["inbox_id"] is not None
    rows = inbox(conn)
    assert [(r["account_id"], r["source"], bytes(r["body"])) for r in rows] == [
        (account_id, "webhook", BODY), (account_id, "webhook", b"<html>not json")]
    assert rows[0]["headers"]["content-type"] == "application/json"
    assert rejected(conn) == [(None, "unknown webhook URL"), (account_id, "empty body")]
    # the delivery woke the account's apply job
    assert conn.execute("select count(*) as n from procrastinate_jobs where task_name = 'apply_loyverse_inbox'"
                        " and queueing_lock = %s", (f"loyverse_inbox:{account_id}",)).fetchone()["n"] == 1


def test_an_oauth_account_needs_a_valid_signature(conn, dsn, account, fernet_key):
    account_id, secret = account
    ciphertext, key_id = crypto.encrypt("app-secret", [fernet_key])
    conn.execute("update loyverse.loyverse_inbound_settings set client_secret_ciphertext = %s,"
                 " client_secret_key_id = %s", (ciphertext, key_id))
    good = hmac.new(b"app-secret", BODY, hashlib.sha1).hexdigest()
    with itesting.running_receiver(dsn) as url, httpx.Client(base_url=url) as http:
        path = f"/loyverse/webhooks/{secret}"
        unsigned = http.post(path, content=BODY)
        forged = http.post(path, content=BODY, headers={"X-Loyverse-Signature": "0" * 40})
        tampered = http.post(path, content=BODY + b" ", headers={"X-Loyverse-Signature": good})
        signed = http.post(path, content=BODY, headers={"X-Loyverse-Signature": good})
    assert [unsigned.status_code, forged.status_code, tampered.status_code, signed.status_code] == [401, 401, 401, 200]
    assert [bytes(r["body"]) for r in inbox(conn)] == [BODY]
    assert rejected(conn) == [(account_id, "missing X-Loyverse-Signature"), (account_id, "bad X-Loyverse-Signature"),
                              (account_id, "bad X-Loyverse-Signature")]


def test_signatures_are_lowercase_hex_or_base64():
    import base64

    digest = hmac.new(b"k", b"body", hashlib.sha1).digest()
    assert receiver.signature_ok(b"body", "k", digest.hex())
    assert receiver.signature_ok(b"body", "k", digest.hex().upper())
    assert receiver.signature_ok(b"body", "k", base64.b64encode(digest).decode())
    assert not receiver.signature_ok(b"body", "k", None)
    assert not receiver.signature_ok(b"body", "other", digest.hex())


def test_an_oversized_body_is_refused(conn, dsn, account):
    account_id, secret = account
    with itesting.running_receiver(dsn, max_body=1000) as url:
        answer = httpx.post(f"{url}/loyverse/webhooks/{secret}", content=b"x" * 5000)
    assert answer.status_code == 413 and inbox(conn) == []
    assert rejected(conn) == [(account_id, "body larger than 1000 bytes")]
