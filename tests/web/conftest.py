"""Fixtures of the HTTP server's tests: one stack (database, emulator, worker, server) per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.web import harness


@pytest.fixture(scope="module")
def stack(pg_server, tmp_path_factory) -> Iterator[harness.Stack]:
    with harness.stack(pg_server.template_dbname, str(tmp_path_factory.mktemp("home"))) as s:
        yield s
