"""TwilioChannel and LogChannel against replayed Twilio REST payloads (tests/fixtures/twilio/).

Each test names the fixture it replays; every fixture says in `_source` which documentation page
its body comes from. The SDK's own HTTP client is used, so `responses` sees the real requests.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from sms.channels import ChannelRejected, ChannelUnavailable, OutgoingSms, SentSms
from sms.log_channel import LogChannel
from sms.twilio_sender import TwilioChannel

FIXTURES = Path(__file__).parents[1] / "fixtures" / "twilio"
ACCOUNT_SID = "AC00000000000000000000000000000001"
AUTH_TOKEN = "fake-auth-token-not-real"
MESSAGES_URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
FROM = "+15005550006"
SERVICE_SID = "MG00000000000000000000000000000001"
CALLBACK_URL = "https://pay.example.com/webhooks/twilio/status"
SID = "SM0000000000000000000000000000aa01"
TO = "+919876543210"
BODY = "SMS Pay: paid Rs 250.00 to 98******10. Txn 7KQ2M9XH4P. Bal Rs 1250.00"
SMS = OutgoingSms("job-0001", TO, BODY)
SINCE = datetime(2025, 8, 20, 12, 0, 0, tzinfo=UTC).timestamp()  # just before ours was created


def load(name: str) -> dict[str, Any]:
    """A fixture's body without its `_source` note."""
    body: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    body.pop("_source")
    return body


def posted_form(call: Any) -> dict[str, list[str]]:
    """The form the SDK posted, field by field."""
    return parse_qs(call.request.body, keep_blank_values=True)


def query(call: Any) -> dict[str, list[str]]:
    """The query string of a recorded request."""
    return parse_qs(urlsplit(call.request.url).query)


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    """Every HTTP call must be registered, and every registered one must be made."""
    with responses.RequestsMock() as rsps:
        yield rsps


@pytest.fixture
def channel() -> TwilioChannel:
    """A channel that sends from one Twilio number, with a status callback."""
    return TwilioChannel(
        ACCOUNT_SID, AUTH_TOKEN, from_number=FROM, status_callback_url=CALLBACK_URL
    )


@pytest.fixture
def service_channel() -> TwilioChannel:
    """A channel that sends through a Messaging Service (Twilio picks the sender)."""
    return TwilioChannel(
        ACCOUNT_SID,
        AUTH_TOKEN,
        messaging_service_sid=SERVICE_SID,
        status_callback_url=CALLBACK_URL,
    )


def test_send_from_a_number(mocked: responses.RequestsMock, channel: TwilioChannel) -> None:
    """Fixture message_create_queued: the SDK posts To, Body, From and StatusCallback."""
    mocked.post(MESSAGES_URL, json=load("message_create_queued"), status=201)
    assert channel.send(SMS) == SentSms(SID, "queued")
    call = mocked.calls[0]
    assert call.request.url == MESSAGES_URL
    assert posted_form(call) == {
        "To": [TO],
        "Body": [BODY],
        "From": [FROM],
        "StatusCallback": [CALLBACK_URL],
    }
    assert call.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert call.request.headers["Authorization"].startswith("Basic ")


def test_send_through_a_messaging_service(
    mocked: responses.RequestsMock, service_channel: TwilioChannel
) -> None:
    """Fixture message_create_accepted: MessagingServiceSid instead of From; status accepted."""
    mocked.post(MESSAGES_URL, json=load("message_create_accepted"), status=201)
    assert service_channel.send(SMS) == SentSms(SID, "accepted")
    assert posted_form(mocked.calls[0]) == {
        "To": [TO],
        "Body": [BODY],
        "MessagingServiceSid": [SERVICE_SID],
        "StatusCallback": [CALLBACK_URL],
    }


def test_no_status_callback_field_without_a_url(mocked: responses.RequestsMock) -> None:
    """Fixture message_create_queued: an unset callback URL is left out, not sent empty."""
    mocked.post(MESSAGES_URL, json=load("message_create_queued"), status=201)
    TwilioChannel(ACCOUNT_SID, AUTH_TOKEN, from_number=FROM).send(SMS)
    assert "StatusCallback" not in posted_form(mocked.calls[0])


def test_a_sender_is_required() -> None:
    """Without a from number or a Messaging Service Twilio could not send anything."""
    with pytest.raises(ValueError):
        TwilioChannel(ACCOUNT_SID, AUTH_TOKEN)


@pytest.mark.parametrize(
    ("fixture", "code"),
    [("error_21211_invalid_to", "21211"), ("error_21610_unsubscribed", "21610")],
)
def test_a_4xx_is_rejected_for_good(
    mocked: responses.RequestsMock, channel: TwilioChannel, fixture: str, code: str
) -> None:
    """Fixtures error_21211_invalid_to, error_21610_unsubscribed: ChannelRejected with the code."""
    mocked.post(MESSAGES_URL, json=load(fixture), status=400)
    with pytest.raises(ChannelRejected) as caught:
        channel.send(SMS)
    assert caught.value.code == code
    assert TO not in caught.value.reason  # Twilio's text repeats the number; ours masks it
    assert isinstance(caught.value.__cause__, Exception)


def test_the_rejection_reason_keeps_twilio_words(
    mocked: responses.RequestsMock, channel: TwilioChannel
) -> None:
    """Fixture error_21211_invalid_to: the reason says what was wrong, with a masked number."""
    mocked.post(MESSAGES_URL, json=load("error_21211_invalid_to"), status=400)
    with pytest.raises(ChannelRejected) as caught:
        channel.send(SMS)
    assert "+91******3210" in caught.value.reason
    assert "not a valid phone number" in caught.value.reason


@pytest.mark.parametrize(
    ("fixture", "status"),
    [("error_20429_too_many_requests", 429), ("error_20500_internal", 500)],
)
def test_429_and_5xx_leave_the_outcome_open(
    mocked: responses.RequestsMock, channel: TwilioChannel, fixture: str, status: int
) -> None:
    """Fixtures error_20429_too_many_requests, error_20500_internal: ChannelUnavailable."""
    mocked.post(MESSAGES_URL, json=load(fixture), status=status)
    with pytest.raises(ChannelUnavailable) as caught:
        channel.send(SMS)
    assert caught.value.__cause__ is not None


def test_a_5xx_without_a_json_body_is_unavailable(
    mocked: responses.RequestsMock, channel: TwilioChannel
) -> None:
    """A proxy's HTML 502 page: the SDK still raises, and the outcome stays open."""
    mocked.post(MESSAGES_URL, body="<html>Bad Gateway</html>", status=502)
    with pytest.raises(ChannelUnavailable):
        channel.send(SMS)


@pytest.mark.parametrize(
    "error",
    [
        requests.ConnectionError("connection refused"),
        requests.ConnectTimeout("connect timed out"),
        requests.ReadTimeout("read timed out"),
    ],
)
def test_transport_errors_are_unavailable(
    mocked: responses.RequestsMock, channel: TwilioChannel, error: Exception
) -> None:
    """No answer at all (refused, timed out): the message may or may not exist."""
    mocked.post(MESSAGES_URL, body=error)
    with pytest.raises(ChannelUnavailable) as caught:
        channel.send(SMS)
    assert caught.value.__cause__ is error


def test_a_2xx_that_cannot_be_read_is_unavailable(
    mocked: responses.RequestsMock, channel: TwilioChannel
) -> None:
    """A 201 whose body is cut off: Twilio may have taken the message, so do not reject it."""
    mocked.post(MESSAGES_URL, body='{"sid": "SM', status=201)
    with pytest.raises(ChannelUnavailable):
        channel.send(SMS)


def test_find_returns_our_message(mocked: responses.RequestsMock, channel: TwilioChannel) -> None:
    """Fixture messages_list: the queued message with our body, not the older copy or another."""
    mocked.get(MESSAGES_URL, json=load("messages_list"))
    assert channel.find(SMS, SINCE) == SentSms(SID, "queued")
    assert query(mocked.calls[0]) == {"To": [TO], "From": [FROM], "PageSize": ["20"]}


def test_find_ignores_the_same_text_sent_before_since(
    mocked: responses.RequestsMock, channel: TwilioChannel
) -> None:
    """Fixture messages_list: looking from after ours, only yesterday's copy matches the text."""
    mocked.get(MESSAGES_URL, json=load("messages_list"))
    later = datetime(2025, 8, 20, 12, 5, 0, tzinfo=UTC).timestamp()
    assert channel.find(SMS, later) is None


def test_find_returns_none_when_nothing_matches(
    mocked: responses.RequestsMock, channel: TwilioChannel
) -> None:
    """Fixture messages_list_empty: nothing was sent, so the outbox may send."""
    mocked.get(MESSAGES_URL, json=load("messages_list_empty"))
    assert channel.find(SMS, SINCE) is None


def test_find_with_a_service_filters_by_number_only(
    mocked: responses.RequestsMock, service_channel: TwilioChannel
) -> None:
    """Fixture messages_list: with a Messaging Service the sender is unknown in advance."""
    mocked.get(MESSAGES_URL, json=load("messages_list"))
    assert service_channel.find(SMS, SINCE) == SentSms(SID, "queued")
    assert query(mocked.calls[0]) == {"To": [TO], "PageSize": ["20"]}


def test_find_when_the_list_fails(mocked: responses.RequestsMock, channel: TwilioChannel) -> None:
    """Fixture error_20500_internal: we cannot tell, so ChannelUnavailable (never None)."""
    mocked.get(MESSAGES_URL, json=load("error_20500_internal"), status=500)
    with pytest.raises(ChannelUnavailable):
        channel.find(SMS, SINCE)


def test_find_when_twilio_does_not_answer(
    mocked: responses.RequestsMock, channel: TwilioChannel
) -> None:
    """A timeout while listing is ChannelUnavailable too."""
    mocked.get(MESSAGES_URL, body=requests.ReadTimeout("read timed out"))
    with pytest.raises(ChannelUnavailable):
        channel.find(SMS, SINCE)


def test_log_channel_sends_nothing_and_hides_the_body(caplog: pytest.LogCaptureFixture) -> None:
    """LogChannel warns once, then logs a masked number and the length, never the text."""
    caplog.set_level(logging.DEBUG)
    log_channel = LogChannel()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "development only" in warnings[0].getMessage()
    assert log_channel.send(SMS) == SentSms("log-job-0001", "sent")
    assert log_channel.find(SMS, SINCE) is None
    assert TO not in caplog.text
    assert BODY not in caplog.text
    assert "Bal" not in caplog.text and "1250" not in caplog.text
    assert "+91******3210" in caplog.text
    assert f"length={len(BODY)}" in caplog.text
    assert len(caplog.records) == 2  # the warning and one line for the message


def test_an_rfc_9457_error_is_mapped_like_a_legacy_one(
    mocked: responses.RequestsMock, channel: TwilioChannel
) -> None:
    """The SDK (9.x) raises TwilioServiceException for problem+json bodies; same mapping."""
    problem = {
        "type": "https://www.twilio.com/docs/errors/21211",
        "title": "Invalid 'To' Phone Number",
        "status": 400,
        "code": 21211,
        "detail": f"The 'To' number {TO} is not a valid phone number.",
    }
    mocked.post(MESSAGES_URL, json=problem, status=400)
    with pytest.raises(ChannelRejected) as caught:
        channel.send(SMS)
    assert caught.value.code == "21211"
    assert TO not in caught.value.reason
