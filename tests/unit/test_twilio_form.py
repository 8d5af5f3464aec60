"""sms.twilio.read_form reads a Twilio webhook's body as werkzeug's `request.form` does: every
field with all its values, in order, for any names and values (werkzeug is the oracle here, on
the same bytes); nothing from another content type; a bounded number of fields."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from flask import Flask, request
from hypothesis import given, settings
from hypothesis import strategies as st

from sms.twilio import FORM_TYPE, MAX_FIELDS, MalformedTwilioRequest, read_form
from tests.support import twilio_form

APP = Flask(__name__)


def werkzeug_form(body: bytes, content_type: str = FORM_TYPE) -> dict[str, list[str]]:
    with APP.test_request_context("/", method="POST", data=body, content_type=content_type):
        return dict(request.form.lists())


def test_the_form_twilio_posts_reads_as_werkzeug_reads_it() -> None:
    fields = twilio_form("+919876543210", "SP1 AbC+/= é ₹ & x=y")  # spaces, '+', '&', UTF-8
    body = urlencode([*fields.items(), ("MediaUrl0", "https://m/0"), ("MediaUrl0", "https://m/1")])
    form = read_form(FORM_TYPE, body.encode())
    assert form == werkzeug_form(body.encode())
    assert form["Body"] == ["SP1 AbC+/= é ₹ & x=y"]
    assert form["MediaUrl0"] == ["https://m/0", "https://m/1"]
    assert form.first()["MediaUrl0"] == "https://m/0" and form.first()["From"] == "+919876543210"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(min_size=1, max_size=12), st.text(max_size=40)), max_size=30))
def test_any_fields_read_as_werkzeug_reads_them(pairs: list[tuple[str, str]]) -> None:
    body = urlencode(pairs).encode()
    assert read_form(FORM_TYPE, body) == werkzeug_form(body)


def test_a_body_of_another_type_has_no_fields() -> None:
    body = b'{"Body": "SP1 x", "From": "+919876543210"}'
    assert read_form("application/json", body) == {} == werkzeug_form(body, "application/json")
    assert read_form("text/plain", b"Body=SP1&From=%2B919876543210") == {}


def test_a_body_of_too_many_fields_is_refused() -> None:
    assert len(read_form(FORM_TYPE, urlencode([("f", "x")] * MAX_FIELDS).encode())) == 1
    with pytest.raises(MalformedTwilioRequest, match="more than 100 fields"):
        read_form(FORM_TYPE, urlencode([("f", "x")] * (MAX_FIELDS + 1)).encode())


def test_bytes_that_are_not_utf8_are_read_as_werkzeug_reads_them() -> None:
    escaped = b"Body=SP1%FF%FEx&From=%2B919876543210"  # kept as they came
    assert read_form(FORM_TYPE, escaped) == werkzeug_form(escaped)
    assert read_form(FORM_TYPE, escaped)["Body"] == ["SP1%FF%FEx"]
    raw = b"Body=SP1\xff&From=%2B919876543210"  # not a form: nothing read, the signature fails
    assert read_form(FORM_TYPE, raw) == {} == werkzeug_form(raw)
