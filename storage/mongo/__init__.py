"""The MongoDB backend: `MongoStore` (store.py) and its unit of work, one module per contract part.

base.py holds the database and session handles, documents.py the record <-> document converters,
indexes.py what `db init` creates; users, ledger, inbound, transactions, outbox, jobs, rate_limits,
staff and transfer each implement one part, and unit_of_work.py composes them.
"""

from storage.mongo.store import MongoStore
from storage.mongo.unit_of_work import MongoUnitOfWork

__all__ = ["MongoStore", "MongoUnitOfWork"]
