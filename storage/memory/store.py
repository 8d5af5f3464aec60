"""The in-memory store: all or nothing by copy and swap, one lock so units of work serialise.

`atomic` runs the unit on a copy of the committed tables and swaps the copy in when it returns; if
it raises, the copy is dropped and nothing it wrote remains. Units of work take one lock in turn,
so a unique key never sees two writers at once. `read` runs on the committed tables as they were
when it started: they are never changed in place, so it is a consistent snapshot without a lock.
For tests and development only: nothing is kept on disk.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from storage.contract import Store, UnitOfWork
from storage.errors import DuplicateKey
from storage.memory.tables import Tables
from storage.memory.unit_of_work import MemoryUnitOfWork

T = TypeVar("T")
DUPLICATE_RETRIES = 3  # as every backend: see Store.atomic


class MemoryStore:
    """Every table in this process's memory; never selected by configuration, only passed in."""

    def __init__(self) -> None:
        self._tables = Tables()
        self._lock = threading.Lock()
        self._local = threading.local()

    def __repr__(self) -> str:
        return "MemoryStore()"

    def _enter(self) -> None:
        if getattr(self._local, "inside", False):
            raise RuntimeError("units of work do not nest; pass the caller's uow instead")
        self._local.inside = True

    def _leave(self) -> None:
        self._local.inside = False

    def atomic(self, fn: Callable[[MemoryUnitOfWork], T]) -> T:
        """Run `fn` on a copy of the tables; swap it in when `fn` returns, drop it if it raises
        (and run it again, up to DUPLICATE_RETRIES times, if a unique key refused a write)."""
        for attempt in range(DUPLICATE_RETRIES + 1):
            try:
                return self._atomic(fn)
            except DuplicateKey:
                if attempt == DUPLICATE_RETRIES:
                    raise
        raise AssertionError("unreachable")

    def _atomic(self, fn: Callable[[MemoryUnitOfWork], T]) -> T:
        self._enter()
        try:
            with self._lock:
                work = self._tables.copy()
                result = fn(MemoryUnitOfWork(work))
                self._tables = work
        finally:
            self._leave()
        return result

    def read(self, fn: Callable[[MemoryUnitOfWork], T]) -> T:
        """Run `fn` on the committed tables as they are now; it may not write."""
        self._enter()
        try:
            with self._lock:
                snapshot = self._tables
            return fn(MemoryUnitOfWork(snapshot, writable=False))
        finally:
            self._leave()

    def init(self) -> None:
        """Nothing to create: the tables exist from the start."""

    def ping(self) -> None:
        """Memory always answers."""

    def close(self) -> None:
        """Nothing is held open; the data stays until the store is dropped."""


def _conforms(store: MemoryStore, uow: MemoryUnitOfWork) -> tuple[Store, UnitOfWork]:
    """Never called: mypy checks here that the memory store implements the whole contract."""
    return store, uow
