"""The README's first command, as CI runs it: the whole story ends with every price matching.

One run with --keep-running (the README's second form) also proves what a newcomer reads:
the numbers the demo prints add up, the worker's log is not empty, and the connect lines it
prints work pasted into a shell that has neither the venv on its PATH nor the demo's
environment."""

from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest


@pytest.mark.slow
def test_the_demo_runs_to_all_prices_match(dsn, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update({"DATABASE_URL": dsn, "LOYVERSE_SYNC_HOME": str(tmp_path / "home")})
    out_path = tmp_path / "demo.out"
    with out_path.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "loyverse_sync", "demo", "--items", "40", "--quiet",
                                 "--keep-running"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while "worker log" not in out_path.read_text():
            assert proc.poll() is None, out_path.read_text()[-3000:]
            assert time.monotonic() < deadline, out_path.read_text()[-3000:]
            time.sleep(0.2)
        stdout = out_path.read_text()
        match = re.search(r"(\d+) of (\d+) prices match", stdout)
        assert match and match.group(1) == match.group(2) and int(match.group(2)) > 0, stdout[-2000:]
        for step in ("Database", "Migrate", "Loyverse emulator", "Account and restaurants", "Menu import",
                     "Worker", "The main app changes prices", "The queue drains", "Compare"):
            assert step in stdout

        # the numbers add up where they are printed
        flat = " ".join(stdout.split())
        mapped = re.search(r"(\d+) products are mapped to Loyverse variants(?:; (\d+) of them have a price"
                           r" entered at the counter)?", flat)
        assert mapped, flat[-3000:]
        assert int(mapped.group(1)) - int(mapped.group(2) or 0) == int(match.group(2))
        changed = re.search(r"(\d+) products of .+? updated in one statement; (\d+) price changes queued"
                            r"(?: \((\d+) kept their price)?", flat)
        assert changed, flat[-3000:]
        assert int(changed.group(1)) == int(changed.group(2)) + int(changed.group(3) or 0)
        # the worker runs meanwhile: the first queue line shows what it has not claimed yet
        first = re.search(r"queue: (\d+) pending, (\d+) in flight", flat[changed.end():])
        assert first and int(first.group(1)) + int(first.group(2)) <= int(changed.group(2)), flat[changed.end():][:500]

        log = pathlib.Path(re.search(r"worker log +(\S+)", stdout).group(1))
        assert "worker starting" in log.read_text()

        # the printed lines, pasted into a bare shell
        bare = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
        line = re.search(r"^ +sync status +(.+)$", stdout, re.M).group(1)
        status = subprocess.run(["bash", "-c", line], env=bare, capture_output=True, text=True, timeout=60)
        assert status.returncode == 0 and "RESTAURANT" in status.stdout and "100%" in status.stdout, status
        line = re.search(r"^ +dashboard +(.+)$", stdout, re.M).group(1)
        frame = subprocess.run(["bash", "-c", line + " --once --width 120"], env=bare, capture_output=True,
                               text=True, timeout=60)
        assert frame.returncode == 0 and "loyverse-sync dashboard" in frame.stdout, frame
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    assert rc == 0 and "Demo finished" in out_path.read_text()
