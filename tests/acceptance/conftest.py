from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest


@pytest.fixture
def run_cli(dsn, tmp_path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real `loyverse-sync` command in a subprocess against this test's database."""

    def run(
        *args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        full_env.update({"DATABASE_URL": dsn, "LOYVERSE_SYNC_HOME": str(tmp_path / "home")})
        full_env.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "loyverse_sync", *args],
            input=input,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run
