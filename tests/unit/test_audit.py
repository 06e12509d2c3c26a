"""The actor label that reaches loyverse.actor through libpq options."""

from __future__ import annotations

from psycopg import conninfo

from loyverse_sync import audit


def test_an_actor_with_spaces_and_quotes_becomes_one_safe_word():
    assert audit.clean("cli:Jane O'Neil \\ x") == "cli:Jane_O_Neil___x"
    assert len(audit.clean("x" * 500)) == 200


def test_conninfo_as_keeps_other_options_and_replaces_an_earlier_actor():
    first = audit.conninfo_as("host=h dbname=d options='-c jit=off'", "api-key:a")
    second = audit.conninfo_as(first, "console:b")
    options = conninfo.conninfo_to_dict(second)["options"]
    assert "-c jit=off" in options
    assert "loyverse.actor=console:b" in options and "api-key:a" not in options
    leading = conninfo.conninfo_to_dict(audit.conninfo_as("options='-c loyverse.actor=x -c jit=off'", "y"))["options"]
    assert leading == "-c jit=off -c loyverse.actor=y"


def test_use_for_process_sets_pgoptions_once(monkeypatch):
    monkeypatch.setenv("PGOPTIONS", "-c statement_timeout=5s")
    audit.use_for_process("cli:a")
    audit.use_for_process("worker:b")
    assert audit.os_user()
    import os

    assert os.environ["PGOPTIONS"] == "-c statement_timeout=5s -c loyverse.actor=worker:b"
