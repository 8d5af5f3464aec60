"""Twilio's webhooks: signature check, incoming-message and status-callback forms, TwiML replies."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

import werkzeug.urls  # noqa: F401  # registers WERKZEUG_URL_QUOTE
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from sms.inbound import InboundSms, Route
from sms.numbers import is_e164

MESSAGE_SID_PREFIXES = ("SM", "MM")


class MalformedTwilioRequest(ValueError):
    """The form lacks what Twilio always sends."""


FORM_TYPE = "application/x-www-form-urlencoded"  # what Twilio posts, in UTF-8
MAX_FIELDS = 100  # an incoming message has about 20 fields, 40 more with ten media files
WERKZEUG_URL_QUOTE = "werkzeug.url_quote"  # the codec error handler werkzeug.urls registers


class Form(dict[str, list[str]]):
    """A form's fields with all their values, in the shape Twilio's validator reads first: it
    asks for `getall` (WebOb's name) before `getlist` (werkzeug's), so werkzeug's MultiDict cost
    a caught AttributeError a field each time the SDK signs: 70 us against 44 for a 19-field
    message when it signed twice."""

    def getall(self, name: str) -> list[str]:
        return self[name]

    def first(self) -> dict[str, str]:
        """Each field with its first value (as werkzeug's `to_dict(flat=True)`)."""
        return {name: values[0] for name, values in self.items()}


def read_form(mimetype: str, body: bytes) -> Form:
    """The fields of a Twilio webhook's body, each with all its values in order: what werkzeug's
    `request.form` makes of it, by werkzeug's own rules (no fields unless the body is a
    URL-encoded form in UTF-8; a %-escape that is not UTF-8 kept as it came, by werkzeug's
    error handler), without its parser machinery: 43 against 60 us for a 19-field message,
    its body read, in a request context (`timeit`). The body is bounded by MAX_CONTENT_LENGTH;
    MalformedTwilioRequest past MAX_FIELDS fields."""
    form = Form()
    if mimetype != FORM_TYPE:
        return form
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return form
    try:
        pairs = parse_qsl(
            text, keep_blank_values=True, errors=WERKZEUG_URL_QUOTE, max_num_fields=MAX_FIELDS
        )
    except ValueError as exc:
        raise MalformedTwilioRequest(f"more than {MAX_FIELDS} fields") from exc
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    return form


def _fields(params: Mapping[str, str] | Form) -> Form:
    if isinstance(params, Form):
        return params
    lists = getattr(params, "lists", None)
    if lists is None:  # a plain mapping: one value a field
        return Form((name, [value]) for name, value in params.items())
    return Form(lists())  # werkzeug's MultiDict: each name with all its values


def signature_is_valid(
    auth_token: str, url: str, params: Mapping[str, str] | Form, signature: str | None
) -> bool:
    """Check X-Twilio-Signature with Twilio's own validator (params may be a Form or a
    MultiDict, so a repeated field is signed as Twilio signed it).

    The validator's `validate` signs the URL twice, without its port and with it, and accepts
    either; `url` as given is always one of the two, and the one Twilio signs when the URL in
    its console is the service's public URL. So the SDK's `compute_signature` over `url` comes
    first (one HMAC: 11 against 32 us a 19-field message), and `validate` decides only when
    that does not match (a console URL with the default port, or a forgery).
    """
    if not auth_token or not signature:
        return False
    validator, fields = RequestValidator(auth_token), _fields(params)
    if hmac.compare_digest(validator.compute_signature(url, fields).encode(), signature.encode()):
        return True
    return bool(validator.validate(url, fields, signature))


def parse_form(form: Mapping[str, str], received_at: float) -> InboundSms:
    """Turn Twilio's incoming-message form into an InboundSms."""
    sender = form.get("From", "")
    sid = form.get("MessageSid", "")
    if "Body" not in form:
        raise MalformedTwilioRequest("missing Body")
    if not is_e164(sender):
        raise MalformedTwilioRequest("From is not an E.164 number")
    if not (len(sid) == 34 and sid.startswith(MESSAGE_SID_PREFIXES) and sid.isalnum()):
        raise MalformedTwilioRequest("missing or malformed MessageSid")
    return InboundSms(
        route=Route.TWILIO,
        sender=sender,
        body=form["Body"],
        received_at=received_at,
        provider_message_id=sid,
        service_number=form.get("To") or None,
    )


def _sdk_twiml(text: str | None) -> str:
    """The SDK's TwiML document answering with one SMS of `text` (or with nothing)."""
    response = MessagingResponse()
    if text:
        response.message(text)
    return str(response)


# The SDK's document for one SMS, rendered once around a marker: a reply is the SDK's text before
# the marker, the reply escaped as ElementTree escapes an element's text, and the text after it.
# The same document as the SDK makes (tests/unit/test_twiml.py, the SDK the oracle on any text),
# for a few us of CPU where the SDK's element tree and serializer took 55 in a request (the
# Twilio view's thread CPU with the SMS's handling stubbed out: 346 -> 292 us, best of 5 rounds
# of 1,000 requests through the WSGI app).
_MARK = "TWIML_REPLY_TEXT"
_BEFORE, _MARKED, _AFTER = _sdk_twiml(_MARK).partition(_MARK)
assert _MARKED and _MARK not in _AFTER, "the SDK's Message element changed shape"
_SILENT = _sdk_twiml(None)


def twiml_reply(text: str | None) -> str:
    """A TwiML document that answers the sender with one SMS (or nothing)."""
    if not text:
        return _SILENT
    return _BEFORE + escape(text) + _AFTER


# Every value Twilio documents for a Message's status (MessageStatus in a status callback).
MESSAGE_STATUSES = frozenset(
    {
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
    }
)


@dataclass(frozen=True)
class StatusCallback:
    """One status change of an outbound message, as Twilio reports it."""

    message_sid: str
    status: str
    error_code: str  # "" unless delivery failed, e.g. "30003"
    to: str


def parse_status_callback(form: Mapping[str, str]) -> StatusCallback:
    """Turn Twilio's message status callback form (already signature-checked) into data."""
    sid = form.get("MessageSid", "")
    status = form.get("MessageStatus", "")
    if not (len(sid) == 34 and sid.startswith(MESSAGE_SID_PREFIXES) and sid.isalnum()):
        raise MalformedTwilioRequest("missing or malformed MessageSid")
    if status not in MESSAGE_STATUSES:
        raise MalformedTwilioRequest("missing or unknown MessageStatus")
    return StatusCallback(
        message_sid=sid,
        status=status,
        error_code=form.get("ErrorCode", "").strip(),
        to=form.get("To", ""),
    )
