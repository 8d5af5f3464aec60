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
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from bson import Binary, ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel, MongoClient, ReturnDocument
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)
from pymongo.read_concern import ReadConcern
from pymongo.uri_parser import parse_uri
from pymongo.write_concern import WriteConcern

from crypto.replay import ReplayWindow
from storage.errors import (
    DuplicateKey,
    InsufficientFunds,
    NotFound,
    SchemaMissing,
    StoreUnavailable,
    UnbalancedEntry,
)
from storage.models import (
    KINDS,
    RECORDS,
    Account,
    Device,
    FrameRecord,
    History,
    InboundRecord,
    Job,
    JobStatus,
    LedgerEntry,
    MetaValue,
    OutboundSms,
    Posting,
    ProviderEvent,
    Record,
    TaskerGateway,
    Transaction,
    TransactionEvent,
    TransactionKind,
    TransactionState,
    User,
)
from storage.mongo_staff import STAFF_INDEXES, STAFF_KINDS, MongoStaffMixin

T = TypeVar("T")
DEFAULT_DATABASE = "smspay"
DUPLICATE_RETRIES = 3
FRAME_TTL_SECONDS = 90 * 86_400  # the window refuses old counters; the answers can expire
LIVE_STATES = ["PENDING", "PROCESSING", "SUCCESS", "FLAGGED"]

INDEXES: dict[str, list[IndexModel]] = {
    "users": [IndexModel("phone", unique=True, name="phone_unique")],
    "devices": [
        IndexModel([("user_id", ASCENDING)], name="user"),
        IndexModel([("phone", ASCENDING)], name="phone"),
    ],
    "inbound_sms": [
        IndexModel(
            [("route", ASCENDING), ("provider_message_id", ASCENDING)],
            unique=True,
            partialFilterExpression={"provider_message_id": {"$type": "string"}},
            name="provider_message_unique",
        ),
        IndexModel([("sender", ASCENDING), ("received_at", DESCENDING)], name="sender_time"),
        IndexModel("reference", name="reference"),
    ],
    "frames": [IndexModel("expires", expireAfterSeconds=0, name="expiry_ttl")],
    "ledger_entries": [IndexModel("reference", name="reference")],
    "transactions": [
        IndexModel([("payer_id", ASCENDING), ("created_at", DESCENDING)], name="payer_time"),
        IndexModel([("payer_phone", ASCENDING), ("created_at", DESCENDING)], name="payer_phone"),
        IndexModel([("payee", ASCENDING), ("created_at", DESCENDING)], name="payee_time"),
        IndexModel([("state", ASCENDING), ("created_at", DESCENDING)], name="state_time"),
        IndexModel([("created_at", DESCENDING)], name="time"),
    ],
    "outbox_sms": [
        IndexModel([("status", ASCENDING), ("created_at", ASCENDING)], name="status"),
        IndexModel([("channel", ASCENDING), ("status", ASCENDING)], name="channel_status"),
        IndexModel("reference", name="reference"),
        IndexModel("provider_id", name="provider_id"),
    ],
    "rate_buckets": [IndexModel("expires", expireAfterSeconds=0, name="expiry_ttl")],
    "rate_windows": [IndexModel("expires", expireAfterSeconds=0, name="expiry_ttl")],
    "jobs": [
        IndexModel([("status", ASCENDING), ("run_after", ASCENDING)], name="due"),
        IndexModel([("status", ASCENDING), ("lease_until", ASCENDING)], name="lease"),
        IndexModel("payload.reference", name="reference"),
    ],
    "provider_events": [IndexModel("reference", name="reference")],
}


def _strip(doc: dict[str, Any], *drop: str) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in drop}


def _bytes(value: Any) -> bytes:
    return bytes(value) if value is not None else b""


class MongoUnitOfWork(MongoStaffMixin):
    """The contract's `UnitOfWork` over one database, inside a session's transaction (or none)."""

    def __init__(self, db: Database[dict[str, Any]], session: ClientSession | None) -> None:
        self._db, self._s = db, session

    def _insert(self, collection: str, doc: dict[str, Any]) -> Any:
        try:
            return self._db[collection].insert_one(doc, session=self._s).inserted_id
        except DuplicateKeyError as exc:
            raise DuplicateKey(str(exc)) from exc

    def _update(self, collection: str, filter_: dict[str, Any], update: dict[str, Any]) -> None:
        if self._db[collection].update_one(filter_, update, session=self._s).matched_count != 1:
            raise NotFound(f"{collection} {filter_}")

    def _find(self, collection: str, filter_: dict[str, Any]) -> dict[str, Any] | None:
        return self._db[collection].find_one(filter_, session=self._s)

    # users
    @staticmethod
    def _user(d: dict[str, Any]) -> User:
        return User(
            **{
                **_strip(d, "_id"),
                "id": d["_id"],
                "pin_salt": _bytes(d["pin_salt"]),
                "pin_hash": _bytes(d["pin_hash"]),
            }
        )

    def insert_user(self, user: User) -> None:
        doc = {**_strip(user.__dict__, "id"), "_id": user.id}
        self._insert("users", doc)

    def get_user(self, user_id: str) -> User | None:
        d = self._find("users", {"_id": user_id})
        return self._user(d) if d else None

    def get_user_by_phone(self, phone: str) -> User | None:
        d = self._find("users", {"phone": phone})
        return self._user(d) if d else None

    def set_pin_state(self, user_id: str, failed_attempts: int, locked_until: float | None) -> None:
        self._update(
            "users",
            {"_id": user_id},
            {"$set": {"failed_pin_attempts": failed_attempts, "locked_until": locked_until}},
        )

    # ledger
    def create_account(self, account: str, allow_negative: bool = False) -> None:
        self._insert("accounts", {"_id": account, "balance": 0, "allow_negative": allow_negative})

    def balance(self, account: str) -> int:
        d = self._find("accounts", {"_id": account})
        if d is None:
            raise NotFound(f"account {account}")
        return int(d["balance"])

    def post_entry(self, reference: str, postings: Sequence[Posting], at: float) -> None:
        if len(postings) < 2 or sum(p.amount for p in postings) != 0:
            raise UnbalancedEntry(f"entry for {reference} does not balance")
        for p in postings:
            cond: dict[str, Any] = {"_id": p.account}
            if p.amount < 0:
                cond["$or"] = [{"allow_negative": True}, {"balance": {"$gte": -p.amount}}]
            result = self._db.accounts.update_one(
                cond, {"$inc": {"balance": p.amount}}, session=self._s
            )
            if result.matched_count != 1:
                if self._find("accounts", {"_id": p.account}) is None:
                    raise NotFound(f"account {p.account}")
                raise InsufficientFunds(p.account)
        self._insert(
            "ledger_entries",
            {
                "reference": reference,
                "created_at": at,
                "postings": [{"account": p.account, "amount": p.amount} for p in postings],
            },
        )

    def entries(self, reference: str) -> list[LedgerEntry]:
        docs = self._db.ledger_entries.find({"reference": reference}, session=self._s).sort("_id")
        return [
            LedgerEntry(
                str(d["_id"]),
                reference,
                tuple(Posting(p["account"], p["amount"]) for p in d["postings"]),
                d["created_at"],
            )
            for d in docs
        ]

    def total_balance(self) -> int:
        rows = list(
            self._db.accounts.aggregate(
                [{"$group": {"_id": None, "total": {"$sum": "$balance"}}}], session=self._s
            )
        )
        return int(rows[0]["total"]) if rows else 0

    # devices and gateways
    @staticmethod
    def _device(d: dict[str, Any]) -> Device:
        window = ReplayWindow(
            d["window_highest"], int.from_bytes(_bytes(d["window_bitmap"]), "big")
        )
        return Device(
            d["_id"],
            d["user_id"],
            d["phone"],
            _bytes(d["wrapped_key"]),
            d["created_at"],
            window,
            d.get("last_seen_at"),
            d["active"],
        )

    def insert_device(self, device: Device) -> None:
        self._insert(
            "devices",
            {
                "_id": device.key_id,
                "user_id": device.user_id,
                "phone": device.phone,
                "wrapped_key": Binary(device.wrapped_key),
                "created_at": device.created_at,
                "window_highest": device.window.highest,
                "window_bitmap": Binary(device.window.bitmap.to_bytes(8, "big")),
                "last_seen_at": device.last_seen_at,
                "active": device.active,
            },
        )

    def get_device(self, key_id: int) -> Device | None:
        d = self._find("devices", {"_id": key_id})
        return self._device(d) if d else None

    def devices(self) -> list[Device]:
        return [self._device(d) for d in self._db.devices.find({}, session=self._s).sort("_id")]

    def save_window(self, key_id: int, window: ReplayWindow, seen_at: float) -> None:
        self._update(
            "devices",
            {"_id": key_id},
            {
                "$set": {
                    "window_highest": window.highest,
                    "window_bitmap": Binary(window.bitmap.to_bytes(8, "big")),
                    "last_seen_at": seen_at,
                }
            },
        )

    def set_device_key(self, key_id: int, wrapped_key: bytes) -> None:
        self._update("devices", {"_id": key_id}, {"$set": {"wrapped_key": Binary(wrapped_key)}})

    def deactivate_devices(self, user_id: str) -> int:
        result = self._db.devices.update_many(
            {"user_id": user_id, "active": True}, {"$set": {"active": False}}, session=self._s
        )
        return result.modified_count

    @staticmethod
    def _gateway(d: dict[str, Any]) -> TaskerGateway:
        return TaskerGateway(
            d["_id"], _bytes(d["wrapped_secret"]), d["created_at"], d.get("last_seen_at")
        )

    def insert_gateway(self, gateway: TaskerGateway) -> None:
        self._insert(
            "tasker_gateways",
            {
                "_id": gateway.id,
                "wrapped_secret": Binary(gateway.wrapped_secret),
                "created_at": gateway.created_at,
                "last_seen_at": gateway.last_seen_at,
            },
        )

    def get_gateway(self, gateway_id: str) -> TaskerGateway | None:
        d = self._find("tasker_gateways", {"_id": gateway_id})
        return self._gateway(d) if d else None

    def gateways(self) -> list[TaskerGateway]:
        docs = self._db.tasker_gateways.find({}, session=self._s).sort("_id")
        return [self._gateway(d) for d in docs]

    def set_gateway_secret(self, gateway_id: str, wrapped_secret: bytes) -> None:
        self._update(
            "tasker_gateways",
            {"_id": gateway_id},
            {"$set": {"wrapped_secret": Binary(wrapped_secret)}},
        )

    def touch_gateway(self, gateway_id: str, seen_at: float) -> None:
        self._update("tasker_gateways", {"_id": gateway_id}, {"$set": {"last_seen_at": seen_at}})

    # inbound SMS and frames
    @staticmethod
    def _inbound(d: dict[str, Any]) -> InboundRecord:
        return InboundRecord(**{**_strip(d, "_id"), "id": str(d["_id"])})

    def find_inbound(self, route: str, provider_message_id: str) -> InboundRecord | None:
        d = self._find("inbound_sms", {"route": route, "provider_message_id": provider_message_id})
        return self._inbound(d) if d else None

    def insert_inbound(self, record: InboundRecord) -> None:
        self._insert("inbound_sms", _strip(record.__dict__, "id"))

    def count_redelivery(self, inbound_id: str) -> None:
        self._update("inbound_sms", {"_id": ObjectId(inbound_id)}, {"$inc": {"deliveries": 1}})

    def inbound_for(self, sender: str, limit: int = 50) -> list[InboundRecord]:
        docs = self._db.inbound_sms.find({"sender": sender}, session=self._s)
        return [self._inbound(d) for d in docs.sort("_id", DESCENDING).limit(limit)]

    def find_frame(self, key_id: int, counter: int) -> FrameRecord | None:
        d = self._find("frames", {"_id": f"{key_id}:{counter}"})
        return FrameRecord(**_strip(d, "_id", "expires")) if d else None

    def insert_frame(self, record: FrameRecord) -> None:
        expires = datetime.fromtimestamp(record.processed_at + FRAME_TTL_SECONDS, UTC)
        self._insert(
            "frames",
            {**record.__dict__, "_id": f"{record.key_id}:{record.counter}", "expires": expires},
        )

    # transactions
    @staticmethod
    def _txn(d: dict[str, Any]) -> Transaction:
        fields = _strip(d, "_id", "events")
        return Transaction(
            **{
                **fields,
                "reference": d["_id"],
                "kind": TransactionKind(d["kind"]),
                "state": TransactionState(d["state"]),
            }
        )

    def insert_transaction(self, txn: Transaction, reason: str) -> None:
        doc = {
            **_strip(txn.__dict__, "reference"),
            "_id": txn.reference,
            "kind": txn.kind.value,
            "state": txn.state.value,
            "events": [{"state": txn.state.value, "reason": reason, "at": txn.created_at}],
        }
        self._insert("transactions", doc)

    def set_state(self, reference: str, state: TransactionState, reason: str, at: float) -> None:
        self._update(
            "transactions",
            {"_id": reference},
            {
                "$set": {"state": state.value, "reason": reason, "updated_at": at},
                "$push": {"events": {"state": state.value, "reason": reason, "at": at}},
            },
        )

    def get_transaction(self, reference: str) -> Transaction | None:
        d = self._find("transactions", {"_id": reference})
        return self._txn(d) if d else None

    def events(self, reference: str) -> list[TransactionEvent]:
        d = self._db.transactions.find_one({"_id": reference}, {"events": 1}, session=self._s)
        events = d["events"] if d else []
        return [
            TransactionEvent(reference, TransactionState(e["state"]), e["reason"], e["at"])
            for e in events
        ]

    def debited_since(self, user_id: str, since: float) -> int:
        rows = list(
            self._db.transactions.aggregate(
                [
                    {
                        "$match": {
                            "payer_id": user_id,
                            "created_at": {"$gte": since},
                            "state": {"$in": LIVE_STATES},
                        }
                    },
                    {"$group": {"_id": None, "total": {"$sum": "$amount"}}},
                ],
                session=self._s,
            )
        )
        return int(rows[0]["total"]) if rows else 0

    # outbox
    @staticmethod
    def _sms(d: dict[str, Any]) -> OutboundSms:
        fields = _strip(d, "_id", "recipient")
        return OutboundSms(**{**fields, "to": d["recipient"], "id": str(d["_id"])})

    @staticmethod
    def _sms_doc(m: OutboundSms) -> dict[str, Any]:
        return {**_strip(m.__dict__, "id", "to"), "recipient": m.to}

    def enqueue_sms(self, message: OutboundSms) -> None:
        sms_id = str(self._insert("outbox_sms", self._sms_doc(message)))
        at = message.created_at
        self.enqueue_job("sms.send", f"sms.send:{sms_id}", {"id": sms_id}, at, at)

    def outbox(self, limit: int = 100) -> list[OutboundSms]:
        docs = self._db.outbox_sms.find({}, session=self._s).sort("_id").limit(limit)
        return [self._sms(d) for d in docs]

    def get_sms(self, sms_id: str) -> OutboundSms | None:
        if not ObjectId.is_valid(sms_id):  # not an id this backend makes
            return None
        d = self._find("outbox_sms", {"_id": ObjectId(sms_id)})
        return self._sms(d) if d else None

    def find_sms_by_provider_id(self, provider_id: str) -> OutboundSms | None:
        d = self._find("outbox_sms", {"provider_id": provider_id})
        return self._sms(d) if d else None

    def update_sms(self, sms_id: str, now: float, **changes: Any) -> None:
        allowed = {
            "status",
            "channel",
            "provider_id",
            "error",
            "lease_gateway",
            "lease_until",
            "attempts",
        }
        if not changes or set(changes) - allowed:
            raise ValueError(f"cannot change {sorted(set(changes) - allowed)}")
        self._update(
            "outbox_sms", {"_id": ObjectId(sms_id)}, {"$set": {**changes, "updated_at": now}}
        )

    def lease_sms(
        self, gateway_id: str, now: float, lease_seconds: float, limit: int, max_attempts: int
    ) -> list[OutboundSms]:
        self._db.outbox_sms.update_many(  # offered often enough and never acked: give up on it
            {
                "channel": "tasker",
                "status": "sending",
                "lease_until": {"$lt": now},
                "attempts": {"$gte": max_attempts},
            },
            {
                "$set": {
                    "status": "failed",
                    "error": "no phone acknowledged it",
                    "lease_until": None,
                    "updated_at": now,
                }
            },
            session=self._s,
        )
        if limit <= 0:
            return []
        due = {
            "channel": "tasker",
            "$or": [{"status": "pending"}, {"status": "sending", "lease_until": {"$lt": now}}],
        }
        ids = [
            d["_id"]
            for d in self._db.outbox_sms.find(due, {"_id": 1}, session=self._s)
            .sort("_id")
            .limit(limit)
        ]
        if ids:
            self._db.outbox_sms.update_many(
                {"_id": {"$in": ids}},
                {
                    "$set": {
                        "status": "sending",
                        "lease_gateway": gateway_id,
                        "lease_until": now + lease_seconds,
                        "updated_at": now,
                    },
                    "$inc": {"attempts": 1},
                },
                session=self._s,
            )
        docs = self._db.outbox_sms.find({"_id": {"$in": ids}}, session=self._s).sort("_id")
        return [self._sms(d) for d in docs]

    def take_in_window(self, key: str, limit: int, window: float, want: int, now: float) -> int:
        d = self._find("rate_windows", {"_id": key})
        stamps = [t for t in d["stamps"] if t > now - window] if d else []
        granted = max(-len(stamps), want) if want < 0 else max(0, min(want, limit - len(stamps)))
        stamps = stamps[:granted] if granted < 0 else stamps + [now] * granted
        self._db.rate_windows.replace_one(
            {"_id": key},
            {"stamps": stamps, "expires": datetime.fromtimestamp(now + window, UTC)},
            upsert=True,
            session=self._s,
        )
        return granted

    def take_tokens(
        self, bucket: str, capacity: float, per_second: float, want: int, now: float
    ) -> int:
        d = self._find("rate_buckets", {"_id": bucket})
        tokens = (
            capacity if d is None else min(capacity, d["tokens"] + (now - d["at"]) * per_second)
        )
        granted = want if want < 0 else max(0, min(want, int(tokens)))  # want < 0: give back
        self._db.rate_buckets.replace_one(
            {"_id": bucket},
            {
                "tokens": min(capacity, tokens - granted),
                "at": now,
                "expires": datetime.fromtimestamp(now + 86_400, UTC),
            },
            upsert=True,
            session=self._s,
        )
        return granted

    # jobs and provider events (a job's _id is its unique key)
    @staticmethod
    def _job(d: dict[str, Any]) -> Job:
        return Job(
            **{
                **_strip(d, "_id"),
                "id": d["_id"],
                "key": d["_id"],
                "status": JobStatus(d["status"]),
            }
        )

    def enqueue_job(
        self, kind: str, key: str, payload: dict[str, Any], run_after: float, now: float
    ) -> bool:
        result = self._db.jobs.update_one(
            {"_id": key},
            {
                "$setOnInsert": {
                    "kind": kind,
                    "payload": payload,
                    "status": "pending",
                    "attempts": 0,
                    "run_after": run_after,
                    "created_at": now,
                    "updated_at": now,
                    "lease_owner": None,
                    "lease_until": None,
                    "last_error": "",
                }
            },
            upsert=True,
            session=self._s,
        )
        return result.upserted_id is not None

    def claim_job(
        self, owner: str, now: float, lease_seconds: float, kinds: Sequence[str]
    ) -> Job | None:
        d = self._db.jobs.find_one_and_update(
            {
                "kind": {"$in": list(kinds)},
                "$or": [
                    {"status": "pending", "run_after": {"$lte": now}},
                    {"status": "running", "lease_until": {"$lt": now}},
                ],
            },
            {
                "$set": {
                    "status": "running",
                    "lease_owner": owner,
                    "lease_until": now + lease_seconds,
                    "updated_at": now,
                },
                "$inc": {"attempts": 1},
            },
            sort=[("run_after", ASCENDING), ("_id", ASCENDING)],
            return_document=ReturnDocument.AFTER,
            session=self._s,
        )
        return self._job(d) if d else None

    def _leased(
        self, job_id: str, owner: str, update: dict[str, Any], inc: dict[str, int] | None = None
    ) -> bool:
        result = self._db.jobs.update_one(
            {"_id": job_id, "lease_owner": owner, "status": "running"},
            {"$set": update, **({"$inc": inc} if inc else {})},
            session=self._s,
        )
        return result.modified_count == 1

    def finish_job(self, job_id: str, owner: str, now: float) -> bool:
        return self._leased(
            job_id, owner, {"status": "done", "lease_until": None, "updated_at": now}
        )

    def retry_job(
        self, job_id: str, owner: str, run_after: float, error: str, now: float, count: bool = True
    ) -> bool:
        return self._leased(
            job_id,
            owner,
            {
                "status": "pending",
                "run_after": run_after,
                "last_error": error,
                "lease_owner": None,
                "lease_until": None,
                "updated_at": now,
            },
            inc={} if count else {"attempts": -1},
        )

    def bury_job(self, job_id: str, owner: str, error: str, now: float) -> bool:
        return self._leased(
            job_id,
            owner,
            {"status": "dead", "last_error": error, "lease_until": None, "updated_at": now},
        )

    def revive_job(self, job_id: str, now: float) -> bool:
        result = self._db.jobs.update_one(
            {"_id": job_id, "status": "dead"},
            {"$set": {"status": "pending", "attempts": 0, "run_after": now, "updated_at": now}},
            session=self._s,
        )
        return result.modified_count == 1

    def jobs(self, status: JobStatus | None = None, limit: int = 100) -> list[Job]:
        query = {} if status is None else {"status": status.value}
        docs = self._db.jobs.find(query, session=self._s).sort(
            [("created_at", ASCENDING), ("_id", ASCENDING)]
        )
        return [self._job(d) for d in docs.limit(limit)]

    def find_provider_event(self, provider: str, event_id: str) -> ProviderEvent | None:
        d = self._find("provider_events", {"_id": f"{provider}:{event_id}"})
        return ProviderEvent(**_strip(d, "_id")) if d else None

    def insert_provider_event(self, event: ProviderEvent) -> None:
        self._insert(
            "provider_events", {**event.__dict__, "_id": f"{event.provider}:{event.event_id}"}
        )

    # meta
    def get_meta(self, key: str) -> bytes | None:
        d = self._find("meta", {"_id": key})
        return _bytes(d["value"]) if d else None

    def put_meta_if_absent(self, key: str, value: bytes) -> bytes:
        d = self._db.meta.find_one_and_update(
            {"_id": key},
            {"$setOnInsert": {"value": Binary(value)}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=self._s,
        )
        assert d is not None
        return _bytes(d["value"])

    def set_meta(self, key: str, value: bytes) -> None:
        self._db.meta.update_one(
            {"_id": key}, {"$set": {"value": Binary(value)}}, upsert=True, session=self._s
        )

    # whole-store export and import (storage/transfer.py)
    @staticmethod
    def _collection(kind: str) -> str:
        if kind not in KINDS:  # every kind is a collection of that name
            raise ValueError(f"unknown kind {kind!r}")
        return kind

    def count(self, kind: str) -> int:
        """How many records of one kind the database holds."""
        return self._db[self._collection(kind)].count_documents({}, session=self._s)

    def dump(self, kind: str) -> Iterator[Record]:
        """Every record of one kind, by _id (the order of the SQLite dump too)."""
        if self._collection(kind) in STAFF_KINDS:
            return self._dump_staff(kind)
        builders: dict[str, Callable[[dict[str, Any]], Record]] = {
            "meta": lambda d: MetaValue(d["_id"], _bytes(d["value"])),
            "users": self._user,
            "accounts": lambda d: Account(d["_id"], int(d["balance"]), bool(d["allow_negative"])),
            "devices": self._device,
            "tasker_gateways": self._gateway,
            "transactions": lambda d: History(
                self._txn(d),
                tuple(
                    TransactionEvent(d["_id"], TransactionState(e["state"]), e["reason"], e["at"])
                    for e in d["events"]
                ),
            ),
            "ledger_entries": lambda d: LedgerEntry(
                str(d["_id"]),
                d["reference"],
                tuple(Posting(p["account"], p["amount"]) for p in d["postings"]),
                d["created_at"],
            ),
            "inbound_sms": self._inbound,
            "frames": lambda d: FrameRecord(**_strip(d, "_id", "expires")),
            "jobs": self._job,
            "provider_events": lambda d: ProviderEvent(**_strip(d, "_id")),
            "outbox_sms": self._sms,
        }
        docs = self._db[self._collection(kind)].find({}, session=self._s).sort("_id")
        return map(builders[kind], docs)

    def load(self, kind: str, records: Sequence[Record]) -> None:
        """Insert exported records as they are, in bulk; generated ids are new but in order."""
        if self._collection(kind) in STAFF_KINDS:
            return self._load_staff(kind, records)
        expected = RECORDS[self._collection(kind)]
        if any(type(r) is not expected for r in records):
            raise TypeError(f"not all records are {kind}")
        if kind == "meta":
            for r in records:
                assert isinstance(r, MetaValue)
                self.set_meta(r.key, r.value)
            return
        docs = [self._import_doc(r) for r in records]
        if kind in ("ledger_entries", "inbound_sms", "outbox_sms") and docs:
            for doc, new_id in zip(docs, self._next_ids(kind, len(docs)), strict=True):
                doc["_id"] = new_id
        if not docs:
            return
        try:
            self._db[kind].insert_many(docs, ordered=True, session=self._s)
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

    @staticmethod
    def _import_doc(r: Record) -> dict[str, Any]:
        """The document the insert methods above write for a record."""
        if isinstance(r, User):
            return {**_strip(r.__dict__, "id"), "_id": r.id}
        if isinstance(r, Account):
            return {"_id": r.id, "balance": r.balance, "allow_negative": r.allow_negative}
        if isinstance(r, Device):
            return {
                "_id": r.key_id,
                "user_id": r.user_id,
                "phone": r.phone,
                "wrapped_key": Binary(r.wrapped_key),
                "created_at": r.created_at,
                "window_highest": r.window.highest,
                "window_bitmap": Binary(r.window.bitmap.to_bytes(8, "big")),
                "last_seen_at": r.last_seen_at,
                "active": r.active,
            }
        if isinstance(r, TaskerGateway):
            return {
                "_id": r.id,
                "wrapped_secret": Binary(r.wrapped_secret),
                "created_at": r.created_at,
                "last_seen_at": r.last_seen_at,
            }
        if isinstance(r, History):
            t = r.transaction
            return {
                **_strip(t.__dict__, "reference"),
                "_id": t.reference,
                "kind": t.kind.value,
                "state": t.state.value,
                "events": [
                    {"state": e.state.value, "reason": e.reason, "at": e.at} for e in r.events
                ],
            }
        if isinstance(r, LedgerEntry):
            return {
                "reference": r.reference,
                "created_at": r.created_at,
                "postings": [{"account": p.account, "amount": p.amount} for p in r.postings],
            }
        if isinstance(r, InboundRecord):
            return _strip(r.__dict__, "id")
        if isinstance(r, FrameRecord):
            expires = datetime.fromtimestamp(r.processed_at + FRAME_TTL_SECONDS, UTC)
            return {**r.__dict__, "_id": f"{r.key_id}:{r.counter}", "expires": expires}
        if isinstance(r, Job):
            return {**_strip(r.__dict__, "id", "key"), "_id": r.key, "status": r.status.value}
        if isinstance(r, ProviderEvent):
            return {**r.__dict__, "_id": f"{r.provider}:{r.event_id}"}
        if isinstance(r, OutboundSms):
            return MongoUnitOfWork._sms_doc(r)
        raise TypeError(f"no document for {type(r).__name__}")


class MongoStore:
    """MongoDB backend: a replica set (or Atlas) is required for transactions."""

    def __init__(self, uri: str, timeout_ms: int = 3_000) -> None:
        self.uri = uri
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
        names = self._call(lambda: self.db.users.index_information())
        if "phone_unique" not in names:
            raise SchemaMissing("MongoDB indexes are missing: run `flask --app wsgi db init`")
        self._checked = True

    @staticmethod
    def _call(fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (ConnectionFailure, ServerSelectionTimeoutError) as exc:
            raise StoreUnavailable(f"MongoDB unreachable: {type(exc).__name__}") from exc

    def atomic(self, fn: Callable[[MongoUnitOfWork], T]) -> T:
        """Run `fn` in a majority-committed transaction, again on transient or duplicate errors."""
        self._check_ready()
        for attempt in range(DUPLICATE_RETRIES + 1):
            try:
                return self._call(lambda: self._transaction(fn))
            except DuplicateKey:
                if attempt == DUPLICATE_RETRIES:
                    raise
            except OperationFailure as exc:
                raise StoreUnavailable(f"MongoDB refused the transaction: {exc.code}") from exc
        raise AssertionError("unreachable")

    def _transaction(self, fn: Callable[[MongoUnitOfWork], T]) -> T:
        db = self.db

        def callback(session: ClientSession) -> T:
            return fn(MongoUnitOfWork(db, session))

        with db.client.start_session() as session:
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

        try:
            return self._call(snapshot)
        except OperationFailure as exc:
            raise StoreUnavailable(f"MongoDB refused the query: {exc.code}") from exc

    def init(self) -> None:
        """Create collections and indexes (idempotent)."""
        db = self.db
        try:
            existing = set(self._call(db.list_collection_names))
            for name in [*INDEXES, *STAFF_INDEXES, "accounts", "meta", "tasker_gateways"]:
                if name not in existing:
                    db.create_collection(name)
            for name, models in [*INDEXES.items(), *STAFF_INDEXES.items()]:
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
