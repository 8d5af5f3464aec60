"""The storage contract every backend implements: SQLite (embedded), MongoDB, and in memory.

A use case runs as one unit of work: `store.atomic(fn)` calls `fn(uow)` inside one database
transaction and commits when it returns. A backend may call `fn` more than once (MongoDB retries
transient transaction errors), so `fn` must have no effects outside `uow`. Exactly-once rests on
unique keys (device key + counter, route + provider message id, transaction reference), never
on check-then-insert alone: when a unique key refuses a write made by a concurrent unit of work,
the backend runs `fn` again, and `fn` then finds the winner's record and answers with its outcome.
`DuplicateKey` reaches the caller only if that keeps happening.

The unit of work is the composition of small parts, one module each; a function that needs only
some of them may say so in its signature (e.g. `uow: Ledger`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from storage.contract.inbound import Inbound
from storage.contract.jobs import Jobs, ProviderEvents
from storage.contract.ledger import Ledger
from storage.contract.outbox import SmsOutbox
from storage.contract.rate_limits import RateLimits
from storage.contract.spending import Spending
from storage.contract.staff import Audit, Staff
from storage.contract.transactions import Transactions
from storage.contract.transfer import Meta, Transfer
from storage.contract.users import Devices, TaskerGateways, Users
from storage.contract.workers import Workers

__all__ = [
    "Audit",
    "Devices",
    "Inbound",
    "Jobs",
    "Ledger",
    "Meta",
    "ProviderEvents",
    "RateLimits",
    "SmsOutbox",
    "Spending",
    "Staff",
    "Store",
    "TaskerGateways",
    "Transactions",
    "Transfer",
    "UnitOfWork",
    "Users",
    "Workers",
]

T = TypeVar("T")


class UnitOfWork(
    Users,
    Devices,
    TaskerGateways,
    Ledger,
    Inbound,
    Transactions,
    Spending,
    SmsOutbox,
    Jobs,
    ProviderEvents,
    RateLimits,
    Staff,
    Audit,
    Meta,
    Transfer,
    Workers,
    Protocol,
):
    """Reads and writes inside one unit of work: every part of the contract."""


class Store(Protocol):
    """A storage backend."""

    def atomic(self, fn: Callable[[UnitOfWork], T]) -> T:
        """Run `fn` in one write transaction; commit when it returns, undo when it raises.

        When a unique key refuses one of its writes (DuplicateKey), `fn` is undone and run again,
        a few times (3), before the DuplicateKey reaches the caller: the run again finds a
        concurrent winner's record, or draws another random key (a transaction reference is
        not looked up before its insert). So `fn` has no effects outside the unit of work.
        """
        ...

    def read(self, fn: Callable[[UnitOfWork], T]) -> T:
        """Run `fn` against a consistent snapshot, for queries that write nothing."""
        ...

    def init(self) -> None:
        """Create tables or collections and indexes (migrating older ones); safe to run again."""
        ...

    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""
        ...

    def close(self) -> None:
        """Release connections held by this process."""
        ...
