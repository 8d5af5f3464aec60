"""Group commit: the units of work that arrive together in one process share one transaction.

A commit is durable only once the WAL is synced, and SQLite lets one writer in at a time, so
committing each payment on its own caps a process at one payment per lock-and-sync round. Here
the threads of a process that call `atomic` at about the same time queue their units; one of
them, the leader, takes the queue (up to MAX_BATCH units), opens one write transaction, runs each
unit inside its own SAVEPOINT, commits once and syncs the WAL once (the store does the sync after
releasing the writers' lock). Every caller is answered only after that sync, so nothing is
acknowledged before it is on disk, and a process that dies mid-batch loses only units nobody was
answered for.

A unit that raises is rolled back to its savepoint; its neighbours are kept and committed.
When the transaction itself fails (BEGIN, COMMIT, or an error after which SQLite rolled the
whole transaction back), every unit of the batch fails with the same error: none was answered.
A batch of one runs without a savepoint, exactly as a lone transaction would.

There is no waiting for company: the leader takes what is queued when it starts, so a unit that
arrives alone is committed at once, and batches grow only while the previous commit is under way.
Once the writers' lock is its own, the leader `gather`s into its batch the units queued while it
waited for the lock (another process's batch held it): they would otherwise wait for the next
batch and its own lock, pages and sync. The leader runs the other threads' units in their own
`contextvars` context (request ids).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
MAX_BATCH = 64  # units per transaction: bounds how long one batch holds the write lock


@dataclass(eq=False)
class Unit(Generic[T]):
    """One caller's unit of work, and its outcome once its batch is done."""

    fn: Callable[[Any], T]
    context: contextvars.Context = field(default_factory=contextvars.copy_context)
    done: bool = False
    value: Any = None
    error: BaseException | None = None
    # released once: when the unit is done, or when its thread is to lead the next batch
    latch: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.latch.acquire()

    def succeed(self, value: Any) -> None:
        self.done, self.value = True, value

    def fail(self, error: BaseException) -> None:
        self.done, self.error = True, error

    def outcome(self) -> T:
        """The unit's value, or its error raised in the caller's thread."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[no-any-return]


class GroupCommit:
    """Queues units from many threads and lets one leader at a time commit them in batches.

    `run_batch(units)` (given by the store) must settle every unit it is given: `succeed` or
    `fail` each, and return only after the batch's COMMIT or ROLLBACK; it may first `gather`
    more units into the list. `sync(units)`, if given, then makes the batch durable (failing
    its units if it cannot); it runs after the lead has passed on, so the next batch is written
    while this one waits for the disk, and the batch's callers are woken only after it. A
    waiting thread is woken exactly once: when its unit is done and synced, or to lead (the
    leader hands over to the first unit still queued once its own is committed), so no thread
    wakes only to wait again.
    """

    def __init__(
        self,
        run_batch: Callable[[list[Unit[Any]]], None],
        sync: Callable[[list[Unit[Any]]], None] | None = None,
    ) -> None:
        self._run_batch = run_batch
        self._sync = sync
        self._lock = threading.Lock()
        self._queue: list[Unit[Any]] = []
        self._leading = False
        self._inside = threading.local()  # set while this thread runs a batch

    def submit(self, fn: Callable[[Any], T]) -> T:
        """Run `fn(uow)` in a write transaction shared with the units queued with it."""
        if getattr(self._inside, "running", False):
            raise RuntimeError("units of work do not nest; pass the caller's uow instead")
        unit: Unit[T] = Unit(fn)
        with self._lock:
            self._queue.append(unit)
            follow, self._leading = self._leading, True
        if follow:
            unit.latch.acquire()  # done by a leader, or handed the lead
            if unit.done:
                return unit.outcome()
        passed = False
        try:
            while not unit.done:
                with self._lock:
                    batch = self._queue[:MAX_BATCH]
                    del self._queue[:MAX_BATCH]
                self._lead(batch)
                if unit.done:  # the next batch may be written while this one is synced
                    self._pass_lead()
                    passed = True
                self._make_durable(batch)
                for other in batch:
                    if other is not unit:
                        other.latch.release()  # answered
        finally:
            if not passed:
                self._pass_lead()
        return unit.outcome()

    def gather(self, batch: list[Unit[Any]]) -> None:
        """Add to the leader's `batch`, in place, the units queued since it was taken (up to
        MAX_BATCH in all). Called by `run_batch` once it holds the writers' lock; the units
        gathered are settled, synced and answered with the rest of the batch."""
        with self._lock:
            room = MAX_BATCH - len(batch)
            if room > 0 and self._queue:
                batch.extend(self._queue[:room])
                del self._queue[:room]

    def _pass_lead(self) -> None:
        with self._lock:
            if self._queue:
                self._queue[0].latch.release()  # the lead passes on
            else:
                self._leading = False

    def _make_durable(self, batch: list[Unit[Any]]) -> None:
        if self._sync is None or all(unit.error is not None for unit in batch):
            return  # no sync asked, or nobody to answer as done
        try:
            self._sync(batch)
        except BaseException as exc:  # not known to be on disk: nobody hears it was done
            for unit in batch:
                if unit.error is None:
                    unit.fail(exc)

    def _lead(self, batch: list[Unit[Any]]) -> None:
        self._inside.running = True
        try:
            self._run_batch(batch)
        except BaseException as exc:  # run_batch failed to settle them: none was committed
            for unit in batch:
                if not unit.done:
                    unit.fail(exc)
        finally:
            self._inside.running = False
