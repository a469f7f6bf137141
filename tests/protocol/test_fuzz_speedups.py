"""A short fuzzing run of the C accelerator under AddressSanitizer (fuzzing/run.sh).

Longer runs: ``fuzzing/run.sh 1800``. This one only proves the harness builds and
finds nothing in half a minute; it skips, saying why, where it cannot be built.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "fuzzing" / "run.sh"
SECONDS = int(os.environ.get("FULLDUPLEX_FUZZ_SECONDS", "25"))


@pytest.mark.slow
@pytest.mark.timeout(SECONDS + 240)
def test_short_fuzz_run_finds_nothing(tmp_path: Path) -> None:
    if sys.platform != "linux":
        pytest.skip("the fuzzer needs Linux (LD_PRELOAD of the ASan runtime)")
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        # A private build and corpus, so a long run in fuzzing/build is not disturbed.
        "FULLDUPLEX_FUZZ_BUILD": str(tmp_path),
    }
    result = subprocess.run(
        ["bash", str(RUN), str(SECONDS), "-seed=1"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=SECONDS + 200,
        check=False,
    )
    output = result.stdout + result.stderr
    if result.returncode == 3:
        pytest.skip(output.strip().splitlines()[-1])
    assert result.returncode == 0, output[-6000:]
    runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", output)
    assert runs is not None, output[-3000:]
    assert int(runs.group(1)) > 1000
    assert "AddressSanitizer" not in output
    if "C coverage" in output:
        # Guided, not blind: libFuzzer saw new branches and grew its corpus.
        added = re.search(r"stat::new_units_added:\s*(\d+)", output)
        assert added is not None and int(added.group(1)) > 10, output[-3000:]
