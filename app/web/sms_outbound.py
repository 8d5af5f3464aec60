"""Outbound SMS endpoints: Twilio's delivery reports, and the Tasker phone's outbox.

    POST /sms/twilio/status              Twilio status callback (X-Twilio-Signature)
    GET  /sms/tasker/outbox?limit=N      a phone takes up to N SMS to send (leased to it)
    POST /sms/tasker/outbox/<id>         the phone reports one sent or failed

The Tasker endpoints use the inbound route's HMAC scheme: X-Gateway-Id, X-Timestamp and
X-Signature = hex HMAC-SHA256(secret, "<X-Timestamp>." + raw body); a GET signs an empty body.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request

from app.services.admin import tasker_secret
from app.services.outbound import (
    NotHeld,
    UnknownSms,
    ack_from_phone,
    lease_for_phone,
    record_twilio_status,
)
from app.web import services
from sms import tasker, twilio

bp = Blueprint("sms_outbound", __name__)
log = logging.getLogger(__name__)
MAX_BATCH = 10


def _public_url() -> str:
    base = services().settings.public_base_url.rstrip("/")
    return base + request.path if base else request.base_url


@bp.post("/sms/twilio/status")
def twilio_status() -> tuple[dict[str, str], int]:
    """Twilio reports what became of a message we sent."""
    svc = services()
    signature = request.headers.get("X-Twilio-Signature")
    if not svc.settings.twilio_auth_token:
        log.warning("twilio status callback refused: SMSPAY_TWILIO_AUTH_TOKEN is unset")
        abort(403)
    try:
        form = twilio.read_form(request.mimetype, request.get_data(cache=False))
        if not twilio.signature_is_valid(
            svc.settings.twilio_auth_token, _public_url(), form, signature
        ):
            log.warning("twilio status callback refused: bad signature")
            abort(403)
        report = twilio.parse_status_callback(form.first())
    except twilio.MalformedTwilioRequest as exc:
        abort(400, str(exc))
    if not record_twilio_status(svc, report.message_sid, report.status, report.error_code):
        abort(404, "unknown message")
    return {"status": "recorded"}, 200


def _tasker_phone() -> str:
    """The authenticated Tasker phone's id, or a bare 403."""
    svc = services()
    gateway_id = request.headers.get("X-Gateway-Id", "")
    secret = tasker_secret(svc, gateway_id) if gateway_id else None
    if secret is None or not tasker.signature_is_valid(
        secret,
        request.headers.get("X-Timestamp"),
        request.get_data(cache=True),
        request.headers.get("X-Signature"),
        svc.clock.now(),
        svc.settings.tasker_max_skew_seconds,
    ):
        log.warning("tasker outbox refused: bad signature or timestamp")
        abort(403)
    return gateway_id


@bp.get("/sms/tasker/outbox")
def tasker_outbox() -> Response:
    """SMS for this phone to send now, each leased to it until it acks or the lease ends."""
    gateway_id = _tasker_phone()
    try:
        want = min(MAX_BATCH, max(1, int(request.args.get("limit", "5"))))
    except ValueError:
        abort(400, "limit must be a number")
    leased = lease_for_phone(services(), gateway_id, want)
    return jsonify(messages=[{"id": m.id, "to": m.to, "body": m.body} for m in leased])


@bp.post("/sms/tasker/outbox/<sms_id>")
def tasker_ack(sms_id: str) -> tuple[dict[str, str], int]:
    """The phone says it sent one SMS, or could not (it will be offered again)."""
    gateway_id = _tasker_phone()
    try:
        data: Any = json.loads(request.get_data(cache=True) or b"{}")
    except (ValueError, RecursionError):
        abort(400, "body is not JSON")
    if not isinstance(data, dict) or data.get("status") not in ("sent", "failed"):
        abort(400, "status must be 'sent' or 'failed'")
    reason = str(data.get("reason") or "")
    try:
        state = ack_from_phone(services(), gateway_id, sms_id, data["status"] == "sent", reason)
    except UnknownSms as exc:
        abort(404, str(exc))
    except NotHeld as exc:
        abort(409, str(exc))
    return {"status": state}, 200
