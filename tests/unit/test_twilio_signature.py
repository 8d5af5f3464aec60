"""sms.twilio.signature_is_valid against signatures made by Twilio's own SDK code over the form
as Twilio posts it: every field, a repeated one with each of its values."""

from __future__ import annotations

from twilio.request_validator import RequestValidator
from werkzeug.datastructures import ImmutableMultiDict

from sms.twilio import signature_is_valid

TOKEN = "f" * 32  # an obviously fake auth token
URL = "https://pay.example.com/sms/twilio"
FIELDS = [
    ("MessageSid", "SM" + "a" * 32), ("AccountSid", "AC" + "b" * 32),
    ("From", "+919876543210"), ("To", "+15005550006"), ("Body", "SP1 abc"),
    ("NumMedia", "2"), ("MediaUrl0", "https://api.twilio.com/m/0"),
    ("MediaUrl0", "https://api.twilio.com/m/1"),  # a repeated field, both values signed
]  # fmt: skip


def test_a_form_with_a_repeated_field_is_checked_as_twilio_signed_it() -> None:
    form = ImmutableMultiDict(FIELDS)
    signature = RequestValidator(TOKEN).compute_signature(URL, form)
    assert signature_is_valid(TOKEN, URL, form, signature)
    altered = ImmutableMultiDict([*FIELDS[:-1], ("MediaUrl0", "https://evil.example/x")])
    assert not signature_is_valid(TOKEN, URL, altered, signature)
    assert not signature_is_valid(TOKEN, URL, ImmutableMultiDict(FIELDS[:-1]), signature)
    assert not signature_is_valid("e" * 32, URL, form, signature)


def test_a_plain_mapping_is_checked_too() -> None:
    data = {"MessageSid": "SM" + "a" * 32, "MessageStatus": "delivered"}
    signature = RequestValidator(TOKEN).compute_signature(URL, data)
    assert signature_is_valid(TOKEN, URL, data, signature)
    assert not signature_is_valid(TOKEN, URL, {**data, "MessageStatus": "failed"}, signature)
    assert not signature_is_valid(TOKEN, URL, data, None)


def test_the_url_with_or_without_its_default_port_is_accepted_as_twilios_validator_does() -> None:
    """Twilio may sign the URL with its default port or without it (the SDK accepts both): the
    signature over the URL as given is checked first, the SDK's two forms after."""
    form = ImmutableMultiDict(FIELDS)
    with_port = "https://pay.example.com:443/sms/twilio"
    signed_without = RequestValidator(TOKEN).compute_signature(URL, form)
    signed_with = RequestValidator(TOKEN).compute_signature(with_port, form)
    assert signed_without != signed_with
    for url in (URL, with_port):
        assert signature_is_valid(TOKEN, url, form, signed_without)
        assert signature_is_valid(TOKEN, url, form, signed_with)
    other = RequestValidator(TOKEN).compute_signature("https://pay.example.com/sms/other", form)
    assert not signature_is_valid(TOKEN, URL, form, other)
    assert not signature_is_valid(TOKEN, with_port, form, other)
    assert not signature_is_valid(TOKEN, URL, form, signed_without[:-2] + "é=")
