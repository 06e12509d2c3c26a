"""bench/run --smoke: every benchmark still runs (its figures are not judged here)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import server_conninfo

ROOT = Path(__file__).resolve().parents[2]

# The quick ones; the heavier smoke runs (chaos, many accounts, import curve) are covered by
# their own tests in tests/chaos and tests/integration.
QUICK = ["emulator_throughput", "price_sync_requests", "claim_latency", "rate_budget", "sync_latency", "queue_scale"]


@pytest.mark.slow
def test_bench_run_smoke_mode_runs_every_quick_benchmark(tmp_path):
    only = QUICK + (["trigger_overhead", "trigger_cost_pieces"] if shutil.which("pgbench") else [])
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run"), "--smoke", "--only", ",".join(only), "--output", str(tmp_path / "b.md")],
        env={"LOYVERSE_SYNC_BENCH_ADMIN": server_conninfo("postgres"), "PATH": "/usr/bin:/bin:/usr/local/bin",
             "HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=400, check=False, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    report = (tmp_path / "b.md").read_text()
    for name in only:
        assert f"## {name}" in report and "FAILED" not in report
