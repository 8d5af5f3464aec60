"""Meta values, and every record of one kind for `db export` / `db import`, over SQLite."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from itertools import groupby

from storage.contract import Meta, UnitOfWork
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
    Posting,
    ProviderEvent,
    Record,
    StaffMember,
    TaskerGateway,
    User,
)
from storage.sqlite.base import (
    SqliteBase,
    device_of,
    inbound_of,
    job_of,
    sms_of,
    staff_of,
    transaction_of,
)
from storage.sqlite.outbox import insert_sms
from storage.sqlite.transactions import insert_event, insert_transaction_row

# How each kind is read back, in the same order as MongoDB's dump (transactions and ledger
# entries, which join two tables, have their own readers below).
DUMPS: dict[str, tuple[str, Callable[[sqlite3.Row], Record]]] = {
    "meta": ("SELECT * FROM meta ORDER BY key", lambda r: MetaValue(r[0], bytes(r[1]))),
    "users": ("SELECT * FROM users ORDER BY id", lambda r: User(**dict(r))),
    "accounts": (
        "SELECT * FROM accounts ORDER BY id",
        lambda r: Account(r["id"], r["balance"], bool(r["allow_negative"])),
    ),
    "devices": ("SELECT * FROM devices ORDER BY key_id", device_of),
    "tasker_gateways": (
        "SELECT * FROM tasker_gateways ORDER BY id",
        lambda r: TaskerGateway(**dict(r)),
    ),
    "inbound_sms": ("SELECT * FROM inbound_sms ORDER BY id", inbound_of),
    "frames": (  # MongoDB's order: by the text "<key_id>:<counter>"
        "SELECT * FROM frames ORDER BY key_id || ':' || counter",
        lambda r: FrameRecord(**dict(r)),
    ),
    "outbox_sms": ("SELECT * FROM outbox_sms ORDER BY id", sms_of),
    "jobs": ("SELECT * FROM jobs ORDER BY key", job_of),
    "provider_events": (
        "SELECT * FROM provider_events ORDER BY provider || ':' || event_id",
        lambda r: ProviderEvent(**dict(r)),
    ),
    "staff": ("SELECT * FROM staff ORDER BY id", staff_of),
    "api_tokens": ("SELECT * FROM api_tokens ORDER BY token_hash", lambda r: ApiToken(**dict(r))),
    "audit_log": ("SELECT * FROM audit_log ORDER BY id", lambda r: AuditEntry(**dict(r))),
}


class SqliteMeta(SqliteBase, Meta):
    """The meta table: small named values."""

    def get_meta(self, key: str) -> bytes | None:
        """The value under `key`, or None."""
        row = self._one("SELECT value FROM meta WHERE key = ?", key)
        return bytes(row[0]) if row else None

    def put_meta_if_absent(self, key: str, value: bytes) -> bytes:
        """Store `value` unless the key has one; returns the value stored (first wins)."""
        self._c.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))
        stored = self.get_meta(key)
        assert stored is not None
        return stored

    def set_meta(self, key: str, value: bytes) -> None:
        """Store or replace the value under `key`."""
        self._c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))


class SqliteTransfer(SqliteBase, UnitOfWork):
    """Count, dump and load; loading writes through the other parts, hence the whole contract."""

    @staticmethod
    def _table(kind: str) -> str:
        if kind not in KINDS:  # every kind is a table of that name
            raise ValueError(f"unknown kind {kind!r}")
        return kind

    def count(self, kind: str) -> int:
        """How many records of one kind the store holds."""
        return int(self._one(f"SELECT COUNT(*) FROM {self._table(kind)}")[0])  # type: ignore[index]

    def dump(self, kind: str) -> Iterator[Record]:
        """Every record of one kind, in the same order as MongoDB's dump."""
        if self._table(kind) == "transactions":
            rows = self._c.execute("SELECT * FROM transactions ORDER BY reference")
            return (History(t, tuple(self.events(t.reference))) for t in map(transaction_of, rows))
        if kind == "ledger_entries":
            return self._dump_entries()
        sql, build = DUMPS[kind]
        return map(build, self._c.execute(sql))

    def _dump_entries(self) -> Iterator[LedgerEntry]:
        rows = self._c.execute(
            "SELECT e.id, e.reference, e.created_at, p.account, p.amount FROM ledger_entries e"
            " JOIN postings p ON p.entry_id = e.id ORDER BY e.id, p.rowid"
        )
        for entry_id, group in groupby(rows, key=lambda r: r["id"]):
            legs = list(group)
            postings = tuple(Posting(r["account"], r["amount"]) for r in legs)
            yield LedgerEntry(str(entry_id), legs[0]["reference"], postings, legs[0]["created_at"])

    def load(self, kind: str, records: Sequence[Record]) -> None:
        """Insert exported records as they are, in order; generated ids are new."""
        expected = RECORDS[self._table(kind)]
        for r in records:
            if type(r) is not expected:
                raise TypeError(f"a {type(r).__name__} is not a record of {kind}")
            self._load_one(r)

    def _load_one(self, r: Record) -> None:
        if isinstance(r, MetaValue):
            self.set_meta(r.key, r.value)
        elif isinstance(r, User):
            self.insert_user(r)
        elif isinstance(r, Account):  # with its balance, which create_account cannot set
            self._insert("INSERT INTO accounts VALUES (?, ?, ?)", r.id, r.balance, r.allow_negative)
        elif isinstance(r, Device):
            self.insert_device(r)
        elif isinstance(r, TaskerGateway):
            self.insert_gateway(r)
        elif isinstance(r, History):  # every event as it was, not a first one made anew
            insert_transaction_row(self._c, r.transaction)
            for e in r.events:
                insert_event(self._c, e.reference, e.state, e.reason, e.at)
        elif isinstance(r, LedgerEntry):  # as posted: balances came with the accounts
            entry_id = self._insert(
                "INSERT INTO ledger_entries (reference, created_at) VALUES (?, ?)",
                r.reference, r.created_at,
            )  # fmt: skip
            legs = [(entry_id, p.account, p.amount) for p in r.postings]
            self._c.executemany("INSERT INTO postings VALUES (?, ?, ?)", legs)
        elif isinstance(r, InboundRecord):
            self.insert_inbound(r)
        elif isinstance(r, FrameRecord):
            self.insert_frame(r)
        elif isinstance(r, OutboundSms):  # its job comes with the jobs, if it was still due
            insert_sms(self._c, r)
        elif isinstance(r, Job):  # with its status, attempts and lease
            self._insert(
                "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                r.key, r.kind, json.dumps(r.payload, sort_keys=True), r.status.value,
                r.attempts, r.run_after, r.created_at, r.updated_at, r.lease_owner,
                r.lease_until, r.last_error,
            )  # fmt: skip
        elif isinstance(r, ProviderEvent):
            self.insert_provider_event(r)
        elif isinstance(r, StaffMember):
            self.insert_staff(r)
        elif isinstance(r, ApiToken):
            self.insert_token(r)
        elif isinstance(r, AuditEntry):
            self.insert_audit(r)
