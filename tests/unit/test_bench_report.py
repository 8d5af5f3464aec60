"""bench.load's table: a run's failed answers are shown under it, so a wrong count says why; and
each figure the issue sets a target for is set against it."""

from __future__ import annotations

from dataclasses import replace

from bench.load import Run, report, targets
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


def test_each_sms_route_and_the_history_run_are_set_against_their_targets() -> None:
    fast = replace(run("PAY via tasker"), rate=1_300.0, p99_ms=45.0)
    slow = replace(run("PAY via twilio"), rate=1_300.0, p99_ms=120.0)  # p99 over 100 ms
    fresh = replace(run("PAY via tasker, 1 payer, no history"), rate=1_000.0)
    long = replace(run("PAY via tasker, 1 payer, 100k history"), rate=790.0)
    lines = targets([fast, slow, fresh, long], baseline=5_000.0)
    assert len(lines) == 3  # the one-payer runs are not routes of their own
    assert "ratio 0.260 (>= 0.25): met" in lines[0]
    assert lines[1].endswith("not met")
    assert "0.79 (>= 0.80): not met" in lines[2]
    assert targets([fast], baseline=5_400.0)[0].endswith("ratio 0.241 (>= 0.25): not met")
    kept = targets([fresh, replace(long, rate=800.0)], baseline=5_000.0)
    assert len(kept) == 1 and kept[0].endswith(" 0.80 (>= 0.80): met")  # 20 % slower at most
    assert "against the targets" in report([fast], baseline=5_000.0)
