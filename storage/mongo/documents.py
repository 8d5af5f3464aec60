"""Records to MongoDB documents and back: the one place that says how each record is stored.

Databases in use hold these shapes: field names, types and `_id`s must not change. The part that
owns a collection writes and reads it through these functions, and so does the export and import.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bson import Binary

from crypto.replay import ReplayWindow
from storage.models import (
    Account,
    ApiToken,
    AuditEntry,
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
    StaffMember,
    StaffRole,
    TaskerGateway,
    Transaction,
    TransactionEvent,
    TransactionKind,
    TransactionState,
    User,
)

FRAME_TTL_SECONDS = 90 * 86_400  # the window refuses old counters; the answers can expire


def strip(doc: dict[str, Any], *drop: str) -> dict[str, Any]:
    """The document without the named fields."""
    return {k: v for k, v in doc.items() if k not in drop}


def as_bytes(value: Any) -> bytes:
    """A stored binary (BSON Binary, or None in an older document) as bytes."""
    return bytes(value) if value is not None else b""


def meta_value(d: dict[str, Any]) -> MetaValue:
    """A meta document as a record."""
    return MetaValue(d["_id"], as_bytes(d["value"]))


def user(d: dict[str, Any]) -> User:
    """A users document as a record."""
    blobs = {"pin_salt": as_bytes(d["pin_salt"]), "pin_hash": as_bytes(d["pin_hash"])}
    return User(**{**strip(d, "_id"), "id": d["_id"], **blobs})


def user_doc(u: User) -> dict[str, Any]:
    """The users document of a record."""
    return {**strip(u.__dict__, "id"), "_id": u.id}


def account(d: dict[str, Any]) -> Account:
    """An accounts document as a record."""
    return Account(d["_id"], int(d["balance"]), bool(d["allow_negative"]))


def account_doc(a: Account) -> dict[str, Any]:
    """The accounts document of a record."""
    return {"_id": a.id, "balance": a.balance, "allow_negative": a.allow_negative}


def window_fields(window: ReplayWindow) -> dict[str, Any]:
    """A replay window as the two fields of a devices document."""
    return {
        "window_highest": window.highest,
        "window_bitmap": Binary(window.bitmap.to_bytes(8, "big")),
    }


def device(d: dict[str, Any]) -> Device:
    """A devices document as a record."""
    window = ReplayWindow(d["window_highest"], int.from_bytes(as_bytes(d["window_bitmap"]), "big"))
    return Device(d["_id"], d["user_id"], d["phone"], as_bytes(d["wrapped_key"]),
                  d["created_at"], window, d.get("last_seen_at"), d["active"])  # fmt: skip


def device_doc(r: Device) -> dict[str, Any]:
    """The devices document of a record."""
    return {
        "_id": r.key_id,
        "user_id": r.user_id,
        "phone": r.phone,
        "wrapped_key": Binary(r.wrapped_key),
        "created_at": r.created_at,
        **window_fields(r.window),
        "last_seen_at": r.last_seen_at,
        "active": r.active,
    }


def gateway(d: dict[str, Any]) -> TaskerGateway:
    """A tasker_gateways document as a record."""
    return TaskerGateway(
        d["_id"], as_bytes(d["wrapped_secret"]), d["created_at"], d.get("last_seen_at")
    )


def gateway_doc(g: TaskerGateway) -> dict[str, Any]:
    """The tasker_gateways document of a record."""
    return {
        "_id": g.id,
        "wrapped_secret": Binary(g.wrapped_secret),
        "created_at": g.created_at,
        "last_seen_at": g.last_seen_at,
    }


def entry(d: dict[str, Any]) -> LedgerEntry:
    """A ledger_entries document as a record (its id is the ObjectId's hex)."""
    postings = tuple(Posting(p["account"], p["amount"]) for p in d["postings"])
    return LedgerEntry(str(d["_id"]), d["reference"], postings, d["created_at"])


def entry_doc(reference: str, postings: Sequence[Posting], at: float) -> dict[str, Any]:
    """A ledger_entries document without its _id (MongoDB makes one)."""
    return {
        "reference": reference,
        "created_at": at,
        "postings": [{"account": p.account, "amount": p.amount} for p in postings],
    }


def inbound(d: dict[str, Any]) -> InboundRecord:
    """An inbound_sms document as a record (its id is the ObjectId's hex)."""
    return InboundRecord(**{**strip(d, "_id"), "id": str(d["_id"])})


def inbound_doc(r: InboundRecord) -> dict[str, Any]:
    """An inbound_sms document without its _id (MongoDB makes one)."""
    return strip(r.__dict__, "id")


def frame(d: dict[str, Any]) -> FrameRecord:
    """A frames document as a record."""
    return FrameRecord(**strip(d, "_id", "expires"))


def frame_doc(r: FrameRecord) -> dict[str, Any]:
    """The frames document of a record: keyed by device key and counter, expiring by TTL."""
    expires = datetime.fromtimestamp(r.processed_at + FRAME_TTL_SECONDS, UTC)
    return {**r.__dict__, "_id": f"{r.key_id}:{r.counter}", "expires": expires}


def transaction(d: dict[str, Any]) -> Transaction:
    """A transactions document as a record (its history left out)."""
    fields = strip(d, "_id", "events")
    return Transaction(**{**fields, "reference": d["_id"], "kind": TransactionKind(d["kind"]),
                          "state": TransactionState(d["state"])})  # fmt: skip


def events(reference: str, d: dict[str, Any] | None) -> list[TransactionEvent]:
    """The history kept inside a transactions document (none if there is no document)."""
    stored = d["events"] if d else []
    return [TransactionEvent(reference, TransactionState(e["state"]), e["reason"], e["at"])
            for e in stored]  # fmt: skip


def event_doc(state: TransactionState, reason: str, at: float) -> dict[str, Any]:
    """One event of the history array."""
    return {"state": state.value, "reason": reason, "at": at}


def history(d: dict[str, Any]) -> History:
    """A transactions document as a record with its history."""
    return History(transaction(d), tuple(events(d["_id"], d)))


def transaction_doc(t: Transaction, past: Sequence[TransactionEvent]) -> dict[str, Any]:
    """The transactions document of a record: its history is an array inside it."""
    return {
        **strip(t.__dict__, "reference"),
        "_id": t.reference,
        "kind": t.kind.value,
        "state": t.state.value,
        "events": [event_doc(e.state, e.reason, e.at) for e in past],
    }


def sms(d: dict[str, Any]) -> OutboundSms:
    """An outbox_sms document as a record (`to` is stored as `recipient`)."""
    fields = strip(d, "_id", "recipient")
    return OutboundSms(**{**fields, "to": d["recipient"], "id": str(d["_id"])})


def sms_doc(m: OutboundSms) -> dict[str, Any]:
    """An outbox_sms document without its _id (MongoDB makes one)."""
    return {**strip(m.__dict__, "id", "to"), "recipient": m.to}


def job(d: dict[str, Any]) -> Job:
    """A jobs document as a record: a job's _id is its unique key."""
    return Job(**{**strip(d, "_id"), "id": d["_id"], "key": d["_id"],
                  "status": JobStatus(d["status"])})  # fmt: skip


def job_doc(r: Job) -> dict[str, Any]:
    """The jobs document of a record."""
    return {**strip(r.__dict__, "id", "key"), "_id": r.key, "status": r.status.value}


def provider_event(d: dict[str, Any]) -> ProviderEvent:
    """A provider_events document as a record."""
    return ProviderEvent(**strip(d, "_id"))


def provider_event_doc(e: ProviderEvent) -> dict[str, Any]:
    """The provider_events document of a record, keyed by provider and event id."""
    return {**e.__dict__, "_id": f"{e.provider}:{e.event_id}"}


def staff_member(d: dict[str, Any]) -> StaffMember:
    """A staff document as a record."""
    return StaffMember(d["_id"], d["name"], StaffRole(d["role"]), d["created_at"],
                       d.get("password_hash", ""))  # fmt: skip


def staff_doc(r: StaffMember) -> dict[str, Any]:
    """The staff document of a record."""
    return {"_id": r.id, "name": r.name, "role": r.role.value, "created_at": r.created_at,
            "password_hash": r.password_hash}  # fmt: skip


def token(d: dict[str, Any]) -> ApiToken:
    """An api_tokens document as a record."""
    return ApiToken(d["_id"], d["prefix"], d["staff_id"], d["created_at"], d.get("revoked_at"))


def token_doc(r: ApiToken) -> dict[str, Any]:
    """The api_tokens document of a record, keyed by the token's hash."""
    return {"_id": r.token_hash, "prefix": r.prefix, "staff_id": r.staff_id,
            "created_at": r.created_at, "revoked_at": r.revoked_at}  # fmt: skip


def audit(d: dict[str, Any]) -> AuditEntry:
    """An audit_log document as a record."""
    return AuditEntry(
        d["_id"], d["at"], d["actor"], d["action"], d["target"], d["reason"], d.get("outcome", "")
    )


def audit_doc(r: AuditEntry) -> dict[str, Any]:
    """The audit_log document of a record."""
    return {"_id": r.id, "at": r.at, "actor": r.actor, "action": r.action, "target": r.target,
            "reason": r.reason, "outcome": r.outcome}  # fmt: skip


def document(r: Record) -> dict[str, Any]:
    """The document a record is stored as (meta values are written by `set_meta` instead)."""
    if isinstance(r, User):
        return user_doc(r)
    if isinstance(r, Account):
        return account_doc(r)
    if isinstance(r, Device):
        return device_doc(r)
    if isinstance(r, TaskerGateway):
        return gateway_doc(r)
    if isinstance(r, History):
        return transaction_doc(r.transaction, r.events)
    if isinstance(r, LedgerEntry):
        return entry_doc(r.reference, r.postings, r.created_at)
    if isinstance(r, InboundRecord):
        return inbound_doc(r)
    if isinstance(r, FrameRecord):
        return frame_doc(r)
    if isinstance(r, OutboundSms):
        return sms_doc(r)
    if isinstance(r, Job):
        return job_doc(r)
    if isinstance(r, ProviderEvent):
        return provider_event_doc(r)
    if isinstance(r, StaffMember):
        return staff_doc(r)
    if isinstance(r, ApiToken):
        return token_doc(r)
    if isinstance(r, AuditEntry):
        return audit_doc(r)
    raise TypeError(f"no document for {type(r).__name__}")
