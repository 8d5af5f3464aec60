"""Meta values, and the whole-store export and import (storage/transfer.py), in MongoDB."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from bson import Binary, ObjectId
from pymongo import DESCENDING, ReturnDocument
from pymongo.errors import BulkWriteError

from storage.contract.transfer import Meta, Transfer
from storage.errors import DuplicateKey
from storage.models import KINDS, RECORDS, MetaValue, Record
from storage.mongo import documents as docs
from storage.mongo.base import MongoBase

# Every kind is a collection of that name, its records read back by these converters.
READERS: dict[str, Callable[[dict[str, Any]], Record]] = {
    "meta": docs.meta_value,
    "users": docs.user,
    "accounts": docs.account,
    "devices": docs.device,
    "tasker_gateways": docs.gateway,
    "transactions": docs.history,
    "ledger_entries": docs.entry,
    "inbound_sms": docs.inbound,
    "frames": docs.frame,
    "outbox_sms": docs.sms,
    "jobs": docs.job,
    "provider_events": docs.provider_event,
    "staff": docs.staff_member,
    "api_tokens": docs.token,
    "audit_log": docs.audit,
}
# Kinds whose _ids MongoDB makes (ObjectIds): an import makes new ones, in the file's order.
GENERATED_IDS = ("ledger_entries", "inbound_sms", "outbox_sms")


def _collection(kind: str) -> str:
    """The collection of a kind; ValueError for an unknown kind."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    return kind


class MongoMeta(MongoBase, Meta):
    """`meta`: _id the key, the value binary."""

    def get_meta(self, key: str) -> bytes | None:
        """The value under `key`, or None."""
        d = self._find("meta", {"_id": key})
        return docs.as_bytes(d["value"]) if d else None

    def put_meta_if_absent(self, key: str, value: bytes) -> bytes:
        """Store `value` unless the key has one (one atomic upsert); returns the stored value."""
        d = self._db.meta.find_one_and_update(
            {"_id": key},
            {"$setOnInsert": {"value": Binary(value)}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=self._s,
        )
        assert d is not None  # an upsert returning the document after always finds one
        return docs.as_bytes(d["value"])

    def set_meta(self, key: str, value: bytes) -> None:
        """Store or replace the value under `key`."""
        self._db.meta.update_one(
            {"_id": key}, {"$set": {"value": Binary(value)}}, upsert=True, session=self._s
        )


class MongoTransfer(MongoMeta, Transfer):
    """Records of one kind in and out of their collection, in `_id` order."""

    def count(self, kind: str) -> int:
        """How many records of one kind the database holds."""
        return self._db[_collection(kind)].count_documents({}, session=self._s)

    def dump(self, kind: str) -> Iterator[Record]:
        """Every record of one kind, by _id (the order of the SQLite dump too)."""
        found = self._db[_collection(kind)].find({}, session=self._s).sort("_id")
        return map(READERS[kind], found)

    def load(self, kind: str, records: Sequence[Record]) -> None:
        """Insert exported records as they are, in bulk; generated ids are new but in order."""
        expected = RECORDS[_collection(kind)]
        for r in records:
            if type(r) is not expected:
                raise TypeError(f"a {type(r).__name__} is not a record of {kind}")
        if kind == "meta":  # `db init` may have written a value already: the file's wins
            for r in records:
                assert isinstance(r, MetaValue)
                self.set_meta(r.key, r.value)
            return
        if not records:
            return
        found = [docs.document(r) for r in records]
        if kind in GENERATED_IDS:
            for doc, new_id in zip(found, self._next_ids(kind, len(found)), strict=True):
                doc["_id"] = new_id
        try:
            self._db[kind].insert_many(found, ordered=True, session=self._s)
        except BulkWriteError as exc:
            if any(e.get("code") == 11000 for e in exc.details.get("writeErrors", [])):
                raise DuplicateKey(f"{kind}: {exc}") from exc
            raise

    def _next_ids(self, collection: str, n: int) -> list[ObjectId]:
        """`n` ascending ObjectIds above every existing one: imported records keep their order.

        Client-made ObjectIds are not always ascending (their counter starts at random and wraps).
        """
        last = self._db[collection].find_one(
            {}, {"_id": 1}, sort=[("_id", DESCENDING)], session=self._s
        )
        start = int.from_bytes(ObjectId.from_datetime(datetime.now(UTC)).binary, "big")
        if last is not None and isinstance(last["_id"], ObjectId):
            start = max(start, int.from_bytes(last["_id"].binary, "big") + 1)
        return [ObjectId((start + i).to_bytes(12, "big")) for i in range(n)]
