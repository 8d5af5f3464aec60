"""The inbound SMS log and the processed SP1 frames, over SQLite."""

from __future__ import annotations

from storage.contract import Inbound
from storage.models import FrameRecord, InboundRecord
from storage.sqlite.base import SqliteBase, inbound_of


class SqliteInbound(SqliteBase, Inbound):
    """inbound_sms and frames; their unique keys are the exactly-once guards."""

    def find_inbound(self, route: str, provider_message_id: str) -> InboundRecord | None:
        """The SMS a route already received under this provider id, or None."""
        row = self._one(
            "SELECT * FROM inbound_sms WHERE route = ? AND provider_message_id = ?",
            route, provider_message_id,
        )  # fmt: skip
        return inbound_of(row) if row else None

    def insert_inbound(self, record: InboundRecord) -> None:
        """Log an SMS (a new id); DuplicateKey if (route, provider_message_id) is logged."""
        self._insert(
            "INSERT INTO inbound_sms (route, sender, received_at, outcome, reply,"
            " provider_message_id, gateway_id, key_id, counter, reference, deliveries)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            record.route, record.sender, record.received_at, record.outcome, record.reply,
            record.provider_message_id, record.gateway_id, record.key_id, record.counter,
            record.reference, record.deliveries,
        )  # fmt: skip

    def count_redelivery(self, inbound_id: str) -> None:
        """Count one more delivery of a logged SMS; NotFound for an unknown id."""
        self._update("UPDATE inbound_sms SET deliveries = deliveries + 1 WHERE id = ?", inbound_id)

    def inbound_for(self, sender: str, limit: int = 50) -> list[InboundRecord]:
        """The newest SMS from one number, newest first."""
        rows = self._c.execute(
            "SELECT * FROM inbound_sms WHERE sender = ? ORDER BY id DESC LIMIT ?", (sender, limit)
        )
        return [inbound_of(r) for r in rows]

    def inbound_for_reference(self, reference: str) -> list[InboundRecord]:
        """The SMS about one transaction, oldest first."""
        rows = self._c.execute(
            "SELECT * FROM inbound_sms WHERE reference = ? ORDER BY id", (reference,)
        )
        return [inbound_of(r) for r in rows]

    def inbound_outcomes(self, since: float, until: float) -> dict[str, int]:
        """How many SMS received in [since, until) ended in each outcome."""
        rows = self._c.execute(
            "SELECT outcome, COUNT(*) FROM inbound_sms WHERE received_at >= ? AND received_at < ?"
            " GROUP BY outcome",
            (since, until),
        )
        return {r[0]: int(r[1]) for r in rows}

    def find_frame(self, key_id: int, counter: int) -> FrameRecord | None:
        """The processed frame with this device key and counter, or None."""
        row = self._one("SELECT * FROM frames WHERE key_id = ? AND counter = ?", key_id, counter)
        return FrameRecord(**dict(row)) if row else None

    def insert_frame(self, record: FrameRecord) -> None:
        """Record a processed frame; DuplicateKey if (key id, counter) was processed."""
        self._insert(
            "INSERT INTO frames (key_id, counter, outcome, reply, processed_at, reference, digest)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            record.key_id, record.counter, record.outcome, record.reply, record.processed_at,
            record.reference, record.digest,
        )  # fmt: skip
