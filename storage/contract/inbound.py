"""Every inbound SMS that passed webhook authentication, and the SP1 frames already processed."""

from __future__ import annotations

from typing import Protocol

from storage.models import FrameRecord, InboundRecord


class Inbound(Protocol):
    """The inbound log and the exactly-once guards of inbound processing."""

    def find_inbound(self, route: str, provider_message_id: str) -> InboundRecord | None:
        """The SMS a route already received under this provider id (Twilio MessageSid), or None."""
        ...

    def insert_inbound(self, record: InboundRecord) -> None:
        """Log an SMS; DuplicateKey if (route, provider_message_id) was logged already."""
        ...

    def count_redelivery(self, inbound_id: str) -> None:
        """Count one more delivery of a logged SMS; NotFound for an unknown id."""
        ...

    def inbound_for(self, sender: str, limit: int = 50) -> list[InboundRecord]:
        """The newest SMS from one number, newest first."""
        ...

    def inbound_for_reference(self, reference: str) -> list[InboundRecord]:
        """The SMS that led to or asked about one transaction, oldest first."""
        ...

    def inbound_outcomes(self, since: float, until: float) -> dict[str, int]:
        """How many SMS received in [since, until) ended in each outcome (for the dashboard)."""
        ...

    def find_frame(self, key_id: int, counter: int) -> FrameRecord | None:
        """The processed frame with this device key and counter, or None."""
        ...

    def insert_frame(self, record: FrameRecord) -> None:
        """Record a processed frame; DuplicateKey if (key id, counter) was processed already.

        This unique key is what makes an SMS delivered twice, by one route or both, settle once.
        """
        ...
