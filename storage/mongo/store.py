"""MongoDB as the system of record: several web and worker machines share only the database.

Money moves run in multi-document transactions with majority write concern through
`ClientSession.with_transaction`, which retries transient errors by calling the unit of work
again. Debits are conditional (`balance >= amount` in the filter). Exactly-once rests on unique
indexes; when one refuses a write, the unit of work runs again and finds the winner's record.
One MongoClient per process, created lazily after gunicorn forks (pymongo is not fork-safe).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pymongo
from pymongo import MongoClient
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import (
    ConnectionFailure,
    OperationFailure,
    ProtocolError,
    PyMongoError,
    WriteError,
)
from pymongo.read_concern import ReadConcern
from pymongo.uri_parser import parse_uri
from pymongo.write_concern import WriteConcern

from storage.errors import DuplicateKey, SchemaMissing, StoreUnavailable
from storage.mongo.indexes import COLLECTIONS, INDEXES, READY_INDEX
from storage.mongo.unit_of_work import MongoUnitOfWork

T = TypeVar("T")
DEFAULT_DATABASE = "smspay"
DUPLICATE_RETRIES = 3
# A unit of work, the driver's retries included, gives up after this many seconds: the driver
# alone would retry a transaction against an unreachable server for 120 s, longer than a web
# worker lives (gunicorn's timeout is 30 s) and than MongoDB lets a transaction run (60 s).
TRANSACTION_SECONDS = 10.0


class MongoStore:
    """MongoDB backend: a replica set (or Atlas) is required for transactions."""

    def __init__(
        self, uri: str, timeout_ms: int = 3_000, transaction_seconds: float = TRANSACTION_SECONDS
    ) -> None:
        self.uri = uri
        self._transaction_seconds = transaction_seconds
        self.database_name = parse_uri(uri).get("database") or DEFAULT_DATABASE
        self._timeout_ms = timeout_ms
        self._client: MongoClient[dict[str, Any]] | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._checked = False

    def __repr__(self) -> str:  # the URI may carry a password
        return f"MongoStore(database={self.database_name!r})"

    @property
    def db(self) -> Database[dict[str, Any]]:
        """This process's handle on the database (a new client after fork)."""
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                self._client = MongoClient(
                    self.uri,
                    serverSelectionTimeoutMS=self._timeout_ms,
                    connectTimeoutMS=self._timeout_ms,
                    socketTimeoutMS=8_000,
                    retryWrites=True,
                    w="majority",
                    tz_aware=False,
                    appname="smspay",
                )
                self._pid = os.getpid()
        return self._client.get_database(self.database_name)

    def _check_ready(self) -> None:
        if self._checked:
            return
        collection, index = READY_INDEX
        names = self._call(lambda: self.db[collection].index_information())
        if index not in names:
            raise SchemaMissing("MongoDB indexes are missing: run `flask --app wsgi db init`")
        self._checked = True

    @staticmethod
    def _call(fn: Callable[[], T]) -> T:
        """Run `fn`; every failure of the server or the way to it becomes StoreUnavailable.

        Unreachable, timed out, not primary, failing over (ConnectionFailure and its kinds:
        AutoReconnect, NetworkTimeout, NotPrimaryError, ServerSelectionTimeoutError), a write
        concern not met, a transient error still there after the driver's retries: all of them
        are OperationFailure or ConnectionFailure. A WriteError (a document refused, a duplicate
        key outside `_insert`) is the caller's and passes unchanged.
        """
        try:
            return fn()
        except (ConnectionFailure, ProtocolError) as exc:
            raise StoreUnavailable(f"MongoDB unreachable: {type(exc).__name__}") from exc
        except OperationFailure as exc:
            if isinstance(exc, WriteError):
                raise
            raise StoreUnavailable(f"MongoDB refused: {type(exc).__name__} {exc.code}") from exc

    def atomic(self, fn: Callable[[MongoUnitOfWork], T]) -> T:
        """Run `fn` in a majority-committed transaction, again on transient or duplicate errors."""
        self._check_ready()
        for attempt in range(DUPLICATE_RETRIES + 1):
            try:
                return self._call(lambda: self._transaction(fn))
            except DuplicateKey:
                if attempt == DUPLICATE_RETRIES:
                    raise
        raise AssertionError("unreachable")

    def _transaction(self, fn: Callable[[MongoUnitOfWork], T]) -> T:
        db = self.db

        def callback(session: ClientSession) -> T:
            return fn(MongoUnitOfWork(db, session))

        # the driver's client-side timeout bounds with_transaction's retries (and each call in it)
        with pymongo.timeout(self._transaction_seconds), db.client.start_session() as session:
            result: T = session.with_transaction(
                callback,
                read_concern=ReadConcern("snapshot"),
                write_concern=WriteConcern("majority"),
            )
        return result

    def read(self, fn: Callable[[MongoUnitOfWork], T]) -> T:
        """Run `fn` in a snapshot session: every read sees one point in time (MongoDB 5.0+)."""
        self._check_ready()
        db = self.db

        def snapshot() -> T:
            with db.client.start_session(snapshot=True) as session:
                return fn(MongoUnitOfWork(db, session))

        return self._call(snapshot)

    def init(self) -> None:
        """Create collections and indexes (idempotent)."""
        db = self.db
        try:
            existing = set(self._call(db.list_collection_names))
            for name in COLLECTIONS:
                if name not in existing:
                    db.create_collection(name)
            for name, models in INDEXES.items():
                db[name].create_indexes(models)
        except PyMongoError as exc:
            raise StoreUnavailable(f"cannot prepare MongoDB: {exc}") from exc
        self._checked = False

    def ping(self) -> None:
        """Raise StoreUnavailable unless the server answers, SchemaMissing unless prepared."""
        self._call(lambda: self.db.command("ping"))
        self._check_ready()

    def close(self) -> None:
        """Close this process's client."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
