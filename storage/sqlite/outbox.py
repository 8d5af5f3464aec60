"""The outbound SMS outbox over SQLite; each message queues its `sms.send` job alongside."""

from __future__ import annotations

import sqlite3
from typing import Any

from storage.contract import SmsOutbox
from storage.models import OutboundSms
from storage.sqlite.base import SqliteBase, insert, sms_of
from storage.sqlite.jobs import queue_job

# What update_sms may change; the id, the recipient, the body and the times are fixed.
CHANGEABLE = frozenset(
    {"status", "channel", "provider_id", "error", "lease_gateway", "lease_until", "attempts"}
)


def insert_sms(conn: sqlite3.Connection, m: OutboundSms) -> str:
    """Write an outbox_sms row as it is (no job); returns its new id."""
    return str(insert(
        conn,
        "INSERT INTO outbox_sms (recipient, body, reference, created_at, status, channel,"
        " provider_id, error, updated_at, lease_gateway, lease_until, attempts)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        m.to, m.body, m.reference, m.created_at, m.status, m.channel, m.provider_id, m.error,
        m.updated_at, m.lease_gateway, m.lease_until, m.attempts,
    ))  # fmt: skip


class SqliteSmsOutbox(SqliteBase, SmsOutbox):
    """outbox_sms: pending -> sending -> sent -> delivered | undelivered | failed."""

    def enqueue_sms(self, message: OutboundSms) -> None:
        """Store a message and, in the same transaction, the job that will send it."""
        sms_id = insert_sms(self._c, message)
        at = message.created_at
        queue_job(self._c, "sms.send", f"sms.send:{sms_id}", {"id": sms_id}, at, at)

    def outbox(self, limit: int = 100) -> list[OutboundSms]:
        """Messages in the order they were queued."""
        rows = self._c.execute("SELECT * FROM outbox_sms ORDER BY id LIMIT ?", (limit,))
        return [sms_of(r) for r in rows]

    def get_sms(self, sms_id: str) -> OutboundSms | None:
        """The message with this id, or None."""
        if not sms_id.isdigit():  # not an id this backend makes
            return None
        row = self._one("SELECT * FROM outbox_sms WHERE id = ?", int(sms_id))
        return sms_of(row) if row else None

    def find_sms_by_provider_id(self, provider_id: str) -> OutboundSms | None:
        """The message a provider knows by this id, or None."""
        row = self._one("SELECT * FROM outbox_sms WHERE provider_id = ?", provider_id)
        return sms_of(row) if row else None

    def update_sms(self, sms_id: str, now: float, **changes: Any) -> None:
        """Change the CHANGEABLE fields of one message; NotFound, or ValueError for others."""
        if not changes or set(changes) - CHANGEABLE:
            raise ValueError(f"cannot change {sorted(set(changes) - CHANGEABLE)}")
        columns = ", ".join(f"{name} = ?" for name in changes)  # names checked just above
        self._update(f"UPDATE outbox_sms SET {columns}, updated_at = ? WHERE id = ?",
                     *changes.values(), now, int(sms_id))  # fmt: skip

    def lease_sms(
        self, gateway_id: str, now: float, lease_seconds: float, limit: int, max_attempts: int
    ) -> list[OutboundSms]:
        """Lease up to `limit` Tasker-channel messages to a phone, oldest first."""
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

    def outbound_for_reference(self, reference: str) -> list[OutboundSms]:
        """The messages about one transaction, in the order they were queued."""
        rows = self._c.execute(
            "SELECT * FROM outbox_sms WHERE reference = ? ORDER BY id", (reference,)
        )
        return [sms_of(r) for r in rows]

    def sms_counts(self) -> dict[str, int]:
        """How many messages the outbox holds in each status (read from the status index)."""
        rows = self._c.execute("SELECT status, COUNT(*) FROM outbox_sms GROUP BY status")
        return {r[0]: r[1] for r in rows}
