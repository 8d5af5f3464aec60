"""The worker against real jobs in every store: SQLite, MongoDB and memory (`EVERY_STORE`).

Handlers here are small functions that count their calls; the settlement handlers are tested end
to end in tests/functional/test_settlement.py.
"""

from __future__ import annotations

import dataclasses
import random
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskCliRunner

from app.bootstrap import Services
from app.worker import Handler, Retry, Worker, backoff
from storage.errors import StoreUnavailable
from storage.models import Job, JobStatus
from tests.conftest import EVERY_STORE
from tests.support import FakeClock


class Recorder:
    """A handler that records each run and then does what it is told."""

    def __init__(self, then: Callable[[Job], Retry | None] = lambda job: None) -> None:
        self.runs: list[tuple[str, int, str | None]] = []
        self.then = then
        self.lock = threading.Lock()

    def __call__(self, svc: Services, job: Job) -> Retry | None:
        with self.lock:
            self.runs.append((job.key, job.attempts, job.lease_owner))
        return self.then(job)


def enqueue(svc: Services, key: str, run_after: float | None = None, kind: str = "test") -> bool:
    now = svc.clock.now()
    payload = {"key": key, "n": 1}
    return svc.store.atomic(
        lambda uow: uow.enqueue_job(
            kind, key, payload, now if run_after is None else run_after, now
        )
    )


def job(svc: Services, key: str) -> Job:
    found = [j for j in svc.store.read(lambda uow: uow.jobs(limit=1000)) if j.key == key]
    assert len(found) == 1
    return found[0]


def claim(svc: Services, owner: str, kinds: tuple[str, ...] = ("test",)) -> Job | None:
    now, lease = svc.clock.now(), svc.settings.worker_lease_seconds
    return svc.store.atomic(lambda uow: uow.claim_job(owner, now, lease, list(kinds)))


def boom(job: Job) -> Retry | None:
    raise RuntimeError(f"boom on attempt {job.attempts}")


@EVERY_STORE
def test_a_due_job_is_claimed_once_when_eight_workers_race(svc: Services) -> None:
    enqueue(svc, "race")
    handler = Recorder()
    workers = [Worker(svc, {"test": handler}, owner=f"w{i}") for i in range(8)]
    start = threading.Barrier(len(workers))
    ran: list[bool] = []
    errors: list[BaseException] = []

    def race(worker: Worker) -> None:
        try:
            start.wait()
            ran.append(worker.run_once())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=race, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert sorted(ran) == [False] * 7 + [True]
    assert len(handler.runs) == 1
    done = job(svc, "race")
    assert done.status is JobStatus.DONE and done.attempts == 1


@EVERY_STORE
def test_a_job_not_yet_due_is_not_claimed(svc: Services, clock: FakeClock) -> None:
    enqueue(svc, "later", run_after=clock.now() + 30)
    handler = Recorder()
    worker = Worker(svc, {"test": handler})
    assert worker.run_once() is False
    clock.advance(29.9)
    assert worker.run_once() is False
    assert job(svc, "later").status is JobStatus.PENDING and job(svc, "later").attempts == 0
    clock.advance(0.1)
    assert worker.run_once() is True
    assert handler.runs == [("later", 1, worker.owner)]


@EVERY_STORE
def test_a_worker_claims_only_the_kinds_it_has_handlers_for(svc: Services) -> None:
    enqueue(svc, "sms-1", kind="sms.send")
    handler = Recorder()
    assert Worker(svc, {"test": handler}).run_once() is False
    assert Worker(svc, {"sms.send": handler}).run_once() is True
    assert handler.runs[0][0] == "sms-1"


@EVERY_STORE
def test_an_expired_lease_passes_to_another_worker_and_the_first_loses_the_job(
    svc: Services, clock: FakeClock
) -> None:
    enqueue(svc, "leased")
    first = claim(svc, "worker-a")
    assert first is not None and first.lease_owner == "worker-a"
    lease = svc.settings.worker_lease_seconds
    assert first.lease_until == pytest.approx(clock.now() + lease)

    clock.advance(lease - 1)  # still held
    assert claim(svc, "worker-b") is None
    clock.advance(2)  # the lease ran out: worker-a is presumed dead
    second = claim(svc, "worker-b")
    assert second is not None and second.id == first.id
    assert second.lease_owner == "worker-b" and second.attempts == 2

    now = clock.now()
    # worker-a wakes up: it can no longer finish, retry or bury the job
    assert svc.store.atomic(lambda uow: uow.finish_job(first.id, "worker-a", now)) is False
    assert (
        svc.store.atomic(lambda uow: uow.retry_job(first.id, "worker-a", now + 5, "late", now))
        is False
    )
    assert svc.store.atomic(lambda uow: uow.bury_job(first.id, "worker-a", "late", now)) is False
    held = job(svc, "leased")
    assert held.status is JobStatus.RUNNING and held.lease_owner == "worker-b"
    assert svc.store.atomic(lambda uow: uow.finish_job(second.id, "worker-b", now)) is True
    assert job(svc, "leased").status is JobStatus.DONE


@EVERY_STORE
def test_a_stale_worker_cannot_undo_what_the_new_lease_holder_finished(
    svc: Services, clock: FakeClock
) -> None:
    enqueue(svc, "slow")
    lease = svc.settings.worker_lease_seconds
    fast = Worker(svc, {"test": Recorder()}, owner="fast")

    def too_slow(job: Job) -> Retry | None:
        clock.advance(lease + 1)  # this worker stalls past its lease...
        assert fast.run_once() is True  # ...so another runs the job to the end
        return Retry("stalled worker asks for a retry")

    Worker(svc, {"test": Recorder(too_slow)}, owner="slow").run_once()
    done = job(svc, "slow")
    assert done.status is JobStatus.DONE and done.last_error == ""


def test_backoff_is_full_jitter_below_the_doubling_cap() -> None:
    class Highest(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    for attempt in range(0, 70):
        assert backoff(attempt, 2, 600, Highest()) == min(600, 2 * 2**attempt)
    rng = random.Random(42)
    delays = [backoff(attempt, 2, 600, rng) for attempt in range(1, 12) for _ in range(50)]
    assert all(0 <= d <= 600 for d in delays)
    assert len(set(delays)) == len(delays)  # jittered, not a fixed schedule


@EVERY_STORE
def test_a_failing_job_is_retried_with_seeded_backoff_then_dead_and_revivable(
    svc: Services, clock: FakeClock, runner: FlaskCliRunner
) -> None:
    svc.settings = dataclasses.replace(
        svc.settings,
        worker_max_attempts=5,
        worker_backoff_base_seconds=3,
        worker_backoff_max_seconds=20,
    )
    enqueue(svc, "doomed")
    handler = Recorder(boom)
    worker = Worker(svc, {"test": handler}, rng=random.Random(7))
    expected = random.Random(7)
    for attempt in range(1, 5):
        before = clock.now()
        assert worker.run_once() is True
        waiting = job(svc, "doomed")
        assert waiting.status is JobStatus.PENDING and waiting.attempts == attempt
        assert waiting.last_error == f"RuntimeError: boom on attempt {attempt}"
        delay = waiting.run_after - before
        assert 0 <= delay <= min(20, 3 * 2**attempt)
        assert delay == pytest.approx(backoff(attempt, 3, 20, expected))
        assert worker.run_once() is (delay == 0)  # not due before its time
        clock.advance(delay)
    assert worker.run_once() is True
    dead = job(svc, "doomed")
    assert dead.status is JobStatus.DEAD and dead.attempts == 5
    assert dead.last_error == "RuntimeError: boom on attempt 5"
    clock.advance(10_000)
    assert worker.run_once() is False  # the dead stay dead
    assert len(handler.runs) == 5

    listed = runner.invoke(args=["jobs", "list", "--status", "dead"])
    assert listed.exit_code == 0, listed.output
    assert "doomed" in listed.output and "dead" in listed.output and "attempts=5" in listed.output
    assert "boom on attempt 5" in listed.output
    assert "doomed" not in runner.invoke(args=["jobs", "list", "--status", "pending"]).output

    revived = runner.invoke(args=["jobs", "retry", "doomed"])
    assert revived.exit_code == 0 and "doomed will run again" in revived.output
    fresh = job(svc, "doomed")
    assert fresh.status is JobStatus.PENDING and fresh.attempts == 0
    handler.then = lambda job: None
    assert worker.run_once() is True
    assert job(svc, "doomed").status is JobStatus.DONE
    again = runner.invoke(args=["jobs", "retry", "doomed"])
    assert again.exit_code != 0 and "no dead job doomed" in again.output


@EVERY_STORE
def test_a_handler_exception_is_retried_never_lost(svc: Services, clock: FakeClock) -> None:
    enqueue(svc, "flaky")
    failures = iter([ValueError("gateway said no"), KeyError("missing")])

    def flaky(job: Job) -> Retry | None:
        exc = next(failures, None)
        if exc is not None:
            raise exc
        return None

    handler = Recorder(flaky)
    worker = Worker(svc, {"test": handler}, rng=random.Random(1))
    for attempt, error in ((1, "ValueError: gateway said no"), (2, "KeyError: 'missing'")):
        assert worker.run_once() is True
        waiting = job(svc, "flaky")
        assert waiting.status is JobStatus.PENDING
        assert (waiting.attempts, waiting.last_error) == (attempt, error)
        assert waiting.payload == {"key": "flaky", "n": 1}
        clock.advance(waiting.run_after - clock.now())
    assert worker.run_once() is True
    assert job(svc, "flaky").status is JobStatus.DONE
    assert [run[1] for run in handler.runs] == [1, 2, 3]


@EVERY_STORE
def test_a_handler_may_ask_for_its_own_delay(svc: Services, clock: FakeClock) -> None:
    enqueue(svc, "later-please")
    handler = Recorder(lambda job: Retry("not yet", after=120) if job.attempts == 1 else None)
    worker = Worker(svc, {"test": handler})
    assert worker.run_once() is True
    waiting = job(svc, "later-please")
    assert waiting.run_after == pytest.approx(clock.now() + 120)
    assert waiting.last_error == "not yet"
    clock.advance(119)
    assert worker.run_once() is False
    clock.advance(1)
    assert worker.run_once() is True
    assert job(svc, "later-please").status is JobStatus.DONE


@EVERY_STORE
def test_enqueue_with_the_same_key_twice_keeps_one_job(svc: Services, clock: FakeClock) -> None:
    assert enqueue(svc, "once") is True
    now = clock.now()
    second: dict[str, Any] = {"key": "other"}
    assert (
        svc.store.atomic(lambda uow: uow.enqueue_job("test", "once", second, now + 99, now))
        is False
    )
    kept = job(svc, "once")
    assert kept.payload == {"key": "once", "n": 1} and kept.run_after == now
    handler = Recorder()
    worker = Worker(svc, {"test": handler})
    assert worker.run_once() is True and worker.run_once() is False
    assert len(handler.runs) == 1
    # nor does enqueueing it again after it ran make it run again
    assert enqueue(svc, "once") is False
    assert worker.run_once() is False


@EVERY_STORE
def test_stop_makes_run_return_after_the_current_job(svc: Services) -> None:
    for key in ("j1", "j2", "j3"):
        enqueue(svc, key)
    handlers: dict[str, Handler] = {}
    worker = Worker(svc, handlers)

    def stop_midway(job: Job) -> Retry | None:
        worker.stop()
        return None

    handler = Recorder(stop_midway)
    handlers["test"] = handler
    assert worker.run(idle_sleep=0) == 1
    assert [run[0] for run in handler.runs] == ["j1"]
    statuses = {j.key: j.status for j in svc.store.read(lambda uow: uow.jobs())}
    assert statuses == {"j1": JobStatus.DONE, "j2": JobStatus.PENDING, "j3": JobStatus.PENDING}


@EVERY_STORE
def test_stop_wakes_an_idle_worker(svc: Services) -> None:
    worker = Worker(svc, {"test": Recorder()})
    counted: list[int] = []
    thread = threading.Thread(target=lambda: counted.append(worker.run(idle_sleep=60)))
    thread.start()
    worker.stop()
    thread.join(10)
    assert not thread.is_alive() and counted == [0]


@EVERY_STORE
def test_sigterm_stops_the_worker_gracefully(svc: Services) -> None:
    enqueue(svc, "pending-at-shutdown")
    handler = Recorder()
    worker = Worker(svc, {"test": handler})
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        worker.install_signal_handlers()
        assert signal.getsignal(signal.SIGTERM) == worker.stop
        assert signal.getsignal(signal.SIGINT) == worker.stop
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
    worker.stop(signal.SIGTERM, None)
    assert worker.run(idle_sleep=0) == 0
    assert handler.runs == []
    assert job(svc, "pending-at-shutdown").status is JobStatus.PENDING


@EVERY_STORE
def test_a_job_that_kills_its_worker_every_time_is_buried(svc: Services, clock: FakeClock) -> None:
    """A job whose handler takes the worker down is reclaimed after each lease, and once it has
    used every attempt it goes to the dead letters instead of running forever."""
    svc.store.atomic(lambda uow: uow.enqueue_job("crash", "crash:1", {}, clock.now(), clock.now()))
    max_attempts = svc.settings.worker_max_attempts
    for n in range(max_attempts):
        owner = f"doomed-{n}"
        claimed = svc.store.atomic(
            lambda uow, o=owner: uow.claim_job(o, clock.now(), 60, ["crash"])
        )
        assert claimed is not None and claimed.attempts == n + 1
        clock.advance(61)  # the worker died holding it; the lease runs out
    ran: list[str] = []
    survivor = Worker(svc, {"crash": lambda s, j: ran.append(j.key)})
    assert survivor.run_once()
    assert ran == []
    [dead] = svc.store.read(lambda uow: uow.jobs(JobStatus.DEAD))
    assert dead.key == "crash:1" and "stopped during each" in dead.last_error


def test_a_jobs_log_lines_carry_the_request_id_that_queued_it(svc: Services) -> None:
    from app.request_id import REQUEST_ID

    svc.store.atomic(lambda uow: uow.enqueue_job("test", "traced", {"request_id": "req-7"}, 0, 0))
    enqueue(svc, "untraced")
    seen: dict[str, str] = {}

    def record(job: Job) -> Retry | None:
        seen[job.key] = REQUEST_ID.get()
        return None

    worker = Worker(svc, {"test": Recorder(record)})
    assert worker.run_once() and worker.run_once()
    assert seen == {"traced": "req-7", "untraced": "job:untraced"}
    assert REQUEST_ID.get() == ""


def test_a_worker_beats_as_it_runs_and_says_goodbye_when_it_stops(
    svc: Services, clock: FakeClock
) -> None:
    for key in ("a", "b"):
        enqueue(svc, key)
    worker = Worker(svc, {"test": Recorder()}, owner="box:1:w")
    worker.beat_every = 0  # every turn of the loop
    started = clock.now()
    beats: list[tuple[float, int, bool]] = []
    real_beat = worker.heartbeat

    def spy(stopped: bool = False) -> None:
        real_beat(stopped)
        (w,) = svc.store.read(lambda uow: uow.workers())
        beats.append((w.beat_at, w.jobs_done, w.stopped))
        clock.advance(1)

    worker.heartbeat = spy  # type: ignore[method-assign]
    assert worker.run(idle_sleep=0, max_jobs=2) == 2
    assert beats == [(started, 0, False), (started + 1, 1, False), (started + 2, 2, True)]
    (w,) = svc.store.read(lambda uow: uow.workers())
    assert (w.owner, w.started_at, w.pid > 0, w.host != "") == ("box:1:w", started, True, True)


def test_beats_are_spaced_out_and_a_store_outage_only_skips_one(
    svc: Services, clock: FakeClock, tmp_path: Any
) -> None:
    from storage.sqlite import SqliteStore

    worker = Worker(svc, {}, owner="box:1:w")
    assert worker.beat_every == 5  # SMSPAY_WORKER_QUIET_SECONDS 60: at most every 5 s
    worker.heartbeat()
    clock.advance(3)
    worker.heartbeat()  # too soon: not written
    assert [w.beat_at for w in svc.store.read(lambda uow: uow.workers())] == [clock.now() - 3]
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    real = svc.store
    svc.__dict__["store"] = SqliteStore(blocker / "db.sqlite3")
    try:
        worker.heartbeat(stopped=True)  # logged, not raised: the loop goes on
    finally:
        svc.__dict__["store"] = real
    assert [w.stopped for w in svc.store.read(lambda uow: uow.workers())] == [False]


def test_workers_silent_for_a_day_are_forgotten(svc: Services, clock: FakeClock) -> None:
    Worker(svc, {}, owner="old").heartbeat()
    clock.advance(86_401)
    Worker(svc, {}, owner="new").heartbeat()
    assert [w.owner for w in svc.store.read(lambda uow: uow.workers())] == ["new"]


# --- when the store fails ---------------------------------------------------------------------


class Flaky:
    """A store whose units of work fail with `error()` while `down` is set; reads pass."""

    def __init__(self, real: Any, error: Callable[[], BaseException]) -> None:
        self.real, self.error, self.down = real, error, True
        self.failures = 0

    def atomic(self, fn: Any) -> Any:
        if self.down:
            self.failures += 1
            raise self.error()
        return self.real.atomic(fn)

    def read(self, fn: Any) -> Any:
        return self.real.read(fn)


def wait_for(check: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@EVERY_STORE
@pytest.mark.parametrize(
    "error",
    [lambda: StoreUnavailable("disk full"), lambda: RuntimeError("cannot rollback")],
    ids=["unavailable", "unexpected"],
)
def test_no_failure_in_a_cycle_stops_the_worker_it_waits_and_carries_on(
    svc: Services, error: Callable[[], BaseException]
) -> None:
    enqueue(svc, "k1")
    handler = Recorder()
    real = svc.store
    flaky = Flaky(real, error)
    svc.__dict__["store"] = flaky
    worker = Worker(svc, {"test": handler}, owner="w1")
    thread = threading.Thread(
        target=worker.run, kwargs={"idle_sleep": 0.01, "max_wait": 0.1}, daemon=True
    )
    thread.start()
    try:
        wait_for(lambda: flaky.failures >= 5)
        assert thread.is_alive() and handler.runs == []
        flaky.down = False
        wait_for(lambda: job(svc, "k1").status is JobStatus.DONE)
    finally:
        worker.stop()
        thread.join(30)
        svc.__dict__["store"] = real
    assert not thread.is_alive()
    assert handler.runs == [("k1", 1, "w1")]


def test_the_wait_after_a_failure_doubles_up_to_a_bound(svc: Services) -> None:
    waits: list[float] = []
    worker = Worker(svc, {"test": Recorder()})
    real = svc.store
    svc.__dict__["store"] = Flaky(real, lambda: StoreUnavailable("down"))

    def wait(seconds: float | None = None) -> bool:
        waits.append(seconds or 0)
        if len(waits) == 8:
            worker.stopping.set()
        return worker.stopping.is_set()

    worker.stopping.wait = wait  # type: ignore[method-assign]
    try:
        worker.run(idle_sleep=0.5, max_wait=10)
    finally:
        svc.__dict__["store"] = real
    assert waits == [0.5, 1, 2, 4, 8, 10, 10, 10]


@EVERY_STORE
def test_a_job_whose_outcome_could_not_be_written_runs_again_after_its_lease(
    svc: Services, clock: FakeClock
) -> None:
    enqueue(svc, "k1")
    real = svc.store
    handler = Recorder()

    class SettleFails(Flaky):
        def atomic(self, fn: Any) -> Any:
            if handler.runs and self.down:  # claimed and run; the outcome cannot be written
                self.down = False
                raise StoreUnavailable("disk full")
            return real.atomic(fn)

    svc.__dict__["store"] = SettleFails(real, Exception)
    try:
        worker = Worker(svc, {"test": handler}, owner="w1")
        with pytest.raises(StoreUnavailable):
            worker.run_once()
        assert worker.run_once() is False  # still leased: nobody runs it meanwhile
        clock.advance(svc.settings.worker_lease_seconds + 1)
        assert worker.run_once() is True
    finally:
        svc.__dict__["store"] = real
    assert handler.runs == [("k1", 1, "w1"), ("k1", 2, "w1")]
    assert job(svc, "k1").status is JobStatus.DONE


@EVERY_STORE
def test_a_handler_that_meets_an_unavailable_store_does_not_use_up_an_attempt(
    svc: Services,
) -> None:
    enqueue(svc, "k1")

    def locked(job: Job) -> Retry | None:
        raise StoreUnavailable("database is locked")

    assert Worker(svc, {"test": Recorder(locked)}, owner="w1").run_once() is True
    waiting = job(svc, "k1")
    assert waiting.status is JobStatus.PENDING and waiting.attempts == 0
    assert waiting.last_error and "store unavailable" in waiting.last_error
