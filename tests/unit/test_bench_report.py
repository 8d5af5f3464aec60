"""bench.load's table: a run's failed answers are shown under it, so a wrong count says why."""

from __future__ import annotations

from bench.load import Run, report
from sms import replies


def run(name: str, samples: tuple[str, ...] = ()) -> Run:
    return Run(
        name=name, requests=10, answered=10, acknowledged=10 - len(samples), not_200=0,
        bad_reply=len(samples), io_errors=0, seconds=1.0, rate=10.0, p50_ms=1.0, p95_ms=2.0,
        p99_ms=3.0, max_ms=4.0, server_cpu_ms=1.0, server_cores=1.0, client_cpu_ms=0.1,
        samples=samples, kind="pay", success_rows=10 - len(samples), other_rows=0, conserved=True,
    )  # fmt: skip


def test_the_failed_answers_of_each_run_are_listed_under_the_table() -> None:
    refused = f"200 {replies.REPLAYED.encode()[:60]!r}"  # as the client keeps a body
    text = report([run("PAY via tasker"), run("PAY, 1 payer", (refused,))], baseline=100.0)
    assert "answers that were not a success" in text
    assert f"  PAY, 1 payer: {refused}" in text.splitlines()
    assert not any(line.startswith("  PAY via tasker:") for line in text.splitlines())


def test_no_list_when_every_answer_was_a_success() -> None:
    assert "not a success" not in report([run("PAY via tasker")], baseline=100.0)
