"""MongoDB collections, indexes and queries for support staff (mixed into MongoUnitOfWork)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from crypto.replay import ReplayWindow
from storage.errors import DuplicateKey, NotFound
from storage.models import (
    RECORDS,
    STAFF_KINDS,
    ApiToken,
    AuditEntry,
    Device,
    InboundRecord,
    Job,
    JobStatus,
    OutboundSms,
    ProviderEvent,
    StaffMember,
    StaffRole,
    Transaction,
    TransactionGroup,
    TransactionKind,
    TransactionState,
)

__all__ = ["STAFF_INDEXES", "STAFF_KINDS", "MongoStaffMixin"]

# Only the staff collections: an entry here would replace the core indexes of a collection of
# the same name. The audit log is append-only by contract (no method updates or deletes it).
STAFF_INDEXES: dict[str, list[IndexModel]] = {
    "staff": [IndexModel("name", unique=True, name="name_unique")],
    "api_tokens": [
        IndexModel("staff_id", name="staff"),
        IndexModel("prefix", name="prefix"),
    ],
    "audit_log": [
        IndexModel([("actor", ASCENDING), ("_id", DESCENDING)], name="actor"),
        IndexModel([("target", ASCENDING), ("_id", DESCENDING)], name="target"),
    ],
}
FINAL_STATES = ["SUCCESS", "FAILED"]


def _staff(d: dict[str, Any]) -> StaffMember:
    return StaffMember(d["_id"], d["name"], StaffRole(d["role"]), d["created_at"],
                       d.get("password_hash", ""))  # fmt: skip


def _token(d: dict[str, Any]) -> ApiToken:
    return ApiToken(d["_id"], d["prefix"], d["staff_id"], d["created_at"], d.get("revoked_at"))


def _audit(d: dict[str, Any]) -> AuditEntry:
    return AuditEntry(
        d["_id"], d["at"], d["actor"], d["action"], d["target"], d["reason"], d.get("outcome", "")
    )


def _txn(d: dict[str, Any]) -> Transaction:
    fields = {k: v for k, v in d.items() if k not in ("_id", "events")}
    return Transaction(**{**fields, "reference": d["_id"], "kind": TransactionKind(d["kind"]),
                          "state": TransactionState(d["state"])})  # fmt: skip


def _sms(d: dict[str, Any]) -> OutboundSms:
    fields = {k: v for k, v in d.items() if k not in ("_id", "recipient")}
    return OutboundSms(**{**fields, "to": d["recipient"], "id": str(d["_id"])})


def _device(d: dict[str, Any]) -> Device:
    bitmap = int.from_bytes(bytes(d["window_bitmap"] or b""), "big")
    return Device(d["_id"], d["user_id"], d["phone"], bytes(d["wrapped_key"]), d["created_at"],
                  ReplayWindow(d["window_highest"], bitmap), d.get("last_seen_at"),
                  d["active"])  # fmt: skip


def _job(d: dict[str, Any]) -> Job:
    fields = {k: v for k, v in d.items() if k != "_id"}
    return Job(**{**fields, "id": d["_id"], "key": d["_id"], "status": JobStatus(d["status"])})


def _doc(r: StaffMember | ApiToken | AuditEntry) -> dict[str, Any]:
    if isinstance(r, StaffMember):
        return {"_id": r.id, "name": r.name, "role": r.role.value, "created_at": r.created_at,
                "password_hash": r.password_hash}  # fmt: skip
    if isinstance(r, ApiToken):
        return {"_id": r.token_hash, "prefix": r.prefix, "staff_id": r.staff_id,
                "created_at": r.created_at, "revoked_at": r.revoked_at}  # fmt: skip
    return {"_id": r.id, "at": r.at, "actor": r.actor, "action": r.action, "target": r.target,
            "reason": r.reason, "outcome": r.outcome}  # fmt: skip


class MongoStaffMixin:
    """Staff, audit and support queries over the unit of work's session."""

    _db: Database[dict[str, Any]]
    _s: ClientSession | None

    def _staff_insert(self, collection: str, doc: dict[str, Any]) -> None:
        try:
            self._db[collection].insert_one(doc, session=self._s)
        except DuplicateKeyError as exc:
            raise DuplicateKey(str(exc)) from exc

    # staff and tokens
    def insert_staff(self, member: StaffMember) -> None:
        self._staff_insert("staff", _doc(member))

    def get_staff(self, staff_id: str) -> StaffMember | None:
        d = self._db.staff.find_one({"_id": staff_id}, session=self._s)
        return _staff(d) if d else None

    def get_staff_by_name(self, name: str) -> StaffMember | None:
        d = self._db.staff.find_one({"name": name}, session=self._s)
        return _staff(d) if d else None

    def staff_members(self) -> list[StaffMember]:
        return [_staff(d) for d in self._db.staff.find({}, session=self._s).sort("name")]

    def set_staff_password(self, staff_id: str, password_hash: str) -> None:
        result = self._db.staff.update_one(
            {"_id": staff_id}, {"$set": {"password_hash": password_hash}}, session=self._s
        )
        if result.matched_count != 1:
            raise NotFound(f"staff {staff_id}")

    def insert_token(self, token: ApiToken) -> None:
        self._staff_insert("api_tokens", _doc(token))

    def get_token(self, token_hash: str) -> ApiToken | None:
        d = self._db.api_tokens.find_one({"_id": token_hash}, session=self._s)
        return _token(d) if d else None

    def tokens_of(self, staff_id: str) -> list[ApiToken]:
        docs = self._db.api_tokens.find({"staff_id": staff_id}, session=self._s)
        return [_token(d) for d in docs.sort([("created_at", ASCENDING), ("_id", ASCENDING)])]

    def revoke_tokens(
        self, at: float, staff_id: str | None = None, prefix: str | None = None
    ) -> int:
        if staff_id is None and prefix is None:
            raise ValueError("name the staff member or the token prefix")
        query: dict[str, Any] = {"revoked_at": None}
        if staff_id is not None:
            query["staff_id"] = staff_id
        if prefix is not None:
            query["prefix"] = prefix
        result = self._db.api_tokens.update_many(
            query, {"$set": {"revoked_at": at}}, session=self._s
        )
        return result.modified_count

    # audit log
    def insert_audit(self, entry: AuditEntry) -> None:
        self._staff_insert("audit_log", _doc(entry))

    def audit_entries(
        self, limit: int = 50, offset: int = 0, actor: str | None = None, target: str | None = None
    ) -> list[AuditEntry]:
        query: dict[str, Any] = {}
        if actor is not None:
            query["actor"] = actor
        if target is not None:
            query["target"] = target
        docs = self._db.audit_log.find(query, session=self._s).sort("_id", DESCENDING)
        return [_audit(d) for d in docs.skip(offset).limit(limit)]

    # support queries
    def search_transactions(
        self,
        phone: str | None = None,
        state: TransactionState | None = None,
        since: float | None = None,
        until: float | None = None,
        reference: str | None = None,
        oldest_first: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Transaction]:
        query: dict[str, Any] = {}
        if reference is not None:
            query["_id"] = reference
        if state is not None:
            query["state"] = state.value
        window = {op: value for op, value in (("$gte", since), ("$lt", until)) if value is not None}
        if window:
            query["created_at"] = window
        if phone is not None:
            query["$or"] = [{"payer_phone": phone}, {"payee": phone}]
        order = ASCENDING if oldest_first else DESCENDING
        docs = self._db.transactions.find(query, {"events": 0}, session=self._s)
        docs = docs.sort([("created_at", order), ("_id", ASCENDING)])
        return [_txn(d) for d in docs.skip(offset).limit(limit)]

    def inbound_for_reference(self, reference: str) -> list[InboundRecord]:
        docs = self._db.inbound_sms.find({"reference": reference}, session=self._s).sort("_id")
        return [
            InboundRecord(**{**{k: v for k, v in d.items() if k != "_id"}, "id": str(d["_id"])})
            for d in docs
        ]

    def outbound_for_reference(self, reference: str) -> list[OutboundSms]:
        docs = self._db.outbox_sms.find({"reference": reference}, session=self._s).sort("_id")
        return [_sms(d) for d in docs]

    def provider_events_for(self, reference: str) -> list[ProviderEvent]:
        docs = self._db.provider_events.find({"reference": reference}, session=self._s)
        return [
            ProviderEvent(**{k: v for k, v in d.items() if k != "_id"})
            for d in docs.sort([("received_at", ASCENDING), ("event_id", ASCENDING)])
        ]

    def jobs_for_reference(self, reference: str) -> list[Job]:
        docs = self._db.jobs.find({"payload.reference": reference}, session=self._s)
        return [_job(d) for d in docs.sort([("created_at", ASCENDING), ("_id", ASCENDING)])]

    def devices_of(self, user_id: str) -> list[Device]:
        docs = self._db.devices.find({"user_id": user_id}, session=self._s)
        return [_device(d) for d in docs.sort([("created_at", ASCENDING), ("_id", ASCENDING)])]

    # KPIs
    def transaction_groups(self, since: float, until: float) -> list[TransactionGroup]:
        # a failure's reason up to its first ':' ("insufficient_funds", "rejected by staff")
        why = {
            "$cond": [
                {"$eq": ["$state", "FAILED"]},
                {"$arrayElemAt": [{"$split": ["$reason", ":"]}, 0]},
                "",
            ]
        }
        rows = self._db.transactions.aggregate(
            [
                {"$match": {"created_at": {"$gte": since, "$lt": until}}},
                {
                    "$group": {
                        "_id": {"state": "$state", "channel": "$channel", "why": why},
                        "count": {"$sum": 1},
                        "amount": {"$sum": "$amount"},
                    }
                },
            ],
            session=self._s,
        )
        return [
            TransactionGroup(
                TransactionState(r["_id"]["state"]),
                r["_id"]["channel"],
                r["_id"]["why"],
                int(r["count"]),
                int(r["amount"]),
            )  # fmt: skip
            for r in rows
        ]

    def settle_seconds(self, since: float, until: float, limit: int) -> list[float]:
        docs = self._db.transactions.find(
            {"created_at": {"$gte": since, "$lt": until}, "state": {"$in": FINAL_STATES}},
            {"created_at": 1, "events": 1},
            session=self._s,
        )
        seconds = []
        for d in docs.sort([("created_at", DESCENDING), ("_id", ASCENDING)]).limit(limit):
            finals = [e["at"] for e in d.get("events", []) if e["state"] in FINAL_STATES]
            if finals:
                seconds.append(max(0.0, float(min(finals) - d["created_at"])))
        return seconds

    # export and import of the staff collections (storage/transfer.py)
    def _dump_staff(self, kind: str) -> Iterator[StaffMember | ApiToken | AuditEntry]:
        docs = self._db[kind].find({}, session=self._s).sort("_id")
        if kind == "staff":
            return map(_staff, docs)
        return map(_token, docs) if kind == "api_tokens" else map(_audit, docs)

    def _load_staff(self, kind: str, records: Sequence[object]) -> None:
        docs = []
        for r in records:
            if type(r) is not RECORDS[kind]:
                raise TypeError(f"a {type(r).__name__} is not a record of {kind}")
            assert isinstance(r, StaffMember | ApiToken | AuditEntry)
            docs.append(_doc(r))
        if not docs:
            return
        try:
            self._db[kind].insert_many(docs, ordered=True, session=self._s)
        except BulkWriteError as exc:
            if any(e.get("code") == 11000 for e in exc.details.get("writeErrors", [])):
                raise DuplicateKey(f"{kind}: {exc}") from exc
            raise
