"""The MongoDB unit of work: every part of the contract over one database and one session."""

from __future__ import annotations

from storage.mongo.inbound import MongoInbound
from storage.mongo.jobs import MongoJobs, MongoProviderEvents
from storage.mongo.ledger import MongoLedger
from storage.mongo.outbox import MongoSmsOutbox
from storage.mongo.rate_limits import MongoRateLimits
from storage.mongo.spending import MongoSpending
from storage.mongo.staff import MongoAudit, MongoStaff
from storage.mongo.transactions import MongoTransactions
from storage.mongo.transfer import MongoMeta, MongoTransfer
from storage.mongo.users import MongoDevices, MongoTaskerGateways, MongoUsers
from storage.mongo.workers import MongoWorkers


class MongoUnitOfWork(
    MongoUsers,
    MongoDevices,
    MongoTaskerGateways,
    MongoLedger,
    MongoInbound,
    MongoTransactions,
    MongoSpending,
    MongoSmsOutbox,
    MongoJobs,
    MongoProviderEvents,
    MongoRateLimits,
    MongoStaff,
    MongoAudit,
    MongoTransfer,
    MongoMeta,
    MongoWorkers,
):
    """The contract's `UnitOfWork` inside a session's transaction or snapshot (or neither)."""
