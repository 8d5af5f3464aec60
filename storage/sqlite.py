"""The embedded store: one SQLite file in WAL mode, safe under several gunicorn workers.

Each process (and thread) opens its own connection after fork. Every unit of work that writes
runs under `BEGIN IMMEDIATE`, so writers queue on SQLite's lock instead of failing mid-way, and
money moves are serialised. For one machine; production uses MongoDB.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from itertools import groupby
from pathlib import Path
from typing import Any, TypeVar

from crypto.replay import ReplayWindow
from storage.errors import (
    DuplicateKey,
    InsufficientFunds,
    NotFound,
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
from storage.sqlite_staff import STAFF_KINDS, STAFF_SCHEMA, SqliteStaffMixin

T = TypeVar("T")
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 15_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY, phone TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
    pin_salt BLOB NOT NULL, pin_hash BLOB NOT NULL, created_at REAL NOT NULL,
    failed_pin_attempts INTEGER NOT NULL DEFAULT 0, locked_until REAL);
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY, balance INTEGER NOT NULL DEFAULT 0,
    allow_negative INTEGER NOT NULL DEFAULT 0,
    CHECK (allow_negative OR balance >= 0));
CREATE TABLE IF NOT EXISTS ledger_entries (
    id INTEGER PRIMARY KEY, reference TEXT NOT NULL, created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS ledger_entries_ref ON ledger_entries (reference);
CREATE TABLE IF NOT EXISTS postings (
    entry_id INTEGER NOT NULL REFERENCES ledger_entries (id), account TEXT NOT NULL
    REFERENCES accounts (id), amount INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS postings_entry ON postings (entry_id);
CREATE TABLE IF NOT EXISTS devices (
    key_id INTEGER PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users (id), phone TEXT NOT NULL,
    wrapped_key BLOB NOT NULL, created_at REAL NOT NULL, window_highest INTEGER NOT NULL
    DEFAULT 0, window_bitmap BLOB NOT NULL DEFAULT x'', last_seen_at REAL,
    active INTEGER NOT NULL DEFAULT 1);
CREATE INDEX IF NOT EXISTS devices_phone ON devices (phone);
CREATE TABLE IF NOT EXISTS tasker_gateways (
    id TEXT PRIMARY KEY, wrapped_secret BLOB NOT NULL, created_at REAL NOT NULL,
    last_seen_at REAL);
CREATE TABLE IF NOT EXISTS inbound_sms (
    id INTEGER PRIMARY KEY, route TEXT NOT NULL, sender TEXT NOT NULL, received_at REAL NOT NULL,
    outcome TEXT NOT NULL, reply TEXT NOT NULL, provider_message_id TEXT, gateway_id TEXT,
    key_id INTEGER, counter INTEGER, reference TEXT, deliveries INTEGER NOT NULL DEFAULT 1);
CREATE UNIQUE INDEX IF NOT EXISTS inbound_provider_id ON inbound_sms (route, provider_message_id)
    WHERE provider_message_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS inbound_sender ON inbound_sms (sender, received_at);
CREATE TABLE IF NOT EXISTS frames (
    key_id INTEGER NOT NULL, counter INTEGER NOT NULL, outcome TEXT NOT NULL, reply TEXT NOT NULL,
    processed_at REAL NOT NULL, reference TEXT, PRIMARY KEY (key_id, counter));
CREATE TABLE IF NOT EXISTS transactions (
    reference TEXT PRIMARY KEY, kind TEXT NOT NULL, amount INTEGER NOT NULL CHECK (amount > 0),
    state TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL, payer_id TEXT,
    payer_phone TEXT, payee_id TEXT, payee TEXT, reason TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '', channel TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS transactions_payer ON transactions (payer_id, created_at);
CREATE INDEX IF NOT EXISTS transactions_payer_phone ON transactions (payer_phone, created_at);
CREATE INDEX IF NOT EXISTS transactions_payee ON transactions (payee, created_at);
CREATE INDEX IF NOT EXISTS transactions_state ON transactions (state, created_at);
CREATE TABLE IF NOT EXISTS transaction_events (
    id INTEGER PRIMARY KEY, reference TEXT NOT NULL REFERENCES transactions (reference),
    state TEXT NOT NULL, reason TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS transaction_events_ref ON transaction_events (reference, id);
CREATE TABLE IF NOT EXISTS outbox_sms (
    id INTEGER PRIMARY KEY, recipient TEXT NOT NULL, body TEXT NOT NULL, reference TEXT,
    created_at REAL NOT NULL, status TEXT NOT NULL DEFAULT 'pending', channel TEXT NOT NULL
    DEFAULT '', provider_id TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '',
    updated_at REAL, lease_gateway TEXT, lease_until REAL, attempts INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS outbox_sms_status ON outbox_sms (status, id);
CREATE INDEX IF NOT EXISTS outbox_sms_reference ON outbox_sms (reference);
CREATE TABLE IF NOT EXISTS rate_buckets (
    key TEXT PRIMARY KEY, tokens REAL NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS rate_windows (key TEXT PRIMARY KEY, stamps TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT PRIMARY KEY, kind TEXT NOT NULL, payload TEXT NOT NULL,
    status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, run_after REAL NOT NULL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, lease_owner TEXT, lease_until REAL,
    last_error TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (status, run_after);
CREATE INDEX IF NOT EXISTS jobs_lease ON jobs (status, lease_until);
CREATE TABLE IF NOT EXISTS provider_events (
    provider TEXT NOT NULL, event_id TEXT NOT NULL, kind TEXT NOT NULL, reference TEXT NOT NULL,
    status TEXT NOT NULL, received_at REAL NOT NULL, outcome TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (provider, event_id));
CREATE INDEX IF NOT EXISTS provider_events_ref ON provider_events (reference);
"""


# Columns added after a table first shipped: (table, column, definition), applied once on init.
ADDED_COLUMNS = [
    ("outbox_sms", "channel", "TEXT NOT NULL DEFAULT ''"),
    ("outbox_sms", "provider_id", "TEXT NOT NULL DEFAULT ''"),
    ("outbox_sms", "error", "TEXT NOT NULL DEFAULT ''"),
    ("outbox_sms", "updated_at", "REAL"),
    ("outbox_sms", "lease_gateway", "TEXT"),
    ("outbox_sms", "lease_until", "REAL"),
    ("outbox_sms", "attempts", "INTEGER NOT NULL DEFAULT 0"),
]


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    for table, column, definition in ADDED_COLUMNS:
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")


def _window_bytes(window: ReplayWindow) -> bytes:
    return window.bitmap.to_bytes(8, "big")


class SqliteUnitOfWork(SqliteStaffMixin):
    """The contract's `UnitOfWork` over one SQLite connection inside a transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._c = conn

    def _one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._c.execute(sql, args).fetchone()
        return row

    def _insert(self, sql: str, *args: Any) -> int:
        try:
            cur = self._c.execute(sql, args)
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc) or "PRIMARY KEY" in str(exc):
                raise DuplicateKey(str(exc)) from exc
            raise
        return int(cur.lastrowid or 0)

    def _update(self, sql: str, *args: Any) -> None:
        if self._c.execute(sql, args).rowcount != 1:
            raise NotFound(sql.split()[1])

    # users
    def insert_user(self, user: User) -> None:
        self._insert(
            "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            user.id, user.phone, user.name, user.pin_salt, user.pin_hash, user.created_at,
            user.failed_pin_attempts, user.locked_until,
        )  # fmt: skip

    def get_user(self, user_id: str) -> User | None:
        row = self._one("SELECT * FROM users WHERE id = ?", user_id)
        return User(**dict(row)) if row else None

    def get_user_by_phone(self, phone: str) -> User | None:
        row = self._one("SELECT * FROM users WHERE phone = ?", phone)
        return User(**dict(row)) if row else None

    def set_pin_state(self, user_id: str, failed_attempts: int, locked_until: float | None) -> None:
        self._update(
            "UPDATE users SET failed_pin_attempts = ?, locked_until = ? WHERE id = ?",
            failed_attempts, locked_until, user_id,
        )  # fmt: skip

    # ledger
    def create_account(self, account: str, allow_negative: bool = False) -> None:
        self._insert(
            "INSERT INTO accounts (id, allow_negative) VALUES (?, ?)", account, allow_negative
        )

    def balance(self, account: str) -> int:
        row = self._one("SELECT balance FROM accounts WHERE id = ?", account)
        if row is None:
            raise NotFound(f"account {account}")
        return int(row[0])

    def post_entry(self, reference: str, postings: Sequence[Posting], at: float) -> None:
        if len(postings) < 2 or sum(p.amount for p in postings) != 0:
            raise UnbalancedEntry(f"entry for {reference} does not balance")
        entry_id = self._insert(
            "INSERT INTO ledger_entries (reference, created_at) VALUES (?, ?)", reference, at
        )
        for p in postings:
            cur = self._c.execute(
                "UPDATE accounts SET balance = balance + ? WHERE id = ?"
                " AND (allow_negative OR balance + ? >= 0)",
                (p.amount, p.account, p.amount),
            )
            if cur.rowcount != 1:
                if self._one("SELECT 1 FROM accounts WHERE id = ?", p.account) is None:
                    raise NotFound(f"account {p.account}")
                raise InsufficientFunds(p.account)
            self._c.execute(
                "INSERT INTO postings VALUES (?, ?, ?)", (entry_id, p.account, p.amount)
            )

    def entries(self, reference: str) -> list[LedgerEntry]:
        rows = self._c.execute(
            "SELECT e.id, e.created_at, p.account, p.amount FROM ledger_entries e"
            " JOIN postings p ON p.entry_id = e.id WHERE e.reference = ? ORDER BY e.id, p.rowid",
            (reference,),
        ).fetchall()
        by_id: dict[int, tuple[float, list[Posting]]] = {}
        for r in rows:
            by_id.setdefault(r["id"], (r["created_at"], []))[1].append(
                Posting(r["account"], r["amount"])
            )
        return [LedgerEntry(str(i), reference, tuple(ps), at) for i, (at, ps) in by_id.items()]

    def total_balance(self) -> int:
        return int(self._one("SELECT COALESCE(SUM(balance), 0) FROM accounts")[0])  # type: ignore[index]

    # devices and gateways
    def insert_device(self, device: Device) -> None:
        self._insert(
            "INSERT INTO devices VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            device.key_id, device.user_id, device.phone, device.wrapped_key, device.created_at,
            device.window.highest, _window_bytes(device.window), device.last_seen_at,
            device.active,
        )  # fmt: skip

    @staticmethod
    def _device(row: sqlite3.Row) -> Device:
        d = dict(row)
        bitmap = int.from_bytes(d.pop("window_bitmap"), "big")
        window = ReplayWindow(d.pop("window_highest"), bitmap)
        return Device(**{**d, "window": window, "active": bool(d["active"])})

    def get_device(self, key_id: int) -> Device | None:
        row = self._one("SELECT * FROM devices WHERE key_id = ?", key_id)
        return self._device(row) if row else None

    def devices(self) -> list[Device]:
        return [self._device(r) for r in self._c.execute("SELECT * FROM devices ORDER BY key_id")]

    def save_window(self, key_id: int, window: ReplayWindow, seen_at: float) -> None:
        self._update(
            "UPDATE devices SET window_highest = ?, window_bitmap = ?, last_seen_at = ?"
            " WHERE key_id = ?",
            window.highest, _window_bytes(window), seen_at, key_id,
        )  # fmt: skip

    def set_device_key(self, key_id: int, wrapped_key: bytes) -> None:
        self._update("UPDATE devices SET wrapped_key = ? WHERE key_id = ?", wrapped_key, key_id)

    def deactivate_devices(self, user_id: str) -> int:
        cur = self._c.execute(
            "UPDATE devices SET active = 0 WHERE user_id = ? AND active = 1", (user_id,)
        )
        return cur.rowcount

    def insert_gateway(self, gateway: TaskerGateway) -> None:
        self._insert(
            "INSERT INTO tasker_gateways VALUES (?, ?, ?, ?)",
            gateway.id, gateway.wrapped_secret, gateway.created_at, gateway.last_seen_at,
        )  # fmt: skip

    def get_gateway(self, gateway_id: str) -> TaskerGateway | None:
        row = self._one("SELECT * FROM tasker_gateways WHERE id = ?", gateway_id)
        return TaskerGateway(**dict(row)) if row else None

    def gateways(self) -> list[TaskerGateway]:
        rows = self._c.execute("SELECT * FROM tasker_gateways ORDER BY id")
        return [TaskerGateway(**dict(r)) for r in rows]

    def set_gateway_secret(self, gateway_id: str, wrapped_secret: bytes) -> None:
        self._update(
            "UPDATE tasker_gateways SET wrapped_secret = ? WHERE id = ?", wrapped_secret, gateway_id
        )

    def touch_gateway(self, gateway_id: str, seen_at: float) -> None:
        self._update(
            "UPDATE tasker_gateways SET last_seen_at = ? WHERE id = ?", seen_at, gateway_id
        )

    # inbound SMS and frames
    def find_inbound(self, route: str, provider_message_id: str) -> InboundRecord | None:
        row = self._one(
            "SELECT * FROM inbound_sms WHERE route = ? AND provider_message_id = ?",
            route, provider_message_id,
        )  # fmt: skip
        return self._inbound(row) if row else None

    @staticmethod
    def _inbound(row: sqlite3.Row) -> InboundRecord:
        return InboundRecord(**{**dict(row), "id": str(row["id"])})

    def insert_inbound(self, record: InboundRecord) -> None:
        self._insert(
            "INSERT INTO inbound_sms (route, sender, received_at, outcome, reply,"
            " provider_message_id, gateway_id, key_id, counter, reference, deliveries)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            record.route, record.sender, record.received_at, record.outcome, record.reply,
            record.provider_message_id, record.gateway_id, record.key_id, record.counter,
            record.reference, record.deliveries,
        )  # fmt: skip

    def count_redelivery(self, inbound_id: str) -> None:
        self._update("UPDATE inbound_sms SET deliveries = deliveries + 1 WHERE id = ?", inbound_id)

    def inbound_for(self, sender: str, limit: int = 50) -> list[InboundRecord]:
        rows = self._c.execute(
            "SELECT * FROM inbound_sms WHERE sender = ? ORDER BY id DESC LIMIT ?", (sender, limit)
        )
        return [self._inbound(r) for r in rows]

    def find_frame(self, key_id: int, counter: int) -> FrameRecord | None:
        row = self._one("SELECT * FROM frames WHERE key_id = ? AND counter = ?", key_id, counter)
        return FrameRecord(**dict(row)) if row else None

    def insert_frame(self, record: FrameRecord) -> None:
        self._insert(
            "INSERT INTO frames VALUES (?, ?, ?, ?, ?, ?)",
            record.key_id, record.counter, record.outcome, record.reply, record.processed_at,
            record.reference,
        )  # fmt: skip

    # transactions
    def insert_transaction(self, txn: Transaction, reason: str) -> None:
        self._insert(
            "INSERT INTO transactions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            txn.reference, txn.kind.value, txn.amount, txn.state.value, txn.created_at,
            txn.updated_at, txn.payer_id, txn.payer_phone, txn.payee_id, txn.payee, txn.reason,
            txn.note, txn.channel,
        )  # fmt: skip
        self._event(txn.reference, txn.state, reason, txn.created_at)

    def _event(self, reference: str, state: TransactionState, reason: str, at: float) -> None:
        self._c.execute(
            "INSERT INTO transaction_events (reference, state, reason, at) VALUES (?, ?, ?, ?)",
            (reference, state.value, reason, at),
        )

    def set_state(self, reference: str, state: TransactionState, reason: str, at: float) -> None:
        self._update(
            "UPDATE transactions SET state = ?, reason = ?, updated_at = ? WHERE reference = ?",
            state.value, reason, at, reference,
        )  # fmt: skip
        self._event(reference, state, reason, at)

    @staticmethod
    def _txn(row: sqlite3.Row) -> Transaction:
        d = dict(row)
        return Transaction(
            **{**d, "kind": TransactionKind(d["kind"]), "state": TransactionState(d["state"])}
        )

    def get_transaction(self, reference: str) -> Transaction | None:
        row = self._one("SELECT * FROM transactions WHERE reference = ?", reference)
        return self._txn(row) if row else None

    def events(self, reference: str) -> list[TransactionEvent]:
        rows = self._c.execute(
            "SELECT reference, state, reason, at FROM transaction_events WHERE reference = ?"
            " ORDER BY id",
            (reference,),
        )
        return [TransactionEvent(r[0], TransactionState(r[1]), r[2], r[3]) for r in rows]

    def debited_since(self, user_id: str, since: float) -> int:
        row = self._one(
            "SELECT COALESCE(SUM(amount), 0) FROM transactions WHERE payer_id = ?"
            " AND created_at >= ? AND state IN ('PENDING', 'PROCESSING', 'SUCCESS', 'FLAGGED')",
            user_id, since,
        )  # fmt: skip
        return int(row[0]) if row else 0

    # outbox
    @staticmethod
    def _sms(row: sqlite3.Row) -> OutboundSms:
        d = dict(row)
        to = d.pop("recipient")
        return OutboundSms(**{**d, "to": to, "id": str(d["id"])})

    def _insert_sms(self, m: OutboundSms) -> str:
        return str(self._insert(
            "INSERT INTO outbox_sms (recipient, body, reference, created_at, status, channel,"
            " provider_id, error, updated_at, lease_gateway, lease_until, attempts)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            m.to, m.body, m.reference, m.created_at, m.status, m.channel, m.provider_id, m.error,
            m.updated_at, m.lease_gateway, m.lease_until, m.attempts,
        ))  # fmt: skip

    def enqueue_sms(self, message: OutboundSms) -> None:
        sms_id = self._insert_sms(message)
        at = message.created_at
        self.enqueue_job("sms.send", f"sms.send:{sms_id}", {"id": sms_id}, at, at)

    def outbox(self, limit: int = 100) -> list[OutboundSms]:
        rows = self._c.execute("SELECT * FROM outbox_sms ORDER BY id LIMIT ?", (limit,))
        return [self._sms(r) for r in rows]

    def get_sms(self, sms_id: str) -> OutboundSms | None:
        if not sms_id.isdigit():  # not an id this backend makes
            return None
        row = self._one("SELECT * FROM outbox_sms WHERE id = ?", int(sms_id))
        return self._sms(row) if row else None

    def find_sms_by_provider_id(self, provider_id: str) -> OutboundSms | None:
        row = self._one("SELECT * FROM outbox_sms WHERE provider_id = ?", provider_id)
        return self._sms(row) if row else None

    def update_sms(self, sms_id: str, now: float, **changes: Any) -> None:
        allowed = {"status", "channel", "provider_id", "error", "lease_gateway", "lease_until",
                   "attempts"}  # fmt: skip
        if not changes or set(changes) - allowed:
            raise ValueError(f"cannot change {sorted(set(changes) - allowed)}")
        columns = ", ".join(f"{name} = ?" for name in changes)
        self._update(f"UPDATE outbox_sms SET {columns}, updated_at = ? WHERE id = ?",
                     *changes.values(), now, int(sms_id))  # fmt: skip

    def lease_sms(
        self, gateway_id: str, now: float, lease_seconds: float, limit: int, max_attempts: int
    ) -> list[OutboundSms]:
        self._c.execute(  # offered often enough and never acked: give up on it
            "UPDATE outbox_sms SET status = 'failed', error = 'no phone acknowledged it',"
            " lease_until = NULL, updated_at = ? WHERE channel = 'tasker' AND status = 'sending'"
            " AND lease_until < ? AND attempts >= ?",
            (now, now, max_attempts),
        )
        if limit <= 0:
            return []
        rows = self._c.execute(
            "SELECT id FROM outbox_sms WHERE channel = 'tasker' AND (status = 'pending' OR"
            " (status = 'sending' AND lease_until < ?)) ORDER BY id LIMIT ?",
            (now, limit),
        ).fetchall()
        for (sms_id,) in rows:
            self._c.execute(
                "UPDATE outbox_sms SET status = 'sending', lease_gateway = ?, lease_until = ?,"
                " attempts = attempts + 1, updated_at = ? WHERE id = ?",
                (gateway_id, now + lease_seconds, now, sms_id),
            )
        return [s for s in (self.get_sms(str(r[0])) for r in rows) if s is not None]

    def take_in_window(self, key: str, limit: int, window: float, want: int, now: float) -> int:
        row = self._one("SELECT stamps FROM rate_windows WHERE key = ?", key)
        stamps = [t for t in json.loads(row[0]) if t > now - window] if row else []
        granted = max(-len(stamps), want) if want < 0 else max(0, min(want, limit - len(stamps)))
        stamps = stamps[:granted] if granted < 0 else stamps + [now] * granted
        self._c.execute(
            "INSERT OR REPLACE INTO rate_windows VALUES (?, ?)", (key, json.dumps(stamps))
        )
        return granted

    def take_tokens(
        self, bucket: str, capacity: float, per_second: float, want: int, now: float
    ) -> int:
        row = self._one("SELECT tokens, updated_at FROM rate_buckets WHERE key = ?", bucket)
        tokens = capacity if row is None else min(capacity, row[0] + (now - row[1]) * per_second)
        granted = want if want < 0 else max(0, min(want, int(tokens)))  # want < 0: give back
        self._c.execute("INSERT OR REPLACE INTO rate_buckets VALUES (?, ?, ?)",
                        (bucket, min(capacity, tokens - granted), now))  # fmt: skip
        return granted

    # jobs and provider events
    @staticmethod
    def _job(row: sqlite3.Row) -> Job:
        d = dict(row)
        return Job(**{**d, "id": d["key"], "payload": json.loads(d["payload"]),
                      "status": JobStatus(d["status"])})  # fmt: skip

    def enqueue_job(
        self, kind: str, key: str, payload: dict[str, Any], run_after: float, now: float
    ) -> bool:
        cur = self._c.execute(
            "INSERT OR IGNORE INTO jobs (kind, key, payload, status, run_after, created_at,"
            " updated_at) VALUES (?, ?, ?, 'pending', ?, ?, ?)",
            (kind, key, json.dumps(payload, sort_keys=True), run_after, now, now),
        )
        return cur.rowcount == 1

    def claim_job(
        self, owner: str, now: float, lease_seconds: float, kinds: Sequence[str]
    ) -> Job | None:
        marks = ",".join("?" * len(kinds))
        row = self._one(
            f"SELECT key FROM jobs WHERE kind IN ({marks}) AND ((status = 'pending' AND"
            " run_after <= ?) OR (status = 'running' AND lease_until < ?))"
            " ORDER BY run_after, key LIMIT 1",
            *kinds, now, now,
        )  # fmt: skip
        if row is None:
            return None
        self._c.execute(
            "UPDATE jobs SET status = 'running', lease_owner = ?, lease_until = ?,"
            " attempts = attempts + 1, updated_at = ? WHERE key = ?",
            (owner, now + lease_seconds, now, row[0]),
        )
        claimed = self._one("SELECT * FROM jobs WHERE key = ?", row[0])
        return self._job(claimed) if claimed else None

    def _leased(self, sql: str, job_id: str, owner: str, *args: Any) -> bool:
        cur = self._c.execute(
            sql + " WHERE key = ? AND lease_owner = ? AND status = 'running'",
            (*args, job_id, owner),
        )
        return cur.rowcount == 1

    def finish_job(self, job_id: str, owner: str, now: float) -> bool:
        return self._leased("UPDATE jobs SET status = 'done', lease_until = NULL, updated_at = ?",
                            job_id, owner, now)  # fmt: skip

    def retry_job(
        self, job_id: str, owner: str, run_after: float, error: str, now: float, count: bool = True
    ) -> bool:
        return self._leased(
            "UPDATE jobs SET status = 'pending', run_after = ?, last_error = ?,"
            " lease_owner = NULL, lease_until = NULL, updated_at = ?, attempts = attempts - ?",
            job_id, owner, run_after, error, now, 0 if count else 1,
        )  # fmt: skip

    def bury_job(self, job_id: str, owner: str, error: str, now: float) -> bool:
        return self._leased(
            "UPDATE jobs SET status = 'dead', last_error = ?, lease_until = NULL, updated_at = ?",
            job_id, owner, error, now,
        )  # fmt: skip

    def revive_job(self, job_id: str, now: float) -> bool:
        cur = self._c.execute(
            "UPDATE jobs SET status = 'pending', attempts = 0, run_after = ?, updated_at = ?"
            " WHERE key = ? AND status = 'dead'",
            (now, now, job_id),
        )
        return cur.rowcount == 1

    def jobs(self, status: JobStatus | None = None, limit: int = 100) -> list[Job]:
        if status is None:
            rows = self._c.execute("SELECT * FROM jobs ORDER BY created_at, key LIMIT ?", (limit,))
        else:
            rows = self._c.execute(
                "SELECT * FROM jobs WHERE status = ? ORDER BY created_at, key LIMIT ?",
                (status.value, limit),
            )
        return [self._job(r) for r in rows]

    def find_provider_event(self, provider: str, event_id: str) -> ProviderEvent | None:
        row = self._one(
            "SELECT * FROM provider_events WHERE provider = ? AND event_id = ?", provider, event_id
        )
        return ProviderEvent(**dict(row)) if row else None

    def insert_provider_event(self, event: ProviderEvent) -> None:
        self._insert(
            "INSERT INTO provider_events VALUES (?, ?, ?, ?, ?, ?, ?)",
            event.provider, event.event_id, event.kind, event.reference, event.status,
            event.received_at, event.outcome,
        )  # fmt: skip

    # meta
    def get_meta(self, key: str) -> bytes | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", key)
        return bytes(row[0]) if row else None

    def put_meta_if_absent(self, key: str, value: bytes) -> bytes:
        self._c.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))
        stored = self.get_meta(key)
        assert stored is not None
        return stored

    def set_meta(self, key: str, value: bytes) -> None:
        self._c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # whole-store export and import (storage/transfer.py)
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
        if kind in STAFF_KINDS:
            return self._dump_staff(kind)
        if self._table(kind) == "transactions":
            rows = self._c.execute("SELECT * FROM transactions ORDER BY reference")
            return (History(t, tuple(self.events(t.reference))) for t in map(self._txn, rows))
        if kind == "ledger_entries":
            return self._dump_entries()
        queries: dict[str, tuple[str, Callable[[sqlite3.Row], Record]]] = {
            "meta": ("SELECT * FROM meta ORDER BY key", lambda r: MetaValue(r[0], bytes(r[1]))),
            "users": ("SELECT * FROM users ORDER BY id", lambda r: User(**dict(r))),
            "accounts": (
                "SELECT * FROM accounts ORDER BY id",
                lambda r: Account(r["id"], r["balance"], bool(r["allow_negative"])),
            ),
            "devices": ("SELECT * FROM devices ORDER BY key_id", self._device),
            "tasker_gateways": (
                "SELECT * FROM tasker_gateways ORDER BY id",
                lambda r: TaskerGateway(**dict(r)),
            ),
            "inbound_sms": ("SELECT * FROM inbound_sms ORDER BY id", self._inbound),
            "frames": (  # MongoDB's order: by the text "<key_id>:<counter>"
                "SELECT * FROM frames ORDER BY key_id || ':' || counter",
                lambda r: FrameRecord(**dict(r)),
            ),
            "jobs": ("SELECT * FROM jobs ORDER BY key", self._job),
            "provider_events": (
                "SELECT * FROM provider_events ORDER BY provider || ':' || event_id",
                lambda r: ProviderEvent(**dict(r)),
            ),
            "outbox_sms": ("SELECT * FROM outbox_sms ORDER BY id", self._sms),
        }
        sql, build = queries[kind]
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
        if kind in STAFF_KINDS:
            return self._load_staff(kind, records)
        expected = RECORDS[self._table(kind)]
        for r in records:
            if type(r) is not expected:
                raise TypeError(f"a {type(r).__name__} is not a record of {kind}")
            if isinstance(r, MetaValue):
                self.set_meta(r.key, r.value)
            elif isinstance(r, User):
                self.insert_user(r)
            elif isinstance(r, Account):
                self._insert(
                    "INSERT INTO accounts VALUES (?, ?, ?)", r.id, r.balance, r.allow_negative
                )
            elif isinstance(r, Device):
                self.insert_device(r)
            elif isinstance(r, TaskerGateway):
                self.insert_gateway(r)
            elif isinstance(r, History):
                self._load_history(r)
            elif isinstance(r, LedgerEntry):
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
            elif isinstance(r, Job):
                self._insert(
                    "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    r.key, r.kind, json.dumps(r.payload, sort_keys=True), r.status.value,
                    r.attempts, r.run_after, r.created_at, r.updated_at, r.lease_owner,
                    r.lease_until, r.last_error,
                )  # fmt: skip
            elif isinstance(r, ProviderEvent):
                self.insert_provider_event(r)
            elif isinstance(r, OutboundSms):
                self._insert_sms(r)

    def _load_history(self, h: History) -> None:
        t = h.transaction
        self._insert(
            "INSERT INTO transactions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            t.reference, t.kind.value, t.amount, t.state.value, t.created_at, t.updated_at,
            t.payer_id, t.payer_phone, t.payee_id, t.payee, t.reason, t.note, t.channel,
        )  # fmt: skip
        for e in h.events:
            self._event(t.reference, e.state, e.reason, e.at)


class SqliteStore:
    """The embedded store: one file, one connection per process and thread."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._schema_ready = False

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                check_same_thread=False,
            )  # fmt: skip
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"cannot open {self.path.name}: {exc}") from exc
        self._local.conn, self._local.pid = conn, os.getpid()
        if not self._schema_ready:
            self.init()
        return conn

    def _run(self, begin: str, fn: Callable[[SqliteUnitOfWork], T]) -> T:
        conn = self._connect()
        if conn.in_transaction:
            raise RuntimeError("units of work do not nest; pass the caller's uow instead")
        try:
            conn.execute(begin)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(str(exc)) from exc
        try:
            result = fn(SqliteUnitOfWork(conn))
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            conn.execute("ROLLBACK")
            raise StoreUnavailable(str(exc)) from exc
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    def atomic(self, fn: Callable[[SqliteUnitOfWork], T]) -> T:
        """One write transaction under SQLite's write lock (BEGIN IMMEDIATE)."""
        return self._run("BEGIN IMMEDIATE", fn)

    def read(self, fn: Callable[[SqliteUnitOfWork], T]) -> T:
        """A read-only snapshot (WAL readers do not block writers)."""
        return self._run("BEGIN DEFERRED", fn)

    def init(self) -> None:
        """Create the schema if missing (idempotent) and record its version."""
        self._schema_ready = True
        conn = self._connect()
        try:
            conn.executescript(SCHEMA + STAFF_SCHEMA)
            _add_missing_columns(conn)
            conn.execute(
                "CREATE INDEX IF NOT EXISTS outbox_sms_provider ON outbox_sms (provider_id)"
            )
            conn.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION).encode(),),
            )
        except sqlite3.Error as exc:
            self._schema_ready = False
            raise StoreUnavailable(f"cannot prepare {self.path.name}: {exc}") from exc

    def ping(self) -> None:
        """Raise StoreUnavailable unless the file can be read."""
        self.read(lambda uow: uow.get_meta("schema_version"))

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
