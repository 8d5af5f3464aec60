"""The embedded store: one SQLite file in WAL mode, safe under several gunicorn workers.

Each process (and thread) opens its own connection after fork. Every unit of work that writes
runs under `BEGIN IMMEDIATE`, so writers queue on SQLite's lock instead of failing mid-way, and
money moves are serialised. For one machine; production uses MongoDB.

`store.py` opens the file and runs units of work, `migrations.py` versions the schema, and
`unit_of_work.py` composes one mixin per part of the contract (users.py, ledger.py, ...).
"""

from storage.sqlite.store import SqliteStore
from storage.sqlite.unit_of_work import SqliteUnitOfWork

__all__ = ["SqliteStore", "SqliteUnitOfWork"]
