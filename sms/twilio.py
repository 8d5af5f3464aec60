"""Twilio's incoming-message webhook: signature check, form parsing, TwiML replies."""

from __future__ import annotations

from collections.abc import Mapping

from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from sms.inbound import InboundSms, Route
from sms.numbers import is_e164

MESSAGE_SID_PREFIXES = ("SM", "MM")


class MalformedTwilioRequest(ValueError):
    """The form lacks what Twilio always sends."""


def signature_is_valid(
    auth_token: str, url: str, params: Mapping[str, str], signature: str | None
) -> bool:
    """Check X-Twilio-Signature with Twilio's own validator (params may be a MultiDict, so a
    repeated field is signed as Twilio signed it)."""
    if not auth_token or not signature:
        return False
    return bool(RequestValidator(auth_token).validate(url, params, signature))


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


def twiml_reply(text: str | None) -> str:
    """A TwiML document that answers the sender with one SMS (or nothing)."""
    response = MessagingResponse()
    if text:
        response.message(text)
    return str(response)
