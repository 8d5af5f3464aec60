"""bench/compare.py: pairs of runs of two revisions, figure by figure, and each pair's ratio."""

from __future__ import annotations

from typing import Any

from bench.compare import figures, table


def run(name: str, rate: float, units: int = 0, held: float = 0.0, **kw: Any) -> dict[str, Any]:
    lock = {"smspay_store_batch_units_total": units,
            "smspay_store_write_lock_held_seconds_total": held}  # fmt: skip
    return {"name": name, "rate": rate, "p99_ms": kw.get("p99", 100.0),
            "server_cpu_ms": kw.get("cpu", 2.0), "lock": lock, "kind": "pay"}  # fmt: skip


def test_the_lock_figure_is_ms_held_per_unit_of_work() -> None:
    assert figures(run("PAY", 500, units=4000, held=8.0))["held_ms"] == 2.0
    assert figures(run("BAL", 900))["held_ms"] == 0  # no unit counted: no figure


def test_each_pair_is_compared_and_the_median_of_the_pairs_printed() -> None:
    base = [[run("PAY via tasker", 400, p99=150)], [run("PAY via tasker", 500, p99=120)]]
    this = [[run("PAY via tasker", 480, p99=120)], [run("PAY via tasker", 550, p99=120)]]
    lines = table(base, this).splitlines()
    assert lines[0] == "PAY via tasker"
    rate = next(line for line in lines if "req/s" in line)
    assert "REV 400 500" in rate and "this 480 550" in rate
    assert "this/REV 1.20 1.10" in rate and rate.endswith("median 1.15")
    p99 = next(line for line in lines if "p99" in line)
    assert "this/REV 0.80 1.00" in p99 and p99.endswith("median 0.90")
