"""The worker: runs jobs from the durable outbox, on any number of machines at once.

A job is claimed with a lease (one atomic update), so two workers never run it at the same time;
a worker that dies mid-job loses nothing: its lease expires and another worker runs the job
again. Handlers are therefore idempotent (payouts carry our reference as idempotency key).
Failures retry with exponential backoff and full jitter; after `max_attempts` the job is dead,
visible with `flask --app wsgi jobs list --status dead` and revivable with `jobs retry`.
Every few seconds, busy or idle, a worker records a heartbeat in the store
(app/services/workers.py), which /readyz, /metrics and the console's dashboard read.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import FrameType

from app.bootstrap import Services
from app.request_id import REQUEST_ID
from app.services import workers
from storage.errors import StoreUnavailable
from storage.models import Job, WorkerBeat

log = logging.getLogger(__name__)
MAX_WAIT = 30.0  # seconds: the longest a worker waits between tries while the store is down


@dataclass(frozen=True)
class Retry:
    """A handler asks to run the job again later (counts as an attempt)."""

    reason: str
    after: float | None = None  # seconds; None: the worker's backoff decides
    counts: bool = True  # False: waiting (e.g. for a rate limit) is not a failed attempt


Handler = Callable[[Services, Job], Retry | None]
# Called once when a job of its kind goes to the dead letters (e.g. mark its SMS failed).
DeadLetterHook = Callable[[Services, Job, str], None]


def backoff(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full jitter: a uniform delay in [0, min(cap, base * 2**attempt)]."""
    return rng.uniform(0, min(cap, base * 2 ** min(attempt, 32)))


class Worker:
    """Claims and runs jobs until told to stop."""

    def __init__(
        self,
        svc: Services,
        handlers: Mapping[str, Handler],
        owner: str | None = None,
        rng: random.Random | None = None,
        on_dead: Mapping[str, DeadLetterHook] | None = None,
    ) -> None:
        self.svc = svc
        self.handlers = handlers
        self.on_dead = on_dead or {}
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.rng = rng or random.Random()
        self.stopping = threading.Event()
        self.started_at = svc.clock.now()
        self.jobs_done = 0
        # a few beats per quiet window, at most one every 5 s
        self.beat_every = min(5.0, svc.settings.worker_quiet_seconds / 4)
        self._beat_at: float | None = None  # monotonic time of the last beat recorded

    def heartbeat(self, stopped: bool = False) -> None:
        """Record that this worker is alive (at most every `beat_every` s, unless `stopped`).

        A store that does not answer skips the beat: the worker goes quiet, which is the truth.
        """
        mono = time.monotonic()
        if not stopped and self._beat_at is not None and mono - self._beat_at < self.beat_every:
            return
        me = WorkerBeat(
            self.owner, socket.gethostname(), os.getpid(), self.started_at,
            self.svc.clock.now(), self.jobs_done, stopped,
        )  # fmt: skip
        try:
            workers.beat(self.svc, me)
        except StoreUnavailable as exc:
            log.warning("worker %s could not record its heartbeat: %s", self.owner, exc)
            return
        except Exception:  # noqa: BLE001 - a heartbeat never stops the worker it reports on
            log.exception("worker %s could not record its heartbeat", self.owner)
            return
        self._beat_at = mono

    def run_once(self) -> bool:
        """Claim and run one due job; False when none was due."""
        settings, now = self.svc.settings, self.svc.clock.now()
        job = self.svc.store.atomic(
            lambda uow: uow.claim_job(
                self.owner, now, settings.worker_lease_seconds, list(self.handlers)
            )
        )
        if job is None:
            return False
        # the log lines of a job carry the id of the request that queued it (or the job's key)
        token = REQUEST_ID.set(str(job.payload.get("request_id") or f"job:{job.key}")[:64])
        try:
            self._run(job)
        finally:
            REQUEST_ID.reset(token)
        self.jobs_done += 1
        return True

    def _run(self, job: Job) -> None:
        settings = self.svc.settings
        if job.attempts > settings.worker_max_attempts:  # every earlier attempt killed its worker
            reason = "no attempt finished: the worker stopped during each one"
            self._bury(job, reason)
            return
        handler = self.handlers[job.kind]
        try:
            outcome = handler(self.svc, job)
        except StoreUnavailable as exc:  # not the job's fault: the attempt does not count
            log.warning("job %s %s attempt %d: store unavailable: %s",
                        job.kind, job.key, job.attempts, exc)  # fmt: skip
            outcome = Retry(f"store unavailable: {exc}"[:300], counts=False)
        except Exception as exc:  # noqa: BLE001 - any failure is retried, then dead-lettered
            log.warning(
                "job %s %s attempt %d failed: %s",
                job.kind,
                job.key,
                job.attempts,
                type(exc).__name__,
                exc_info=True,
            )
            outcome = Retry(f"{type(exc).__name__}: {exc}"[:300])
        self._settle(job, outcome)

    def _settle(self, job: Job, outcome: Retry | None) -> None:
        settings, now = self.svc.settings, self.svc.clock.now()
        if outcome is None:
            self.svc.store.atomic(lambda uow: uow.finish_job(job.id, self.owner, now))
            return
        if outcome.counts and job.attempts >= settings.worker_max_attempts:
            self._bury(job, outcome.reason)
            return
        delay = outcome.after
        if delay is None:
            delay = backoff(
                job.attempts,
                settings.worker_backoff_base_seconds,
                settings.worker_backoff_max_seconds,
                self.rng,
            )
        self.svc.store.atomic(
            lambda uow: uow.retry_job(
                job.id, self.owner, now + delay, outcome.reason, now, outcome.counts
            )
        )

    def _bury(self, job: Job, reason: str) -> None:
        now = self.svc.clock.now()
        if self.svc.store.atomic(lambda uow: uow.bury_job(job.id, self.owner, reason, now)):
            log.error("job %s %s is dead: %s", job.kind, job.key, reason)
            hook = self.on_dead.get(job.kind)
            if hook is not None:
                hook(self.svc, job, reason)

    def run(
        self, idle_sleep: float = 1.0, max_jobs: int | None = None, max_wait: float = MAX_WAIT
    ) -> int:
        """Run jobs until stopped (SIGTERM/SIGINT finish the current job first); returns count.

        Nothing that goes wrong in a cycle stops the loop: when the store is unavailable (or a
        cycle fails in a way nobody expected) the worker logs it, waits (doubling, at most
        `max_wait` seconds) and carries on. A job whose outcome could not be written is run
        again after its lease lapses; the handlers are idempotent.
        """
        done = failures = 0
        while not self.stopping.is_set() and (max_jobs is None or done < max_jobs):
            self.heartbeat()
            try:
                ran = self.run_once()
                failures = 0
            except StoreUnavailable as exc:
                failures += 1
                log.error("store unavailable, worker waits: %s", exc)
                ran = False
            except Exception:  # noqa: BLE001 - the loop outlives any one cycle
                failures += 1
                log.exception("worker cycle failed, worker waits")
                ran = False
            if ran:
                done += 1
            elif failures:
                wait = max(idle_sleep, 0.05) * 2 ** min(failures - 1, 16)
                self.stopping.wait(min(max_wait, wait))
            else:
                self.stopping.wait(idle_sleep)
        self.heartbeat(stopped=True)  # leaving on purpose: say so, rather than go quiet
        return done

    def stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        """Ask the loop to finish the current job and return."""
        log.info("worker %s stopping (signal %s)", self.owner, signum)
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        """Stop gracefully on SIGTERM (what process managers send) and SIGINT."""
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
