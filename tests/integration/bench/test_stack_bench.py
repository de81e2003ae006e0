"""``bench/stack.py`` works end to end in a tiny mode: it starts a real ``keyless serve``
(``--workers 1``), drives the Rekor v2, CA and TSA phases, checks every acknowledged log entry
against its checkpoint and the final tiles and the sampled certificates and timestamps, and
prints the table the README takes. Only that it works is asserted, never how fast.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.integration


def test_stack_bench_tiny_run_checks_everything_and_prints_the_table() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "stack.py"), "--workers", "1", "--entries", "40",
         "--clients", "1", "--rekor-concurrency", "4", "--ca-concurrency", "4",
         "--tsa-concurrency", "4"],
        capture_output=True, text=True, timeout=240, check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    # 40 timed + 200 warm-up entries, each verified, each found in the tiles
    assert "every acknowledged entry checked (240:" in out
    assert "240 found in the final checkpoint's tiles" in out
    assert "sampled certificates chain to the stack's CA" in out
    assert "sampled timestamps verified with rfc3161-client" in out
    assert "| service | `--workers 1` | target |" in out
    for row in ("| Rekor v2 verified entries | ", "| CA certificates | ", "| TSA timestamps | "):
        assert row in out
    assert "errors" not in out.split("| service |", 1)[1]
