"""Webhooks: inbound SMS from Twilio (`POST /sms/twilio`) and Tasker (`POST /sms/tasker`), and
payment gateways' events (`POST /webhooks/<provider>`).

Each view authenticates before it parses or stores anything (a bare 403 otherwise). An SMS view
turns the request into an InboundSms, hands it to `handle_inbound_sms`, and renders the reply; a
gateway event, verified over the raw body, goes to `settlement.handle_gateway_event`.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, jsonify, request

from app.logs import SMS_ENVIRON_KEY
from app.services.admin import tasker_secret
from app.services.inbound import SmsReply, handle_inbound_sms
from app.services.settlement import handle_gateway_event
from app.web import services
from gateway_clients.base import WebhookInvalid
from sms import tasker, twilio
from sms.inbound import InboundSms

bp = Blueprint("webhooks", __name__)
log = logging.getLogger(__name__)


def _twilio_url() -> str:
    """The URL Twilio signed: the configured public URL, or the request's own behind ProxyFix."""
    base = services().settings.public_base_url.rstrip("/")
    if not base:
        return request.url
    query = request.query_string.decode("latin-1")
    return base + request.path + ("?" + query if query else "")


def _handle(sms: InboundSms) -> SmsReply:
    """Run the SMS; its outcome joins the request's access line (one log line per SMS)."""
    reply = handle_inbound_sms(services(), sms)
    request.environ[SMS_ENVIRON_KEY] = (sms.route.value, reply.outcome, reply.reference)
    return reply


@bp.post("/sms/twilio")
def twilio_inbound() -> Response:
    """Twilio's incoming-message webhook; answers with TwiML."""
    svc = services()
    signature = request.headers.get("X-Twilio-Signature")
    if not svc.settings.twilio_auth_token:
        log.warning("twilio webhook refused: SMSPAY_TWILIO_AUTH_TOKEN is unset")
        abort(403)
    try:
        form = twilio.read_form(request.mimetype, request.get_data(cache=False))
        if not twilio.signature_is_valid(
            svc.settings.twilio_auth_token, _twilio_url(), form, signature
        ):
            log.warning("twilio webhook refused: bad signature")
            abort(403)
        sms = twilio.parse_form(form.first(), svc.clock.now())
    except twilio.MalformedTwilioRequest as exc:
        abort(400, str(exc))
    reply = _handle(sms)
    return Response(twilio.twiml_reply(reply.text), mimetype="application/xml")


@bp.post("/sms/tasker")
def tasker_inbound() -> Response:
    """A Tasker phone forwarding one SMS; answers JSON the phone turns into an SMS."""
    svc = services()
    gateway_id = request.headers.get("X-Gateway-Id", "")
    secret = tasker_secret(svc, gateway_id) if gateway_id else None
    body = request.get_data(cache=False)
    if secret is None or not tasker.signature_is_valid(
        secret,
        request.headers.get("X-Timestamp"),
        body,
        request.headers.get("X-Signature"),
        svc.clock.now(),
        svc.settings.tasker_max_skew_seconds,
    ):
        log.warning("tasker webhook refused: bad signature or timestamp")
        abort(403)
    try:
        sms = tasker.parse_body(body, gateway_id, svc.clock.now())
    except tasker.MalformedTaskerRequest as exc:
        abort(400, str(exc))
    reply = _handle(sms)
    return jsonify(reply=reply.text, to=reply.to, reference=reply.reference)


# which webhook format each payout rail speaks (the sandbox imitates Razorpay)
WEBHOOK_FORMAT = {"razorpay": "razorpay", "sandbox": "razorpay", "cashfree": "cashfree"}


@bp.post("/webhooks/<provider>")
def gateway_webhook(provider: str) -> tuple[dict[str, str], int]:
    """A payment gateway's event: verified over the raw body, applied once, answered at once."""
    svc = services()
    if WEBHOOK_FORMAT.get(svc.gateway.name) != provider:
        abort(404)
    body = request.get_data(cache=False)
    try:
        event = svc.gateway.parse_webhook(body, dict(request.headers))
    except WebhookInvalid as exc:
        log.warning("%s webhook not understood: %s", provider, exc)
        return {"status": "ignored", "reason": str(exc)[:200]}, 200
    if event is None:
        log.warning("%s webhook refused: bad signature", provider)
        abort(403)
    return {"status": handle_gateway_event(svc, event)}, 200
