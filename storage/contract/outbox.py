"""Status SMS waiting to go out, written in the unit of work of the change they report."""

from __future__ import annotations

from typing import Any, Protocol

from storage.models import OutboundSms


class SmsOutbox(Protocol):
    """The outbound SMS outbox: pending -> sending -> sent -> delivered | undelivered | failed."""

    def enqueue_sms(self, message: OutboundSms) -> None:
        """Store a message and, in the same unit of work, the `sms.send` job that will send it."""
        ...

    def outbox(self, limit: int = 100) -> list[OutboundSms]:
        """Messages in the order they were queued."""
        ...

    def get_sms(self, sms_id: str) -> OutboundSms | None:
        """The message with this id, or None (also for an id this backend never makes)."""
        ...

    def find_sms_by_provider_id(self, provider_id: str) -> OutboundSms | None:
        """The message a provider knows by this id (Twilio's Message SID), or None."""
        ...

    def update_sms(self, sms_id: str, now: float, **changes: Any) -> None:
        """Change status, channel, provider_id, error, lease or attempts; NotFound, ValueError."""
        ...

    def lease_sms(
        self, gateway_id: str, now: float, lease_seconds: float, limit: int, max_attempts: int
    ) -> list[OutboundSms]:
        """Lease up to `limit` Tasker-channel messages to a phone, oldest first.

        A message whose lease ran out is offered again; one offered `max_attempts` times and never
        acknowledged is marked failed instead. Two phones never hold the same lease.
        """
        ...

    def outbound_for_reference(self, reference: str) -> list[OutboundSms]:
        """The messages about one transaction, in the order they were queued."""
        ...

    def sms_counts(self) -> dict[str, int]:
        """How many messages the outbox holds in each status (statuses with none left out)."""
        ...
