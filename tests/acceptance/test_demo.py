"""The README's first command, as CI runs it: the whole story ends with every price matching."""

from __future__ import annotations

import re

import pytest


@pytest.mark.slow
def test_the_demo_runs_to_all_prices_match(run_cli):
    result = run_cli("demo", "--items", "40", "--quiet", timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    match = re.search(r"(\d+) of (\d+) prices match", result.stdout)
    assert match and match.group(1) == match.group(2) and int(match.group(2)) > 0, result.stdout[-2000:]
    for step in ("Database", "Migrate", "Loyverse emulator", "Account and restaurants", "Menu import",
                 "Worker", "The main app changes prices", "The queue drains", "Compare"):
        assert step in result.stdout
