"""gunicorn.conf.py's choice of a core for each worker (pre_fork, in the master)."""

from __future__ import annotations

import os
import runpy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

CONF = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"


@pytest.fixture
def conf(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """The config's namespace, loaded as gunicorn loads it (its metrics directory chosen here,
    so loading it makes none)."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.delenv("WEB_PIN_CPUS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cores: None, raising=False)
    return runpy.run_path(str(CONF))


class Master:
    """The part of gunicorn's arbiter that pre_fork reads: the workers wanted, the live ones."""

    def __init__(self, num_workers: int) -> None:
        self.num_workers = num_workers
        self.WORKERS: dict[int, Any] = {}
        self._pid = 100

    def spawn(self, conf: dict[str, Any]) -> Any:
        """A worker as the arbiter makes one: pre_fork, then it is counted among the live."""
        worker = SimpleNamespace()
        conf["pre_fork"](self, worker)
        self._pid += 1
        self.WORKERS[self._pid] = worker
        return worker


def test_each_worker_gets_a_core_of_its_own(conf: dict[str, Any]) -> None:
    master = Master(2)
    assert [master.spawn(conf).cpu for _ in range(2)] == [0, 1]


def test_a_worker_that_replaces_a_dead_one_takes_its_core(conf: dict[str, Any]) -> None:
    master = Master(2)
    master.spawn(conf), master.spawn(conf)
    dead = next(pid for pid, w in master.WORKERS.items() if w.cpu == 0)
    del master.WORKERS[dead]
    assert master.spawn(conf).cpu == 0
    assert sorted(w.cpu for w in master.WORKERS.values()) == [0, 1]


def test_during_a_reload_the_new_workers_spread_over_the_cores(conf: dict[str, Any]) -> None:
    master = Master(2)
    old = [master.spawn(conf), master.spawn(conf)]
    new = [master.spawn(conf), master.spawn(conf)]  # started before the old ones stop
    assert sorted(w.cpu for w in new) == [0, 1]
    for pid in [pid for pid, w in master.WORKERS.items() if any(w is o for o in old)]:
        del master.WORKERS[pid]
    assert sorted(w.cpu for w in master.WORKERS.values()) == [0, 1]


def test_more_workers_than_cores_are_left_to_the_kernel(conf: dict[str, Any]) -> None:
    master = Master(3)
    assert [master.spawn(conf).cpu for _ in range(3)] == [None, None, None]


def test_the_cores_allowed_are_the_ones_used(
    conf: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 5})  # a container's cpuset
    master = Master(2)
    assert [master.spawn(conf).cpu for _ in range(2)] == [3, 5]


def test_fewer_workers_than_cores_are_left_to_the_kernel(
    conf: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host of many cores may run other services, or this one under a CPU quota: pinning
    every such instance's workers to the first cores would crowd them there."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    master = Master(2)
    assert [master.spawn(conf).cpu for _ in range(2)] == [None, None]


def test_one_core_pins_nothing(conf: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert Master(1).spawn(conf).cpu is None


def test_turned_off(conf: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_PIN_CPUS", "0")
    master = Master(2)
    assert [master.spawn(conf).cpu for _ in range(2)] == [None, None]


def fork_one(conf: dict[str, Any]) -> tuple[Any, list[str]]:
    """A worker chosen a core by pre_fork, then its post_fork run; what it logged."""
    master = Master(2)
    worker = master.spawn(conf)
    worker.pid = 4242
    said: list[str] = []

    def say(msg: str, *args: object) -> None:
        said.append(msg % args)

    master.log = SimpleNamespace(info=say, warning=say)
    conf["post_fork"](master, worker)
    return worker, said


def test_post_fork_pins_the_worker_to_its_core(
    conf: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned: list[tuple[int, set[int]]] = []
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cores: pinned.append((pid, cores)))
    monkeypatch.setenv("WEB_SCHED_BATCH", "0")
    worker, said = fork_one(conf)
    assert pinned == [(0, {worker.cpu})]  # 0: the calling process, the new worker
    assert said == [f"worker 4242 runs on core {worker.cpu}"]  # operators see where it runs


def test_post_fork_says_why_a_worker_could_not_be_pinned(
    conf: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(pid: int, cores: set[int]) -> None:
        raise OSError(22, "Invalid argument")  # a core taken away since the master looked

    monkeypatch.setattr(os, "sched_setaffinity", refuse)
    monkeypatch.setenv("WEB_SCHED_BATCH", "0")
    _, said = fork_one(conf)  # the worker starts all the same
    assert said == ["worker 4242 runs on any core: [Errno 22] Invalid argument"]
