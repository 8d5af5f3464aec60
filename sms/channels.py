"""Outbound SMS channels: how a status SMS leaves the service (the `SmsChannel` contract).

- `TwilioChannel` (sms/twilio_sender.py) sends through Twilio's REST API (the twilio SDK), with
  a status callback.
- The Tasker phone sends SMS itself: it polls the service's outbox (`app/web/sms_outbound.py`),
  so it has no channel object here.
- `LogChannel` (sms/log_channel.py), the embedded default, sends nothing: it logs that a message
  would go out.

A channel raises `ChannelUnavailable` when the outcome is unknown (timeout, 5xx, rate limit) and
`ChannelRejected` when the provider refused the message for good (bad number, blocked).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class ChannelError(Exception):
    """Base of outbound SMS errors."""


class ChannelUnavailable(ChannelError):
    """The provider may or may not have taken the message; find out before sending again."""


class ChannelRejected(ChannelError):
    """The provider refused the message for good."""

    def __init__(self, reason: str, code: str = "") -> None:
        super().__init__(reason)
        self.reason, self.code = reason, code


@dataclass(frozen=True)
class OutgoingSms:
    """One SMS to send; `key` is our outbox id, unique per message."""

    key: str
    to: str
    body: str


@dataclass(frozen=True)
class SentSms:
    """What the provider said when it took the message."""

    provider_id: str
    status: str  # the provider's word: queued, accepted, sending, sent, ...


class SmsChannel(Protocol):
    """Sends one SMS, or finds one it may already have sent."""

    name: str

    def send(self, message: OutgoingSms) -> SentSms:
        """Hand the message to the provider."""
        ...

    def find(self, message: OutgoingSms, since: float) -> SentSms | None:
        """A message to the same number with the same text sent since `since` (unix seconds),
        used after an unknown outcome so the same SMS is never sent twice."""
        ...
