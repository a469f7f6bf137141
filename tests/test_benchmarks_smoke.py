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


@pytest.mark.slow
def test_c_handshake_client_counts_handshakes_against_a_real_server() -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks import loadgen
    finally:
        sys.path.remove(str(ROOT))
    if loadgen.hsload_binary() is None:
        pytest.skip("no C compiler: the suite uses its Python handshake client")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.servers", "fd-callback"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("PORT "), line
        port = int(line.split()[1])
        result = subprocess.run(
            [
                str(loadgen.hsload_binary()),
                str(port),
                "4",
                "0.05",
                "0.3",
                loadgen.request("/hs", port).hex(),
                loadgen.CLOSE_FRAME.hex(),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        assert server.stdin is not None and server.stdout is not None
        server.stdin.close()
        server.wait(timeout=30)
        server.stdout.close()
    assert result.returncode == 0, result.stderr
    start, end = result.stdout.splitlines()
    assert start == "START"
    _, done, seconds, bad = end.split()
    assert int(done) > 0 and int(bad) == 0 and float(seconds) > 0
