"""The outbound SMS outbox in memory; message ids are integers as strings (1, 2, ...)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from storage.errors import NotFound
from storage.memory.jobs import put_job
from storage.memory.tables import Part, numeric_id
from storage.models import OutboundSms

CHANGEABLE = frozenset(
    {"status", "channel", "provider_id", "error", "lease_gateway", "lease_until", "attempts"}
)


class OutboxPart(Part):
    """`SmsOutbox` of the contract."""

    def _insert_sms(self, message: OutboundSms) -> str:
        t = self._w()
        sms_id = str(t.next_id("outbox_sms"))
        t.outbox_sms[int(sms_id)] = replace(message, id=sms_id)
        return sms_id

    def enqueue_sms(self, message: OutboundSms) -> None:
        sms_id = self._insert_sms(message)
        at = message.created_at
        put_job(self._w(), "sms.send", f"sms.send:{sms_id}", {"id": sms_id}, at, at)

    def outbox(self, limit: int = 100) -> list[OutboundSms]:
        return [m for _, m in sorted(self._t.outbox_sms.items())][:limit]

    def get_sms(self, sms_id: str) -> OutboundSms | None:
        key = numeric_id(sms_id)  # None: not an id this backend makes
        return self._t.outbox_sms.get(key) if key is not None else None

    def find_sms_by_provider_id(self, provider_id: str) -> OutboundSms | None:
        return next(
            (m for _, m in sorted(self._t.outbox_sms.items()) if m.provider_id == provider_id),
            None,
        )

    def update_sms(self, sms_id: str, now: float, **changes: Any) -> None:
        if not changes or set(changes) - CHANGEABLE:
            raise ValueError(f"cannot change {sorted(set(changes) - CHANGEABLE)}")
        message = self.get_sms(sms_id)
        if message is None:
            raise NotFound(f"outbox sms {sms_id}")
        self._w().outbox_sms[int(sms_id)] = replace(message, **changes, updated_at=now)

    def lease_sms(
        self, gateway_id: str, now: float, lease_seconds: float, limit: int, max_attempts: int
    ) -> list[OutboundSms]:
        t = self._w()
        for key, m in sorted(t.outbox_sms.items()):  # offered often enough and never acked
            if (
                m.channel == "tasker"
                and m.status == "sending"
                and m.lease_until is not None
                and m.lease_until < now
                and m.attempts >= max_attempts
            ):
                t.outbox_sms[key] = replace(
                    m,
                    status="failed",
                    error="no phone acknowledged it",
                    lease_until=None,
                    updated_at=now,
                )
        if limit <= 0:
            return []
        due = [
            key
            for key, m in sorted(t.outbox_sms.items())
            if m.channel == "tasker"
            and (
                m.status == "pending"
                or (m.status == "sending" and m.lease_until is not None and m.lease_until < now)
            )
        ][:limit]
        for key in due:
            m = t.outbox_sms[key]
            t.outbox_sms[key] = replace(
                m,
                status="sending",
                lease_gateway=gateway_id,
                lease_until=now + lease_seconds,
                attempts=m.attempts + 1,
                updated_at=now,
            )
        return [t.outbox_sms[key] for key in due]

    def outbound_for_reference(self, reference: str) -> list[OutboundSms]:
        return [m for _, m in sorted(self._t.outbox_sms.items()) if m.reference == reference]

    def sms_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for m in self._t.outbox_sms.values():
            counts[m.status] = counts.get(m.status, 0) + 1
        return counts
