"""The benchmark suite still runs: one case, quick mode, fullduplex and the raw ceiling.

Needs nothing beyond the test extra (uvloop, picows, Node and matplotlib are
optional for the suite); it takes a few seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_run_of_one_case(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--only",
            "echo-64x16-1KiB",
            "--servers",
            "fd-callback,fd-asyncio,raw",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (md,) = tmp_path.glob("results*.md")
    report = md.read_text()
    assert "echo-64x16-1KiB" in report
    for label in ("fullduplex (callbacks)", "fullduplex (asyncio)", "raw TCP (ceiling)"):
        row = next(line for line in report.splitlines() if line.startswith(f"| {label} |"))
        assert "error" not in row, row
