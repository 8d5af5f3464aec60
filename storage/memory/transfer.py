"""Small named values, and the whole-store export and import (storage/transfer.py), in memory."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

from storage.errors import DuplicateKey
from storage.memory.tables import Part, json_copy
from storage.models import (
    KINDS,
    RECORDS,
    Account,
    ApiToken,
    AuditEntry,
    Device,
    FrameRecord,
    History,
    InboundRecord,
    Job,
    LedgerEntry,
    MetaValue,
    OutboundSms,
    ProviderEvent,
    Record,
    StaffMember,
    TaskerGateway,
    User,
)

if TYPE_CHECKING:
    from storage.memory.unit_of_work import MemoryUnitOfWork


def _kind(kind: str) -> str:
    if kind not in KINDS:  # every kind is a table of that name
        raise ValueError(f"unknown kind {kind!r}")
    return kind


class TransferPart(Part):
    """`Meta` and `Transfer` of the contract; dumps in the order of the SQLite and MongoDB dumps."""

    def _uow(self) -> MemoryUnitOfWork:
        return cast("MemoryUnitOfWork", self)

    # meta
    def get_meta(self, key: str) -> bytes | None:
        return self._t.meta.get(key)

    def put_meta_if_absent(self, key: str, value: bytes) -> bytes:
        return self._w().meta.setdefault(key, value)

    def set_meta(self, key: str, value: bytes) -> None:
        self._w().meta[key] = value

    # export and import
    def count(self, kind: str) -> int:
        table: dict[Any, Any] = getattr(self._t, _kind(kind))
        return len(table)

    def dump(self, kind: str) -> Iterator[Record]:
        t = self._t
        dumps: dict[str, Callable[[], Iterable[Record]]] = {
            "meta": lambda: (MetaValue(k, v) for k, v in sorted(t.meta.items())),
            "users": lambda: _by_key(t.users),
            "accounts": lambda: _by_key(t.accounts),
            "devices": lambda: _by_key(t.devices),
            "tasker_gateways": lambda: _by_key(t.tasker_gateways),
            "transactions": lambda: (
                History(txn, t.events[ref]) for ref, txn in sorted(t.transactions.items())
            ),
            "ledger_entries": lambda: _by_key(t.ledger_entries),
            "inbound_sms": lambda: _by_key(t.inbound_sms),
            "frames": lambda: sorted(t.frames.values(), key=lambda f: f"{f.key_id}:{f.counter}"),
            "jobs": lambda: (replace_payload(j) for j in _by_key(t.jobs)),
            "provider_events": lambda: sorted(
                t.provider_events.values(), key=lambda e: f"{e.provider}:{e.event_id}"
            ),
            "outbox_sms": lambda: _by_key(t.outbox_sms),
            "staff": lambda: _by_key(t.staff),
            "api_tokens": lambda: _by_key(t.api_tokens),
            "audit_log": lambda: _by_key(t.audit_log),
        }
        return iter(list(dumps[_kind(kind)]()))

    def load(self, kind: str, records: Sequence[Record]) -> None:
        expected = RECORDS[_kind(kind)]
        for r in records:
            if type(r) is not expected:
                raise TypeError(f"a {type(r).__name__} is not a record of {kind}")
            self._load(r)

    def _load(self, r: Record) -> None:
        uow, t = self._uow(), self._w()
        if isinstance(r, MetaValue):
            uow.set_meta(r.key, r.value)
        elif isinstance(r, User):
            uow.insert_user(r)
        elif isinstance(r, Account):
            if r.id in t.accounts:
                raise DuplicateKey(f"account {r.id}")
            if r.balance < 0 and not r.allow_negative:
                raise ValueError(f"account {r.id} may not hold a negative balance")
            t.accounts[r.id] = r
        elif isinstance(r, Device):
            uow.insert_device(r)
        elif isinstance(r, TaskerGateway):
            uow.insert_gateway(r)
        elif isinstance(r, History):
            ref = r.transaction.reference
            if ref in t.transactions:
                raise DuplicateKey(f"transaction {ref}")
            t.transactions[ref], t.events[ref] = r.transaction, r.events
        elif isinstance(r, LedgerEntry):
            entry_id = t.next_id("ledger_entries")
            t.ledger_entries[entry_id] = LedgerEntry(
                str(entry_id), r.reference, r.postings, r.created_at
            )
        elif isinstance(r, InboundRecord):
            uow.insert_inbound(r)
        elif isinstance(r, FrameRecord):
            uow.insert_frame(r)
        elif isinstance(r, Job):
            if r.key in t.jobs:
                raise DuplicateKey(f"job {r.key}")
            t.jobs[r.key] = replace_payload(r)
        elif isinstance(r, ProviderEvent):
            uow.insert_provider_event(r)
        elif isinstance(r, OutboundSms):
            uow._insert_sms(r)
        elif isinstance(r, StaffMember):
            uow.insert_staff(r)
        elif isinstance(r, ApiToken):
            uow.insert_token(r)
        elif isinstance(r, AuditEntry):
            uow.insert_audit(r)


def _by_key(table: dict[Any, Any]) -> list[Any]:
    return [value for _, value in sorted(table.items())]


def replace_payload(job: Job) -> Job:
    """The job with its id as its key and a payload of its own."""
    return Job(**{**job.__dict__, "id": job.key, "payload": json_copy(job.payload)})
