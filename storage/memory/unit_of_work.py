"""The memory store's unit of work: every part of the contract, as mixins over shared tables."""

from __future__ import annotations

from storage.contract.spending import Standing, standing_of
from storage.memory.inbound import InboundPart
from storage.memory.jobs import JobsPart
from storage.memory.ledger import LedgerPart
from storage.memory.outbox import OutboxPart
from storage.memory.rate_limits import RateLimitsPart
from storage.memory.spending import SpendingPart
from storage.memory.staff import StaffPart
from storage.memory.transactions import TransactionsPart
from storage.memory.transfer import TransferPart
from storage.memory.users import UsersPart
from storage.memory.workers import WorkersPart


class MemoryUnitOfWork(
    UsersPart,
    LedgerPart,
    InboundPart,
    TransactionsPart,
    SpendingPart,
    OutboxPart,
    JobsPart,
    RateLimitsPart,
    StaffPart,
    TransferPart,
    WorkersPart,
):
    """The contract's `UnitOfWork` over one set of tables: a working copy, or a snapshot to read."""

    def standing(self, payer_id: str, payee: str, day_start: float, month_start: float) -> Standing:
        """The four reads `standing` stands for, one after another."""
        return standing_of(self, payer_id, payee, day_start, month_start)
