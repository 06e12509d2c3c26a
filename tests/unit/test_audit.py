"""The actor label that reaches loyverse.actor through libpq options."""

from __future__ import annotations

from loyverse_sync import audit


def test_an_actor_with_spaces_and_quotes_becomes_one_safe_word():
    assert audit.clean("cli:Jane O'Neil \\ x") == "cli:Jane_O_Neil___x"
    assert len(audit.clean("x" * 500)) == 200


def test_use_for_process_sets_pgoptions_once(monkeypatch):
    monkeypatch.setenv("PGOPTIONS", "-c statement_timeout=5s")
    audit.use_for_process("cli:a")
    audit.use_for_process("worker:b")
    assert audit.os_user()
    import os

    assert os.environ["PGOPTIONS"] == "-c statement_timeout=5s -c loyverse.actor=worker:b"
