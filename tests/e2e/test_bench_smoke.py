"""The load benchmark (`make bench`), very small: it runs, and its counts are right.

No timing is asserted: the figures depend on the machine. What must hold on any machine: every
request is answered, every PAY acknowledged as paid is one SUCCESS transaction in the store (and
nothing else was written), a BAL writes none, and the money is where it was.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e


def test_the_benchmark_runs_and_its_counts_are_right(tmp_path: Path) -> None:
    out = tmp_path / "runs.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSPAY_")}
    result = subprocess.run(
        [sys.executable, "-m", "bench.load", "--requests", "30", "--minimal-requests", "200",
         "--connections", "4", "--payers", "4", "--bal", "--long-history", "--history", "300",
         "--history-today", "100", "--seconds", "60", "--dir", str(tmp_path / "run"),
         "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    runs = json.loads(out.read_text())
    assert [r["kind"] for r in runs] == ["minimal", "pay", "pay", "bal", "pay", "pay", "minimal"]
    for r in runs:
        assert r["answered"] == r["requests"] == r["acknowledged"], r
        assert r["not_200"] == r["bad_reply"] == r["io_errors"] == 0, r
        assert r["counts_right"], r
        if r["kind"] == "pay":
            assert r["success_rows"] == r["acknowledged"] == 30 and r["other_rows"] == 0, r
            assert r["conserved"], r
        if r["kind"] == "bal":
            assert r["success_rows"] == r["other_rows"] == 0 and r["conserved"], r
    assert "PAY via twilio" in result.stdout and "ratio" in result.stdout
    assert "against the targets" in result.stdout
