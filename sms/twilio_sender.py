"""Outbound SMS through Twilio's Programmable Messaging REST API (the twilio SDK).

`send` creates a Message resource; `find` reads recent Messages to the same number, so the outbox
can learn whether an SMS whose answer was lost went out before it sends it again.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import requests
from twilio.base.exceptions import (
    TwilioException,
    TwilioRestException,
    TwilioServiceException,
)
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from sms.channels import ChannelRejected, ChannelUnavailable, OutgoingSms, SentSms
from sms.numbers import mask_phone

log = logging.getLogger(__name__)

FIND_LIMIT = 20  # our status SMS to one number over a few minutes: far fewer than this
CLOCK_SKEW = 60  # seconds: `since` is our clock, `date_created` is Twilio's
RETRYABLE_STATUSES = frozenset({401, 403, 408, 429})  # not our message's fault: try again later

# What the SDK and its HTTP session raise when the outcome is unknown: no answer, an answer it
# could not read (a 2xx whose body is not JSON: the message may exist), or any other SDK error
# (a failed list page is a bare TwilioException).
UNKNOWN_OUTCOME = (requests.RequestException, json.JSONDecodeError, TwilioException)
API_ERRORS = (TwilioRestException, TwilioServiceException)


class TwilioChannel:
    """Sends status SMS through Twilio, from one number or through a Messaging Service."""

    name = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str = "",
        messaging_service_sid: str = "",
        status_callback_url: str = "",
        http_client: Any = None,
        timeout: float = 10,
    ) -> None:
        """Build the SDK client; nothing is sent until `send`."""
        if not (from_number or messaging_service_sid):
            raise ValueError("TwilioChannel needs a from number or a Messaging Service SID")
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.status_callback_url = status_callback_url
        client_http = http_client if http_client is not None else TwilioHttpClient(timeout=timeout)
        self.client = Client(account_sid, auth_token, http_client=client_http)

    def send(self, message: OutgoingSms) -> SentSms:
        """Create the Message resource; Twilio answers queued (or accepted for a service)."""
        params: dict[str, str] = {"to": message.to, "body": message.body}
        if self.from_number:
            params["from_"] = self.from_number
        if self.messaging_service_sid:
            params["messaging_service_sid"] = self.messaging_service_sid
        if self.status_callback_url:
            params["status_callback"] = self.status_callback_url
        try:
            created = self.client.messages.create(**params)
        except API_ERRORS as exc:
            raise _api_error(exc, message) from exc
        except UNKNOWN_OUTCOME as exc:
            raise ChannelUnavailable(f"Twilio send failed: {type(exc).__name__}") from exc
        log.info("twilio sms %s to %s: %s", created.sid, mask_phone(message.to), created.status)
        return SentSms(str(created.sid), str(created.status))

    def find(self, message: OutgoingSms, since: float) -> SentSms | None:
        """The newest Message to the same number with the same body created since `since`."""
        params: dict[str, Any] = {"to": message.to, "limit": FIND_LIMIT}
        if self.from_number:
            params["from_"] = self.from_number
        # No DateSent filter: a message still queued or accepted has no date_sent yet, and it is
        # exactly the one we are looking for. Filter on date_created here instead.
        try:
            found = self.client.messages.list(**params)
        except UNKNOWN_OUTCOME as exc:  # whatever went wrong, we cannot tell: never say None
            raise ChannelUnavailable(f"Twilio list failed: {type(exc).__name__}") from exc
        earliest = datetime.fromtimestamp(since - CLOCK_SKEW, UTC)
        matches = [
            m
            for m in found
            if m.body == message.body and m.date_created is not None and m.date_created >= earliest
        ]
        if not matches:
            return None
        newest = max(matches, key=lambda m: m.date_created)
        return SentSms(str(newest.sid), str(newest.status))


def _api_error(
    exc: TwilioRestException | TwilioServiceException, message: OutgoingSms
) -> ChannelUnavailable | ChannelRejected:
    """Twilio answered with an error: retry later (429, 408, 5xx) or give up for good (4xx)."""
    status = int(exc.status)
    if status in RETRYABLE_STATUSES or status >= 500:
        return ChannelUnavailable(f"Twilio answered HTTP {status} (error {exc.code})")
    text = str(getattr(exc, "msg", None) or getattr(exc, "detail", None) or "")
    # Twilio's message repeats the number ("The 'To' number +91... is not valid"): mask it.
    reason = text.replace(message.to, mask_phone(message.to)) or f"HTTP {status}"
    return ChannelRejected(reason, code=str(exc.code))
