"""Each parser that reads outside input answers with a value or its own error, whatever it gets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import ValidationError

from app.web.api.schemas import CreditBody
from crypto.codec import InvalidMessage, SealedFrame, looks_like_frame
from gateway_clients.base import GatewayEvent, WebhookInvalid
from gateway_clients.cashfree import CashfreeGateway
from gateway_clients.razorpay import RazorpayGateway
from sms import instructions, tasker, twilio
from sms.inbound import InboundSms
from sms.numbers import mask_numbers_in
from tests.fuzz.strategies import BODIES, HEADER, JSON, TEXT

SECRET = "fuzz-secret-not-real"
NOW = 1_790_000_000.0


@given(TEXT)
def test_frames(text: str) -> None:
    looks_like_frame(text)
    try:
        frame = SealedFrame.parse(text)
    except InvalidMessage:
        return
    assert 0 < frame.counter and frame.key_id >= 0


@given(st.one_of(st.binary(max_size=200), TEXT.map(lambda t: t.encode("utf-8", "replace"))))
def test_instructions(plaintext: bytes) -> None:
    try:
        instructions.parse(plaintext)
    except instructions.InvalidInstruction:
        pass


@given(BODIES)
def test_tasker_body(body: bytes) -> None:
    try:
        sms = tasker.parse_body(body, "shop-1", NOW)
    except tasker.MalformedTaskerRequest:
        return
    assert isinstance(sms, InboundSms) and sms.sender.startswith("+")


@given(HEADER, st.binary(max_size=100), HEADER)
def test_tasker_signature(timestamp: str | None, body: bytes, signature: str | None) -> None:
    assert tasker.signature_is_valid(SECRET.encode(), timestamp, body, signature, NOW) in (
        True,
        False,
    )


@given(HEADER, st.binary(max_size=100))
def test_tasker_signature_over_any_timestamp(timestamp: str | None, body: bytes) -> None:
    """A correct HMAC over an absurd timestamp is still refused, and never raises."""
    stamp = timestamp or ""
    signed = hmac.new(SECRET.encode(), stamp.encode("utf-8", "replace") + b"." + body, "sha256")
    ok = tasker.signature_is_valid(SECRET.encode(), timestamp, body, signed.hexdigest(), NOW)
    real = stamp.isascii() and stamp.isdigit() and len(stamp) <= tasker.MAX_TIMESTAMP_DIGITS
    assert ok == (real and abs(int(NOW) - int(stamp)) <= 300)


FORM_KEYS = ["Body", "From", "MessageSid", "MessageStatus", "ErrorCode", "To", "AccountSid"]


@given(st.dictionaries(st.one_of(st.sampled_from(FORM_KEYS), TEXT), TEXT, max_size=8))
def test_twilio_forms(form: dict[str, str]) -> None:
    try:
        twilio.parse_form(form, NOW)
    except twilio.MalformedTwilioRequest:
        pass
    try:
        twilio.parse_status_callback(form)
    except twilio.MalformedTwilioRequest:
        pass
    assert twilio.signature_is_valid(SECRET, "https://pay.example.com/sms/twilio", form, "x") in (
        True,
        False,
    )


def _event_or_ignored(parse: Any, body: bytes, headers: dict[str, str]) -> None:
    try:
        event = parse(body, headers)
    except WebhookInvalid:
        return
    assert event is None or isinstance(event, GatewayEvent)


@given(BODIES, HEADER)
def test_razorpay_webhooks_signed_with_the_right_secret(body: bytes, event_id: str | None) -> None:
    gateway = RazorpayGateway("rzp_test_fake", "fake", "0000", SECRET)
    headers = {"X-Razorpay-Signature": hmac.new(SECRET.encode(), body, "sha256").hexdigest()}
    if event_id is not None:
        headers["X-Razorpay-Event-Id"] = event_id
    _event_or_ignored(gateway.parse_webhook, body, headers)


@given(BODIES, HEADER)
def test_cashfree_webhooks_signed_with_the_right_secret(body: bytes, timestamp: str | None) -> None:
    gateway = CashfreeGateway("fake-client", SECRET)
    stamp = timestamp or "1790000000000"
    digest = hmac.new(SECRET.encode(), stamp.encode("utf-8", "replace") + body, hashlib.sha256)
    headers = {
        "x-webhook-timestamp": stamp,
        "x-webhook-signature": base64.b64encode(digest.digest()).decode(),
    }
    _event_or_ignored(gateway.parse_webhook, body, headers)


@given(st.dictionaries(st.sampled_from(["amount", "reason", "extra"]), JSON, max_size=3))
def test_staff_credit_body(data: dict[str, Any]) -> None:
    try:
        loaded = CreditBody().load(data)
    except ValidationError:
        return
    assert type(loaded["amount"]) is int and 0 < loaded["amount"]


@given(TEXT)
def test_masking_never_leaves_a_long_digit_run(text: str) -> None:
    masked = mask_numbers_in(text)
    digits = "".join(c if c in "0123456789" else " " for c in masked).split()
    assert all(len(run) < 8 for run in digits)


@pytest.mark.parametrize("depth", [10, 999, 1_000, 50_000])
def test_depth_on_its_own(depth: int) -> None:
    body = json.dumps({"from": "+919876543210", "body": "x"}).encode()[:-1] + b', "n": '
    body += b"[" * depth + b"]" * depth + b"}"
    try:
        tasker.parse_body(body, "shop-1", NOW)
    except tasker.MalformedTaskerRequest:
        pass
