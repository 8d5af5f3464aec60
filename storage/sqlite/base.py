"""What every part of the SQLite unit of work shares: the connection, write helpers, row readers."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from crypto.replay import ReplayWindow
from storage.errors import DuplicateKey, NotFound
from storage.models import (
    Device,
    InboundRecord,
    Job,
    JobStatus,
    OutboundSms,
    StaffMember,
    StaffRole,
    Transaction,
    TransactionKind,
    TransactionState,
)


class SqliteBase:
    """One SQLite connection, inside the transaction the store opened for this unit of work."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._c = conn

    def _one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._c.execute(sql, args).fetchone()
        return row

    def _insert(self, sql: str, *args: Any) -> int:
        return insert(self._c, sql, *args)

    def _update(self, sql: str, *args: Any) -> None:
        """Run an UPDATE of exactly one row; NotFound (naming the table) if none matched."""
        if self._c.execute(sql, args).rowcount != 1:
            raise NotFound(sql.split()[1])


def insert(conn: sqlite3.Connection, sql: str, *args: Any) -> int:
    """Run an INSERT; a unique key's refusal becomes DuplicateKey. Returns the new rowid."""
    try:
        cur = conn.execute(sql, args)
    except sqlite3.IntegrityError as exc:
        if "UNIQUE" in str(exc) or "PRIMARY KEY" in str(exc):
            raise DuplicateKey(str(exc)) from exc
        raise  # a CHECK or a foreign key: a bug in the caller, not a race
    return int(cur.lastrowid or 0)


# Row readers, shared by the part that owns a table and by the export (transfer.py).


def window_bytes(window: ReplayWindow) -> bytes:
    """The replay bitmap as stored: 8 bytes, big-endian."""
    return window.bitmap.to_bytes(8, "big")


def device_of(row: sqlite3.Row | Mapping[str, Any]) -> Device:
    """A devices row (or its columns by name) as a Device, its replay window rebuilt."""
    d = dict(row)
    window = ReplayWindow(d.pop("window_highest"), int.from_bytes(d.pop("window_bitmap"), "big"))
    return Device(**{**d, "window": window, "active": bool(d["active"])})


def inbound_of(row: sqlite3.Row) -> InboundRecord:
    """An inbound_sms row as an InboundRecord (ids are text in the contract)."""
    return InboundRecord(**{**dict(row), "id": str(row["id"])})


def transaction_of(row: sqlite3.Row) -> Transaction:
    """A transactions row as a Transaction."""
    d = dict(row)
    return Transaction(
        **{**d, "kind": TransactionKind(d["kind"]), "state": TransactionState(d["state"])}
    )


def sms_of(row: sqlite3.Row) -> OutboundSms:
    """An outbox_sms row as an OutboundSms (the `to` field is the `recipient` column)."""
    d = dict(row)
    to = d.pop("recipient")
    return OutboundSms(**{**d, "to": to, "id": str(d["id"])})


def job_of(row: sqlite3.Row) -> Job:
    """A jobs row as a Job; its key is its id."""
    d = dict(row)
    payload = json.loads(d["payload"])
    return Job(**{**d, "id": d["key"], "payload": payload, "status": JobStatus(d["status"])})


def staff_of(row: sqlite3.Row) -> StaffMember:
    """A staff row as a StaffMember."""
    return StaffMember(**{**dict(row), "role": StaffRole(row["role"])})
