"""Cashfree Payouts (v2 API) to UPI ids behind the gateway contract.

A standard transfer is idempotent by `transfer_id`, which is our reference: Cashfree refuses a
second transfer under the same id (409), and the adapter then answers with the transfer that
already exists. Amounts go out in rupees and are converted from and to integer paise exactly.
Payment links are not offered on this rail.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

import requests

from gateway_clients._json import api_object, call, required_str, webhook_object
from gateway_clients.base import (
    NOT_CHECKED,
    GatewayEvent,
    GatewayUnavailable,
    PayeeCheck,
    PaymentLink,
    PaymentLinksUnsupported,
    Payout,
    PayoutRejected,
    PayoutRequest,
    PayoutStatus,
    WebhookInvalid,
)

log = logging.getLogger(__name__)

PRODUCTION_URL = "https://api.cashfree.com"
SANDBOX_URL = "https://sandbox.cashfree.com"
API_VERSION = "2024-01-01"
DEFAULT_PAYEE_NAME = "SMS Pay payee"  # beneficiary_name is mandatory without a beneficiary_id
IST = timezone(timedelta(hours=5, minutes=30))  # Cashfree's event times carry no offset

# Cashfree transfer states. SUCCESS is only PROCESSED once the credit is confirmed (status_code
# COMPLETED); SUCCESS with SENT_TO_BENEFICIARY means debited, beneficiary bank not yet confirmed.
# A state we do not know stays PROCESSING: never conclude from it.
STATES: dict[str, PayoutStatus] = {
    "RECEIVED": PayoutStatus.PROCESSING,
    "PENDING": PayoutStatus.PROCESSING,
    "APPROVAL_PENDING": PayoutStatus.PROCESSING,
    "QUEUED": PayoutStatus.PROCESSING,
    "SENT_TO_BENEFICIARY": PayoutStatus.PROCESSING,
    "SUCCESS": PayoutStatus.PROCESSED,
    "FAILED": PayoutStatus.FAILED,
    "REJECTED": PayoutStatus.FAILED,
    "MANUALLY_REJECTED": PayoutStatus.FAILED,
    "REVERSED": PayoutStatus.REVERSED,
}
TRANSFER_EVENTS = frozenset(
    {
        "TRANSFER_SUCCESS",
        "TRANSFER_ACKNOWLEDGED",
        "TRANSFER_FAILED",
        "TRANSFER_REVERSED",
        "TRANSFER_REJECTED",
    }
)
# 4xx answers that are not the payee's fault (keys, IP allowlist, rate limit): the worker tries
# again later under the same transfer_id. 409 is handled apart: the transfer already exists.
RETRYABLE_4XX = frozenset({401, 403, 408, 429})


class CashfreeGateway:
    """Cashfree Payouts v2 standard transfers to VPAs."""

    name = "cashfree"

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = (5, 15),
        base_url: str = PRODUCTION_URL,
        api_version: str = API_VERSION,
    ) -> None:
        self._headers = {
            "x-client-id": client_id,
            "x-client-secret": client_secret,
            "x-api-version": api_version,
        }
        self._secret = client_secret.encode()  # Cashfree signs webhooks with the client secret
        self._session = session or requests.Session()
        self._timeout = timeout
        self._base = base_url.rstrip("/")

    def create_payout(self, request: PayoutRequest) -> Payout:
        """Ask Cashfree for a UPI standard transfer, our reference as the transfer_id."""
        response = self._call("POST", "/payout/transfers", json=transfer_body(request))
        if response.status_code == 409:
            return self._existing(request.reference)
        body = api_object("cashfree", response)
        if response.status_code >= 400:
            raise refusal(response.status_code, body)
        payout = _api_payout(body)
        if payout.reference != request.reference:
            raise GatewayUnavailable(f"cashfree answered for transfer {payout.reference!r}")
        return payout

    def fetch_payout(self, reference: str) -> Payout | None:
        """The transfer made under our reference, or None if Cashfree has none."""
        response = self._call("GET", "/payout/transfers", params={"transfer_id": reference})
        if response.status_code == 404:
            return None
        body = api_object("cashfree", response)
        if response.status_code >= 400:
            raise GatewayUnavailable(f"cashfree transfer status answered {response.status_code}")
        payout = _api_payout(body)
        if payout.reference != reference:  # an answer about another transfer tells us nothing
            raise GatewayUnavailable("cashfree answered about another transfer")
        return payout

    def list_payouts(self, since: int, until: int) -> list[Payout] | None:
        """Not offered by the v2 transfer API: reconciliation checks our payouts one by one."""
        return None

    def validate_payee(self, vpa: str) -> PayeeCheck:
        """Not checked on this rail (UPI name checks are a separate Cashfree product)."""
        return NOT_CHECKED

    def create_payment_link(
        self, reference: str, amount: int, phone: str, description: str, expire_by: int
    ) -> PaymentLink:
        """Not offered on this rail; always raises GatewayUnavailable."""
        raise PaymentLinksUnsupported("payment links are not supported on this rail")

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> GatewayEvent | None:
        """Verify the signature over timestamp + raw body, then parse; None if it fails."""
        lowered = {key.lower(): value for key, value in headers.items()}
        timestamp = lowered.get("x-webhook-timestamp")
        if not signature_ok(self._secret, timestamp, body, lowered.get("x-webhook-signature")):
            return None
        event = webhook_object("cashfree", body)
        kind = event.get("type")
        if not isinstance(kind, str) or kind not in TRANSFER_EVENTS:
            raise WebhookInvalid(f"unhandled cashfree event {kind!r}")
        event_id = lowered.get("x-idempotency-key") or body_digest(body)
        try:
            return _transfer_event(event, event_id, int(timestamp or 0) // 1000)
        except (KeyError, TypeError, ValueError) as exc:
            raise WebhookInvalid(f"malformed cashfree {kind} event: {exc}") from exc

    def _existing(self, reference: str) -> Payout:
        """The transfer a repeated transfer_id refers to: the first attempt got through."""
        payout = self.fetch_payout(reference)
        if payout is None:
            raise GatewayUnavailable(f"cashfree has transfer {reference} but cannot show it yet")
        return payout

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One HTTP call to Cashfree; 5xx and transport errors mean outcome unknown."""
        url = self._base + path
        return call(
            "cashfree",
            self._session,
            method,
            url,
            headers=self._headers,
            timeout=self._timeout,
            **kwargs,
        )


def transfer_body(request: PayoutRequest) -> dict[str, Any]:
    """The standard transfer request with the beneficiary given inline."""
    return {
        "transfer_id": request.reference,
        "transfer_amount": rupees(request.amount),
        "transfer_currency": "INR",
        "transfer_mode": "upi",
        "beneficiary_details": {
            "beneficiary_name": beneficiary_name(request.payee_name),
            "beneficiary_instrument_details": {"vpa": request.vpa},
        },
        "transfer_remarks": remarks(request.narration),
    }


def rupees(amount: int) -> float:
    """Paise as rupees. Exact: the nearest double to a two-decimal amount prints as exactly
    those digits (shortest repr), which is what goes into the JSON body."""
    return float(Decimal(amount) / 100)


def paise(rupee_amount: object) -> int:
    """Rupees (number or string) as integer paise; ValueError unless exact."""
    if isinstance(rupee_amount, bool) or not isinstance(rupee_amount, int | float | str):
        raise ValueError(f"amount {rupee_amount!r} is not a number")
    try:
        value = Decimal(str(rupee_amount)) * 100
    except InvalidOperation as exc:
        raise ValueError(f"amount {rupee_amount!r} is not a number") from exc
    if not value.is_finite() or value != value.to_integral_value():
        raise ValueError(f"amount {rupee_amount!r} is not a whole number of paise")
    return int(value)


def beneficiary_name(name: str) -> str:
    """A name Cashfree accepts (letters and spaces, at most 100), or ours."""
    cleaned = " ".join(re.sub(r"[^A-Za-z ]", "", name).split())[:100].strip()
    return cleaned or DEFAULT_PAYEE_NAME


def remarks(text: str) -> str:
    """Transfer remarks: letters, digits and spaces, at most 70 characters."""
    return re.sub(r"[^A-Za-z0-9 ]", "", text).strip()[:70].strip() or "SMS Pay"


def status_of(status: str, status_code: str) -> PayoutStatus:
    """Our state for a Cashfree status and status_code."""
    if status == "SUCCESS" and status_code not in ("", "COMPLETED"):
        return PayoutStatus.PROCESSING  # debited, the beneficiary bank has not confirmed
    return STATES.get(status, PayoutStatus.PROCESSING)


def transfer_from_data(data: Mapping[str, Any]) -> Payout:
    """Our view of a Cashfree transfer object; ValueError/TypeError if malformed."""
    status = status_of(required_str(data, "status"), str(data.get("status_code") or ""))
    reason = ""
    if status in (PayoutStatus.FAILED, PayoutStatus.REVERSED):
        reason = str(data.get("status_description") or data.get("status_code") or data["status"])
    provider_id, utr = str(data.get("cf_transfer_id") or ""), str(data.get("transfer_utr") or "")
    return Payout(
        required_str(data, "transfer_id"),
        provider_id,
        status,
        paise(data["transfer_amount"]),
        reason,
        utr,
    )


def refusal(status: int, body: Mapping[str, Any]) -> GatewayUnavailable | PayoutRejected:
    """What a 4xx means: refused for good (a Cashfree error body) or try again later."""
    message = body.get("message")
    if status in RETRYABLE_4XX or not isinstance(message, str) or not message:
        return GatewayUnavailable(f"cashfree answered {status}: {message or 'no error body'}")
    return PayoutRejected(message)


def signature_ok(secret: bytes, timestamp: str | None, body: bytes, signature: str | None) -> bool:
    """Constant-time check of base64 HMAC-SHA256(secret, timestamp + raw body)."""
    if not secret or not timestamp or not signature:
        return False
    digest = hmac.new(secret, timestamp.encode("utf-8", "replace") + body, hashlib.sha256)
    expected = base64.b64encode(digest.digest())
    return hmac.compare_digest(expected, signature.encode("utf-8", "replace"))


def body_digest(body: bytes) -> str:
    """A stable event id for a body that came without one: retries resend the same bytes."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def event_epoch(event_time: object, fallback: int) -> int:
    """Unix time of an event_time such as 2024-07-25T17:43:37 (IST when it has no offset)."""
    if not isinstance(event_time, str):
        return fallback
    try:
        when = datetime.fromisoformat(event_time)
    except ValueError:
        return fallback
    return int((when if when.tzinfo else when.replace(tzinfo=IST)).timestamp())


def _transfer_event(event: Mapping[str, Any], event_id: str, sent_at: int) -> GatewayEvent:
    data = event["data"]
    if not isinstance(data, dict):
        raise TypeError("data is not an object")
    payout = transfer_from_data(data)
    return GatewayEvent(
        event_id,
        "payout",
        payout.reference,
        payout.status.value,
        payout.amount,
        payout.provider_id,
        event_epoch(event.get("event_time"), sent_at),
        payout.failure_reason,
        raw=dict(event),
        utr=payout.utr,
    )


def _api_payout(body: Mapping[str, Any]) -> Payout:
    try:
        return transfer_from_data(body)
    except (KeyError, TypeError, ValueError) as exc:
        raise GatewayUnavailable(f"cashfree answered an unreadable transfer: {exc}") from exc
