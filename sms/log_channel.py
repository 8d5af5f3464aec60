"""The embedded default channel: logs that an SMS would go out, and sends nothing."""

from __future__ import annotations

import logging

from sms.channels import OutgoingSms, SentSms
from sms.numbers import mask_phone

log = logging.getLogger(__name__)


class LogChannel:
    """Sends nothing (development only): logs the masked number and body length of each SMS."""

    name = "log"

    def __init__(self) -> None:
        """Warn once that status SMS will not reach anyone."""
        log.warning("LogChannel is for development only: no SMS is sent, only logged")

    def send(self, message: OutgoingSms) -> SentSms:
        """Log one line (never the body: it holds balances) and report the message as sent."""
        log.info(
            "sms not sent (log channel) key=%s to=%s length=%d",
            message.key,
            mask_phone(message.to),
            len(message.body),
        )
        return SentSms("log-" + message.key, "sent")

    def find(self, message: OutgoingSms, since: float) -> SentSms | None:
        """Nothing was ever sent, so nothing can be found."""
        return None
