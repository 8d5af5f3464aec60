"""The tables of the in-memory store, and what every part of its unit of work shares.

Tables hold only immutable values (frozen records, tuples, bytes, numbers), so a shallow copy of
each dict is a complete copy: a unit of work writes on such a copy, and the store swaps it in when
the unit returns. Committed tables are never changed in place, which makes them a snapshot too.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, fields
from typing import Any

from storage.models import (
    Account,
    ApiToken,
    AuditEntry,
    Device,
    FrameRecord,
    InboundRecord,
    Job,
    LedgerEntry,
    OutboundSms,
    ProviderEvent,
    StaffMember,
    TaskerGateway,
    Transaction,
    TransactionEvent,
    User,
    WorkerBeat,
)


@dataclass
class Tables:
    """Every table, keyed like the SQLite schema's primary keys."""

    meta: dict[str, bytes] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)
    ledger_entries: dict[int, LedgerEntry] = field(default_factory=dict)
    devices: dict[int, Device] = field(default_factory=dict)
    tasker_gateways: dict[str, TaskerGateway] = field(default_factory=dict)
    inbound_sms: dict[int, InboundRecord] = field(default_factory=dict)
    frames: dict[tuple[int, int], FrameRecord] = field(default_factory=dict)
    transactions: dict[str, Transaction] = field(default_factory=dict)
    events: dict[str, tuple[TransactionEvent, ...]] = field(default_factory=dict)
    outbox_sms: dict[int, OutboundSms] = field(default_factory=dict)
    rate_buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # tokens, at
    rate_windows: dict[str, tuple[float, ...]] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    provider_events: dict[tuple[str, str], ProviderEvent] = field(default_factory=dict)
    staff: dict[str, StaffMember] = field(default_factory=dict)
    api_tokens: dict[str, ApiToken] = field(default_factory=dict)
    audit_log: dict[str, AuditEntry] = field(default_factory=dict)
    workers: dict[str, WorkerBeat] = field(default_factory=dict)
    spending: dict[str, tuple[float, int, float, int]] = field(default_factory=dict)  # per payer
    last_ids: dict[str, int] = field(default_factory=dict)  # generated integer ids, per table

    def copy(self) -> Tables:
        """A copy whose writes never reach this one (the values are immutable)."""
        return Tables(**{f.name: copy.copy(getattr(self, f.name)) for f in fields(self)})

    def next_id(self, table: str) -> int:
        """The next integer id of a table (1, 2, ...), like SQLite's INTEGER PRIMARY KEY."""
        self.last_ids[table] = self.last_ids.get(table, 0) + 1
        return self.last_ids[table]


def json_copy(payload: dict[str, Any]) -> dict[str, Any]:
    """A job payload as the SQLite backend stores it (JSON), never shared with the caller."""
    copied: dict[str, Any] = json.loads(json.dumps(payload, sort_keys=True))
    return copied


def numeric_id(value: str) -> int | None:
    """The integer behind an id this backend made, or None for any other string."""
    return int(value) if value.isdigit() else None


class Part:
    """The base of every part of the memory unit of work: its tables, and whether it may write."""

    def __init__(self, tables: Tables, writable: bool = True) -> None:
        self._tables = tables
        self._writable = writable

    @property
    def _t(self) -> Tables:
        """The tables, to read."""
        return self._tables

    def _w(self) -> Tables:
        """The tables, to write; a unit of work run by `read` writes nothing."""
        if not self._writable:
            raise RuntimeError("store.read is for queries; write in store.atomic")
        return self._tables
