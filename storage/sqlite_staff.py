"""SQLite tables and queries for support staff (mixed into SqliteUnitOfWork)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

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

__all__ = ["STAFF_KINDS", "STAFF_SCHEMA", "SqliteStaffMixin"]

# The audit log refuses UPDATE and DELETE: append-only is enforced by the database, not by habit.
# The indexes on core tables serve the support queries (a transaction's SMS, jobs, time ranges).
STAFF_SCHEMA = """
CREATE TABLE IF NOT EXISTS staff (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, role TEXT NOT NULL, created_at REAL NOT NULL,
    password_hash TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS api_tokens (
    token_hash TEXT PRIMARY KEY, prefix TEXT NOT NULL, staff_id TEXT NOT NULL REFERENCES staff (id),
    created_at REAL NOT NULL, revoked_at REAL);
CREATE INDEX IF NOT EXISTS api_tokens_staff ON api_tokens (staff_id);
CREATE INDEX IF NOT EXISTS api_tokens_prefix ON api_tokens (prefix);
CREATE TABLE IF NOT EXISTS audit_log (
    id TEXT PRIMARY KEY, at REAL NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    target TEXT NOT NULL, reason TEXT NOT NULL, outcome TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS audit_log_actor ON audit_log (actor, id);
CREATE INDEX IF NOT EXISTS audit_log_target ON audit_log (target, id);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE INDEX IF NOT EXISTS inbound_sms_reference ON inbound_sms (reference);
CREATE INDEX IF NOT EXISTS transactions_time ON transactions (created_at);
CREATE INDEX IF NOT EXISTS jobs_reference ON jobs (json_extract(payload, '$.reference'));
"""

FINAL_STATES = ("SUCCESS", "FAILED")


def _staff(row: sqlite3.Row) -> StaffMember:
    return StaffMember(**{**dict(row), "role": StaffRole(row["role"])})


def _txn(row: sqlite3.Row) -> Transaction:
    d = dict(row)
    return Transaction(
        **{**d, "kind": TransactionKind(d["kind"]), "state": TransactionState(d["state"])}
    )


def _sms(row: sqlite3.Row) -> OutboundSms:
    d = dict(row)
    to = d.pop("recipient")
    return OutboundSms(**{**d, "to": to, "id": str(d["id"])})


def _job(row: sqlite3.Row) -> Job:
    d = dict(row)
    payload = json.loads(d["payload"])
    return Job(**{**d, "id": d["key"], "payload": payload, "status": JobStatus(d["status"])})


def _device(row: sqlite3.Row) -> Device:
    d = dict(row)
    window = ReplayWindow(d.pop("window_highest"), int.from_bytes(d.pop("window_bitmap"), "big"))
    return Device(**{**d, "window": window, "active": bool(d["active"])})


class SqliteStaffMixin:
    """Staff, audit and support queries over the unit of work's connection."""

    _c: sqlite3.Connection

    def _staff_insert(self, sql: str, *args: Any) -> None:
        try:
            self._c.execute(sql, args)
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc) or "PRIMARY KEY" in str(exc):
                raise DuplicateKey(str(exc)) from exc
            raise

    # staff and tokens
    def insert_staff(self, member: StaffMember) -> None:
        self._staff_insert(
            "INSERT INTO staff VALUES (?, ?, ?, ?, ?)",
            member.id, member.name, member.role.value, member.created_at, member.password_hash,
        )  # fmt: skip

    def get_staff(self, staff_id: str) -> StaffMember | None:
        row = self._c.execute("SELECT * FROM staff WHERE id = ?", (staff_id,)).fetchone()
        return _staff(row) if row else None

    def get_staff_by_name(self, name: str) -> StaffMember | None:
        row = self._c.execute("SELECT * FROM staff WHERE name = ?", (name,)).fetchone()
        return _staff(row) if row else None

    def staff_members(self) -> list[StaffMember]:
        return [_staff(r) for r in self._c.execute("SELECT * FROM staff ORDER BY name")]

    def set_staff_password(self, staff_id: str, password_hash: str) -> None:
        cur = self._c.execute(
            "UPDATE staff SET password_hash = ? WHERE id = ?", (password_hash, staff_id)
        )
        if cur.rowcount != 1:
            raise NotFound(f"staff {staff_id}")

    def insert_token(self, token: ApiToken) -> None:
        self._staff_insert(
            "INSERT INTO api_tokens VALUES (?, ?, ?, ?, ?)",
            token.token_hash, token.prefix, token.staff_id, token.created_at, token.revoked_at,
        )  # fmt: skip

    def get_token(self, token_hash: str) -> ApiToken | None:
        row = self._c.execute(
            "SELECT * FROM api_tokens WHERE token_hash = ?", (token_hash,)
        ).fetchone()
        return ApiToken(**dict(row)) if row else None

    def tokens_of(self, staff_id: str) -> list[ApiToken]:
        rows = self._c.execute(
            "SELECT * FROM api_tokens WHERE staff_id = ? ORDER BY created_at, token_hash",
            (staff_id,),
        )
        return [ApiToken(**dict(r)) for r in rows]

    def revoke_tokens(
        self, at: float, staff_id: str | None = None, prefix: str | None = None
    ) -> int:
        if staff_id is None and prefix is None:
            raise ValueError("name the staff member or the token prefix")
        sql = "UPDATE api_tokens SET revoked_at = ? WHERE revoked_at IS NULL"
        args: list[Any] = [at]
        if staff_id is not None:
            sql += " AND staff_id = ?"
            args.append(staff_id)
        if prefix is not None:
            sql += " AND prefix = ?"
            args.append(prefix)
        return self._c.execute(sql, args).rowcount

    # audit log
    def insert_audit(self, entry: AuditEntry) -> None:
        self._staff_insert(
            "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?)",
            entry.id, entry.at, entry.actor, entry.action, entry.target, entry.reason,
            entry.outcome,
        )  # fmt: skip

    def audit_entries(
        self, limit: int = 50, offset: int = 0, actor: str | None = None, target: str | None = None
    ) -> list[AuditEntry]:
        sql, args = "SELECT * FROM audit_log WHERE 1 = 1", list[Any]()
        if actor is not None:
            sql += " AND actor = ?"
            args.append(actor)
        if target is not None:
            sql += " AND target = ?"
            args.append(target)
        rows = self._c.execute(sql + " ORDER BY id DESC LIMIT ? OFFSET ?", (*args, limit, offset))
        return [AuditEntry(**dict(r)) for r in rows]

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
        sql, args = "SELECT * FROM transactions WHERE 1 = 1", list[Any]()
        for clause, value in (
            ("reference = ?", reference),
            ("state = ?", state.value if state else None),
            ("created_at >= ?", since),
            ("created_at < ?", until),
        ):
            if value is not None:
                sql += f" AND {clause}"
                args.append(value)
        if phone is not None:
            sql += " AND (payer_phone = ? OR payee = ?)"
            args += [phone, phone]
        order = "ASC" if oldest_first else "DESC"
        sql += f" ORDER BY created_at {order}, reference LIMIT ? OFFSET ?"
        return [_txn(r) for r in self._c.execute(sql, (*args, limit, offset))]

    def inbound_for_reference(self, reference: str) -> list[InboundRecord]:
        rows = self._c.execute(
            "SELECT * FROM inbound_sms WHERE reference = ? ORDER BY id", (reference,)
        )
        return [InboundRecord(**{**dict(r), "id": str(r["id"])}) for r in rows]

    def outbound_for_reference(self, reference: str) -> list[OutboundSms]:
        rows = self._c.execute(
            "SELECT * FROM outbox_sms WHERE reference = ? ORDER BY id", (reference,)
        )
        return [_sms(r) for r in rows]

    def provider_events_for(self, reference: str) -> list[ProviderEvent]:
        rows = self._c.execute(
            "SELECT * FROM provider_events WHERE reference = ? ORDER BY received_at, event_id",
            (reference,),
        )
        return [ProviderEvent(**dict(r)) for r in rows]

    def jobs_for_reference(self, reference: str) -> list[Job]:
        rows = self._c.execute(
            "SELECT * FROM jobs WHERE json_extract(payload, '$.reference') = ?"
            " ORDER BY created_at, key",
            (reference,),
        )
        return [_job(r) for r in rows]

    def devices_of(self, user_id: str) -> list[Device]:
        rows = self._c.execute(
            "SELECT * FROM devices WHERE user_id = ? ORDER BY created_at, key_id", (user_id,)
        )
        return [_device(r) for r in rows]

    # KPIs
    def transaction_groups(self, since: float, until: float) -> list[TransactionGroup]:
        # a failure's reason up to its first ':' ("insufficient_funds", "rejected by staff")
        rows = self._c.execute(
            "SELECT state, channel, CASE WHEN state = 'FAILED'"
            " THEN substr(reason, 1, instr(reason || ':', ':') - 1) ELSE '' END AS why,"
            " COUNT(*), COALESCE(SUM(amount), 0) FROM transactions"
            " WHERE created_at >= ? AND created_at < ? GROUP BY state, channel, why",
            (since, until),
        )
        return [TransactionGroup(TransactionState(r[0]), r[1], r[2], r[3], r[4]) for r in rows]

    def settle_seconds(self, since: float, until: float, limit: int) -> list[float]:
        rows = self._c.execute(
            "SELECT MIN(e.at) - t.created_at FROM transactions t"
            " JOIN transaction_events e ON e.reference = t.reference"
            " WHERE t.created_at >= ? AND t.created_at < ? AND t.state IN (?, ?)"
            " AND e.state IN (?, ?) GROUP BY t.reference ORDER BY t.created_at DESC LIMIT ?",
            (since, until, *FINAL_STATES, *FINAL_STATES, limit),
        )
        return [max(0.0, float(r[0])) for r in rows]

    # export and import of the staff tables (storage/transfer.py)
    def _dump_staff(self, kind: str) -> Iterator[StaffMember | ApiToken | AuditEntry]:
        if kind == "staff":
            return map(_staff, self._c.execute("SELECT * FROM staff ORDER BY id"))
        if kind == "api_tokens":
            rows = self._c.execute("SELECT * FROM api_tokens ORDER BY token_hash")
            return (ApiToken(**dict(r)) for r in rows)
        rows = self._c.execute("SELECT * FROM audit_log ORDER BY id")
        return (AuditEntry(**dict(r)) for r in rows)

    def _load_staff(self, kind: str, records: Sequence[object]) -> None:
        for r in records:
            if type(r) is not RECORDS[kind]:
                raise TypeError(f"a {type(r).__name__} is not a record of {kind}")
            if isinstance(r, StaffMember):
                self.insert_staff(r)
            elif isinstance(r, ApiToken):
                self.insert_token(r)
            elif isinstance(r, AuditEntry):
                self.insert_audit(r)
