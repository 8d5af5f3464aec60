"""The SQLite unit of work: every part of the contract over one connection and one transaction."""

from __future__ import annotations

from storage.sqlite.inbound import SqliteInbound
from storage.sqlite.jobs import SqliteJobs, SqliteProviderEvents
from storage.sqlite.ledger import SqliteLedger
from storage.sqlite.outbox import SqliteSmsOutbox
from storage.sqlite.rate_limits import SqliteRateLimits
from storage.sqlite.spending import SqliteSpending
from storage.sqlite.staff import SqliteAudit, SqliteStaff
from storage.sqlite.transactions import SqliteTransactions
from storage.sqlite.transfer import SqliteMeta, SqliteTransfer
from storage.sqlite.users import SqliteDevices, SqliteTaskerGateways, SqliteUsers
from storage.sqlite.workers import SqliteWorkers


class SqliteUnitOfWork(
    SqliteUsers,
    SqliteDevices,
    SqliteTaskerGateways,
    SqliteLedger,
    SqliteInbound,
    SqliteTransactions,
    SqliteSpending,
    SqliteSmsOutbox,
    SqliteJobs,
    SqliteProviderEvents,
    SqliteRateLimits,
    SqliteStaff,
    SqliteAudit,
    SqliteMeta,
    SqliteWorkers,
    SqliteTransfer,  # reaches the parts above through the contract (UnitOfWork) it declares
):
    """The contract's `UnitOfWork` over one SQLite connection inside a transaction."""
