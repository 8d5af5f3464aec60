"""Concurrency against gunicorn with 2 workers: duplicates settle once, balances never overdraw.

Traffic goes only to 127.0.0.1, bounded in count, with timeouts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from bench.serve import children
from tests.e2e.conftest import Server, post, provision

pytestmark = pytest.mark.e2e


class TotalWatcher:
    """Reads the sum of all balances over and over while traffic runs."""

    def __init__(self, server: Server) -> None:
        self.server, self.seen, self._stop = server, set[int](), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.seen.add(self.server.total_balance())
            time.sleep(0.005)

    def __enter__(self) -> TotalWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_same_sms_posted_20_times_concurrently_debits_once(
    server: Server, gateway: tuple[str, str], tmp_path: Path
) -> None:
    payer = provision(server, tmp_path, "+919700000001", "1234", 1000)
    provision(server, tmp_path, "+919700000002", "1234", 0)
    body = payer.pay("+919700000002", 12_345)
    total = server.total_balance()
    routes = ["twilio", "tasker"] * 10
    with TotalWatcher(server) as watch, ThreadPoolExecutor(max_workers=20) as pool:
        replies = list(pool.map(lambda r: post(server, gateway, r, payer.phone, body), routes))
    assert len(set(replies)) == 1, replies
    assert "Paid Rs 123.45" in replies[0]
    assert watch.seen == {total}
    listing = server.cli("transactions", "list", "--phone", "+919700000002")
    assert listing.count("transfer") == 1
    assert "Rs 876.55" in server.cli("wallet", "balance", "--phone", payer.phone)


def test_one_twilio_delivery_retried_10_times_at_once_pays_once(
    server: Server, gateway: tuple[str, str], tmp_path: Path
) -> None:
    """The same MessageSid ten times at once: the copies that meet the first's log record in
    its unique key are undone and run again, and answer what the first answered."""
    payer = provision(server, tmp_path, "+919700000003", "1234", 1000)
    provision(server, tmp_path, "+919700000004", "1234", 0)
    body, sid = payer.pay("+919700000004", 2_500), "SM" + "ef" * 16
    with ThreadPoolExecutor(max_workers=10) as pool:
        replies = list(pool.map(lambda _: post(server, gateway, "twilio", payer.phone, body, sid),
                                range(10)))  # fmt: skip
    assert len(set(replies)) == 1 and "Paid Rs 25.00" in replies[0], replies
    listing = server.cli("transactions", "list", "--phone", "+919700000004")
    assert listing.count("transfer") == 1
    assert "Rs 975.00" in server.cli("wallet", "balance", "--phone", payer.phone)


def test_50_concurrent_payments_exactly_10_covered(
    server: Server, gateway: tuple[str, str], tmp_path: Path
) -> None:
    # five payers with Rs 20 each send ten Rs 10 payments each (within the ten instructions a
    # minute a user may send): two of each payer's ten are covered
    payers = [provision(server, tmp_path, f"+91970000002{i}", "1234", 20) for i in range(5)]
    provision(server, tmp_path, "+919700000012", "1234", 0)
    jobs = [
        ("twilio" if i % 2 else "tasker", payer, payer.pay("+919700000012", 1_000))
        for payer in payers
        for i in range(10)
    ]
    total = server.total_balance()
    with TotalWatcher(server) as watch, ThreadPoolExecutor(max_workers=25) as pool:
        replies = list(pool.map(lambda j: post(server, gateway, j[0], j[1].phone, j[2]), jobs))
    paid = [r for r in replies if "Paid Rs 10.00" in r]
    refused = [r for r in replies if "failed: not enough balance" in r]
    assert (len(paid), len(refused)) == (10, 40), replies
    assert watch.seen == {total}
    for payer in payers:
        assert "Rs 0.00" in server.cli("wallet", "balance", "--phone", payer.phone)
    assert "Rs 100.00" in server.cli("wallet", "balance", "--phone", "+919700000012")


def worker_threads(master: int) -> dict[int, list[int]]:
    """gunicorn's worker processes and the ids of each one's threads, from /proc."""
    return {pid: [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()]
            for pid in children(master)}  # fmt: skip


def batch_policy_allowed() -> bool:
    """Whether a process may put itself under SCHED_BATCH here (a sandbox may refuse it; the
    workers then keep the default policy and log why)."""
    if not hasattr(os, "SCHED_BATCH"):
        return False
    probe = "import os; os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


@pytest.mark.skipif(not batch_policy_allowed(), reason="SCHED_BATCH: Linux, where permitted")
def test_every_thread_of_every_worker_runs_as_batch_work(server: Server) -> None:
    """gunicorn.conf.py's post_fork: a woken thread must not preempt the one that woke it
    (which usually holds its process's GIL); the threads a worker starts later inherit it."""
    deadline = time.monotonic() + 10
    while len(workers := worker_threads(server.gunicorn_pid)) < 2:  # both workers started
        assert time.monotonic() < deadline, workers
        time.sleep(0.1)
    policies = {tid: os.sched_getscheduler(tid) for threads in workers.values() for tid in threads}
    assert len(policies) > len(workers)  # the request threads too, not only the main ones
    assert set(policies.values()) == {os.SCHED_BATCH}
    assert os.sched_getscheduler(server.gunicorn_pid) != os.SCHED_BATCH  # the master keeps it


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity: Linux")
def test_each_worker_runs_on_a_core_of_its_own_when_there_is_one_a_worker(server: Server) -> None:
    """gunicorn.conf.py's pre_fork and post_fork: with as many workers as usable cores, every
    thread of a worker (the request threads too, made after the fork) runs on the worker's one
    core and no two workers share one; with more or fewer cores the kernel places them."""
    deadline = time.monotonic() + 10
    while len(workers := worker_threads(server.gunicorn_pid)) < 2:  # both workers started
        assert time.monotonic() < deadline, workers
        time.sleep(0.1)
    assert sum(len(tids) for tids in workers.values()) > len(workers)  # not only main threads
    usable = os.sched_getaffinity(server.gunicorn_pid)
    cores = {pid: {frozenset(os.sched_getaffinity(tid)) for tid in tids}
             for pid, tids in workers.items()}  # fmt: skip
    assert all(len(sets) == 1 for sets in cores.values()), cores  # one set for all its threads
    each = [next(iter(sets)) for sets in cores.values()]
    if len(usable) != len(workers):
        assert set(each) == {frozenset(usable)}, cores  # left to the kernel
        return
    assert all(len(one) == 1 for one in each), cores
    assert len(set(each)) == len(workers), cores  # no core shared
    # a worker that dies is replaced on the core it left
    victim, left = next((pid, next(iter(sets))) for pid, sets in cores.items())
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while True:
        new = set(children(server.gunicorn_pid)) - set(cores)
        if new and os.sched_getaffinity(next(iter(new))) == left:
            break
        assert time.monotonic() < deadline, (new, left)
        time.sleep(0.1)
    assert requests.get(server.url + "/healthz", timeout=5).status_code == 200
