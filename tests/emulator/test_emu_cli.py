"""The `emulator` click group: serve as a subprocess, script it with the other commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner

from loyverse_emulator import server
from loyverse_sync.cli.emulator import emulator


@pytest.fixture
def served() -> Iterator[tuple[str, str]]:
    code = "from loyverse_sync.cli.emulator import emulator; emulator()"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "serve",
            "--port",
            "0",
            "--token",
            "cli-token",
            "--menu",
            "5",
            "--time-scale",
            "100",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None and proc.stderr is not None
    base = admin_url = ""
    deadline = time.monotonic() + 20
    lines = []
    while time.monotonic() < deadline and not admin_url:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("base URL:"):
            base = line.split()[-1]
        if line.startswith("admin URL:"):
            admin_url = line.split()[-1]
    try:
        assert base and admin_url, "".join(lines)
        yield base, admin_url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == 0


def test_serve_answers_and_prints_merchants(served: tuple[str, str]) -> None:
    base, _admin = served
    response = httpx.get(f"{base}/items", headers={"Authorization": "Bearer cli-token"})
    assert response.status_code == 200 and len(response.json()["items"]) <= 5


def test_script_commands_against_running_emulator() -> None:
    runner = CliRunner()
    with server.EmulatorServer(port=0, menu=3, token="t") as emu:
        result = runner.invoke(
            emulator,
            ["faults", "--url", emu.admin_url, "--fail-next", "1", "--fail-next-kind", "429"],
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["fail_next"] == 1
        assert (
            httpx.get(
                f"{emu.base_url}/merchant/", headers={"Authorization": "Bearer t"}
            ).status_code
            == 429
        )
        result = runner.invoke(
            emulator,
            ["modes", "--url", emu.admin_url, "--stores-merge", "replace", "--retry-after", "3"],
        )
        assert result.exit_code == 0 and json.loads(result.output)["stores_merge"] == "replace"
        result = runner.invoke(emulator, ["requests", "--url", emu.admin_url])
        assert result.exit_code == 0 and "GET    /v1.0/merchant/ -> 429" in result.output
        result = runner.invoke(
            emulator,
            ["state", "--url", emu.admin_url, "--merchant", emu.merchants[0]["merchant_id"]],
        )
        assert (
            result.exit_code == 0
            and len(next(iter(json.loads(result.output).values()))["items"]) == 3
        )
        result = runner.invoke(
            emulator, ["faults", "--url", emu.admin_url, "--merchant", "nope", "--clear"]
        )
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--menu", "lots"],
        ["serve", "--time-scale", "0"],
        ["faults", "--url", "http://x", "--p500", "3"],
        ["modes"],
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str]) -> None:
    result = CliRunner().invoke(emulator, args)
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1 and result.output.startswith("Error:")
