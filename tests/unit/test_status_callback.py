"""Twilio's message status callback: parsing (tests/fixtures/twilio/status_callback_*.json).

Each fixture is the form Twilio posts, as a JSON object, with `_source` naming the doc page.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from twilio.request_validator import RequestValidator

from sms.twilio import (
    MESSAGE_STATUSES,
    MalformedTwilioRequest,
    StatusCallback,
    parse_status_callback,
    signature_is_valid,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "twilio"
SID = "SM0000000000000000000000000000aa01"
TO = "+919876543210"
TOKEN = "fake-auth-token-not-real"
URL = "https://pay.example.com/webhooks/twilio/status"

# Every status the Message resource documents (its "Message status values" table).
DOCUMENTED = [
    "queued",
    "sending",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "accepted",
    "scheduled",
    "read",
    "partially_delivered",
    "canceled",
    "receiving",
    "received",
]


def form(name: str) -> dict[str, str]:
    """A status callback fixture as the form Twilio posts (without `_source`)."""
    data: dict[str, str] = json.loads((FIXTURES / f"{name}.json").read_text())
    data.pop("_source")
    return data


@pytest.mark.parametrize(
    ("fixture", "status", "error_code"),
    [
        ("status_callback_sent", "sent", ""),
        ("status_callback_delivered", "delivered", ""),
        ("status_callback_undelivered", "undelivered", "30003"),
        ("status_callback_failed", "failed", "30008"),
        ("status_callback_messaging_service", "queued", ""),
    ],
)
def test_documented_callbacks_parse(fixture: str, status: str, error_code: str) -> None:
    """Fixtures status_callback_*: sid, status, error code and recipient come through."""
    assert parse_status_callback(form(fixture)) == StatusCallback(SID, status, error_code, TO)


@pytest.mark.parametrize("status", DOCUMENTED)
def test_every_documented_status_is_accepted(status: str) -> None:
    """Fixture status_callback_sent with each documented MessageStatus."""
    callback = parse_status_callback({**form("status_callback_sent"), "MessageStatus": status})
    assert callback.status == status


def test_the_known_statuses_are_the_documented_ones() -> None:
    """No status is accepted that Twilio does not document."""
    assert set(DOCUMENTED) == MESSAGE_STATUSES


@pytest.mark.parametrize(
    "sid",
    [None, "", "SM123", "CA0000000000000000000000000000aa01", "SM000000000000000000000000000-aa01"],
)
def test_missing_or_malformed_sid_is_refused(sid: str | None) -> None:
    """Fixture status_callback_sent without a usable MessageSid."""
    data = form("status_callback_sent")
    data.pop("MessageSid")
    if sid is not None:
        data["MessageSid"] = sid
    with pytest.raises(MalformedTwilioRequest):
        parse_status_callback(data)


@pytest.mark.parametrize("status", [None, "", "DELIVERED", "bounced", "delivered "])
def test_missing_or_unknown_status_is_refused(status: str | None) -> None:
    """Fixture status_callback_sent with no MessageStatus, or one Twilio does not send."""
    data = form("status_callback_sent")
    data.pop("MessageStatus")
    if status is not None:
        data["MessageStatus"] = status
    with pytest.raises(MalformedTwilioRequest):
        parse_status_callback(data)


def test_the_callback_is_verified_with_the_inbound_signature_check() -> None:
    """Fixture status_callback_delivered: signed as Twilio signs it, checked as inbound is."""
    data = form("status_callback_delivered")
    signature = RequestValidator(TOKEN).compute_signature(URL, data)
    assert signature_is_valid(TOKEN, URL, data, signature)
    assert not signature_is_valid(TOKEN, URL, {**data, "MessageStatus": "failed"}, signature)
    assert not signature_is_valid(TOKEN, URL + "?job=2", data, signature)
