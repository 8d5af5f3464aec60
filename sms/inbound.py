"""One inbound SMS, whichever route brought it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Route(StrEnum):
    """How an SMS reached the service."""

    TWILIO = "twilio"
    TASKER = "tasker"


@dataclass(frozen=True)
class InboundSms:
    """An SMS as the service sees it, normalised from a Twilio form or a Tasker JSON body."""

    route: Route
    sender: str  # E.164
    body: str
    received_at: float  # unix seconds, the service's clock
    provider_message_id: str | None = None  # Twilio MessageSid; Tasker sends none
    gateway_id: str | None = None  # the Tasker phone that forwarded it
    service_number: str | None = None  # the number the SMS was sent to (Twilio `To`)

    def __repr__(self) -> str:  # the body may be an instruction: keep it out of logs
        return (
            f"InboundSms(route={self.route.value}, provider_message_id={self.provider_message_id},"
            f" gateway_id={self.gateway_id}, body_chars={len(self.body)})"
        )
