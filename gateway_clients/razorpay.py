"""RazorpayX payouts to UPI ids, and Razorpay UPI payment links, behind the gateway contract.

The Razorpay SDK has no payouts, so payouts and fund-account validation go over REST on the
injected `requests.Session` (basic auth with the key pair). Payment links go through
`razorpay.Client` built on the same session, so tests replay both with `responses`.

Every payout carries our reference twice: as `X-Payout-Idempotency` (RazorpayX answers a repeat
with the first result) and as `reference_id` (so a payout whose answer was lost can be fetched).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Mapping
from typing import Any

import razorpay
import requests
from razorpay.errors import BadRequestError, GatewayError, ServerError

from gateway_clients._json import api_object, call, required_int, required_str, webhook_object
from gateway_clients.base import (
    NOT_CHECKED,
    GatewayEvent,
    GatewayUnavailable,
    PayeeCheck,
    PaymentLink,
    Payout,
    PayoutRejected,
    PayoutRequest,
    PayoutStatus,
    WebhookInvalid,
)

log = logging.getLogger(__name__)

API_URL = "https://api.razorpay.com"
LIST_PAGE = 100  # Razorpay's largest page
DEFAULT_PAYEE_NAME = "SMS Pay payee"  # contact names are mandatory; ours may be unknown

# RazorpayX payout states. A state we do not know stays PROCESSING: never conclude from it.
STATES: dict[str, PayoutStatus] = {
    "queued": PayoutStatus.PROCESSING,
    "pending": PayoutStatus.PROCESSING,
    "processing": PayoutStatus.PROCESSING,
    "scheduled": PayoutStatus.PROCESSING,
    "processed": PayoutStatus.PROCESSED,
    "reversed": PayoutStatus.REVERSED,
    "failed": PayoutStatus.FAILED,
    "rejected": PayoutStatus.FAILED,
    "cancelled": PayoutStatus.FAILED,
}
PAYOUT_EVENTS = frozenset(
    {
        "payout.processed",
        "payout.reversed",
        "payout.failed",
        "payout.rejected",
        "payout.updated",
        "payout.queued",
        "payout.pending",
        "payout.initiated",
    }
)
LINK_EVENTS = {
    "payment_link.paid": "paid",
    "payment_link.expired": "expired",
    "payment_link.cancelled": "cancelled",
}
# 4xx answers that are not the payee's fault (keys, allowlist, rate limit, a concurrent retry):
# nothing was refused for good, so the worker tries again later under the same key.
RETRYABLE_4XX = frozenset({401, 403, 408, 409, 429})


class RazorpayGateway:
    """RazorpayX composite payouts to VPAs and Razorpay UPI payment links."""

    name = "razorpay"

    def __init__(
        self,
        key_id: str,
        key_secret: str,
        account_number: str,
        webhook_secret: str,
        session: requests.Session | None = None,
        client: Any | None = None,
        timeout: tuple[float, float] = (5, 15),
        validate_payees: bool = False,
        base_url: str = API_URL,
    ) -> None:
        self._auth = (key_id, key_secret)
        self._account = account_number
        self._webhook_secret = webhook_secret.encode()
        self._session = session or requests.Session()
        self._timeout = timeout
        self._validate_payees = validate_payees
        self._base = base_url.rstrip("/")
        self._client = client or razorpay.Client(
            session=self._session, auth=self._auth, base_url=self._base
        )

    def create_payout(self, request: PayoutRequest) -> Payout:
        """Ask RazorpayX for a composite UPI payout, our reference as the idempotency key."""
        headers = {"X-Payout-Idempotency": request.reference}
        response = self._call(
            "POST", "/v1/payouts", json=payout_body(self._account, request), headers=headers
        )
        body = api_object("razorpay", response)
        if response.status_code >= 400:
            raise refusal(response.status_code, body)
        payout = _api_payout(body)
        if payout.reference != request.reference:
            raise GatewayUnavailable(f"razorpay answered for reference {payout.reference!r}")
        return payout

    def fetch_payout(self, reference: str) -> Payout | None:
        """The newest payout made under our reference, or None if RazorpayX has none."""
        params = {"account_number": self._account, "reference_id": reference}
        response = self._call("GET", "/v1/payouts", params=params)
        body = api_object("razorpay", response)
        if response.status_code >= 400:
            raise GatewayUnavailable(f"razorpay payout list answered {response.status_code}")
        items = body.get("items") or []
        mine = [i for i in items if isinstance(i, dict) and i.get("reference_id") == reference]
        if not mine:
            return None
        return _api_payout(max(mine, key=_created))

    def list_payouts(self, since: int, until: int) -> list[Payout] | None:
        """Fetch-all payouts of the account created in the window, a page of 100 at a time."""
        found: list[Payout] = []
        while True:
            params = {
                "account_number": self._account,
                "from": since,
                "to": until - 1,
                "count": LIST_PAGE,
                "skip": len(found),
            }
            response = self._call("GET", "/v1/payouts", params=params)
            body = api_object("razorpay", response)
            if response.status_code >= 400:
                raise GatewayUnavailable(f"razorpay payout list answered {response.status_code}")
            items = [i for i in body.get("items") or [] if isinstance(i, dict)]
            found += [_api_payout(i) for i in items]
            if len(items) < LIST_PAGE:
                return found

    def validate_payee(self, vpa: str) -> PayeeCheck:
        """Fund-account validation of a VPA: its registered name, or invalid, or not checked."""
        if not self._validate_payees:
            return NOT_CHECKED
        try:
            response = self._call(
                "POST", "/v1/fund_accounts/validations", json=validation_body(self._account, vpa)
            )
            body = api_object("razorpay", response)
        except GatewayUnavailable as exc:
            log.warning("payee check not done: %s", exc)
            return NOT_CHECKED
        return payee_check(body) if response.status_code < 400 else NOT_CHECKED

    def create_payment_link(
        self, reference: str, amount: int, phone: str, description: str, expire_by: int
    ) -> PaymentLink:
        """A UPI payment link through the SDK; raises GatewayUnavailable."""
        data = payment_link_body(reference, amount, phone, description, expire_by)
        try:
            link = self._client.payment_link.create(data, timeout=self._timeout)
            return PaymentLink(
                reference,
                required_str(link, "id"),
                required_str(link, "short_url"),
                required_int(link, "amount"),
                expire_by,
            )
        except (BadRequestError, GatewayError, ServerError) as exc:
            raise GatewayUnavailable(f"razorpay payment link refused: {exc}") from exc
        except (requests.RequestException, ValueError, TypeError) as exc:
            raise GatewayUnavailable(f"razorpay payment link outcome unknown: {exc}") from exc

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> GatewayEvent | None:
        """Verify X-Razorpay-Signature over the raw body, then parse; None if it does not verify."""
        lowered = {key.lower(): value for key, value in headers.items()}
        if not signature_ok(self._webhook_secret, body, lowered.get("x-razorpay-signature")):
            return None
        event = webhook_object("razorpay", body)
        event_id = lowered.get("x-razorpay-event-id") or body_digest(body)
        name = event.get("event")
        try:
            if name in PAYOUT_EVENTS:
                return _payout_event(event, event_id)
            if isinstance(name, str) and name in LINK_EVENTS:
                return _link_event(event, event_id, LINK_EVENTS[name])
        except (KeyError, TypeError, ValueError) as exc:
            raise WebhookInvalid(f"malformed razorpay {name} event: {exc}") from exc
        raise WebhookInvalid(f"unhandled razorpay event {name!r}")

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One HTTP call to Razorpay; 5xx and transport errors mean outcome unknown."""
        url = self._base + path
        return call(
            "razorpay", self._session, method, url, auth=self._auth, timeout=self._timeout, **kwargs
        )


def payout_body(account_number: str, request: PayoutRequest) -> dict[str, Any]:
    """The composite payout request: contact, VPA fund account and payout in one call."""
    return {
        "account_number": account_number,
        "amount": request.amount,
        "currency": "INR",
        "mode": "UPI",
        "purpose": request.purpose,
        "fund_account": {
            "account_type": "vpa",
            "vpa": {"address": request.vpa},
            "contact": {
                "name": contact_name(request.payee_name),
                "type": "customer",
                "reference_id": contact_reference(request.vpa),
            },
        },
        "queue_if_low_balance": True,
        "reference_id": request.reference,
        "narration": narration(request.narration),
    }


def validation_body(account_number: str, vpa: str) -> dict[str, Any]:
    """The composite fund-account validation request for a VPA."""
    return {
        "source_account_number": account_number,
        "notes": {"purpose": "SMS Pay payee check"},
        "fund_account": {
            "account_type": "vpa",
            "vpa": {"address": vpa},
            "contact": {
                "name": DEFAULT_PAYEE_NAME,
                "type": "customer",
                "reference_id": contact_reference(vpa),
            },
        },
    }


def payment_link_body(
    reference: str, amount: int, phone: str, description: str, expire_by: int
) -> dict[str, Any]:
    """A UPI payment link for exactly `amount` paise, SMSed to the payer by Razorpay."""
    return {
        "upi_link": True,
        "amount": amount,
        "currency": "INR",
        "accept_partial": False,
        "reference_id": reference,
        "description": description,
        "expire_by": expire_by,
        "customer": {"contact": phone},
        "notify": {"sms": True},
        "reminder_enable": False,
    }


def contact_name(name: str) -> str:
    """A name RazorpayX accepts (3-50 allowed characters, no trailing symbol), or ours."""
    cleaned = re.sub(r"[^A-Za-z0-9 '’\-_/().]", "", name).strip()[:50]
    cleaned = re.sub(r"[ '’\-_/()]+$", "", cleaned)
    return cleaned if len(cleaned) >= 3 else DEFAULT_PAYEE_NAME


def contact_reference(vpa: str) -> str:
    """One contact per VPA: the VPA itself, or its digest when longer than 40 characters."""
    return vpa if len(vpa) <= 40 else hashlib.sha256(vpa.encode()).hexdigest()[:40]


def narration(text: str) -> str:
    """The bank-statement note: letters, digits and spaces, at most 30 characters."""
    return re.sub(r"[^A-Za-z0-9 ]", "", text).strip()[:30].strip() or "SMS Pay"


def payee_check(body: Mapping[str, Any]) -> PayeeCheck:
    """A completed validation says valid (with the registered name) or invalid; anything else,
    e.g. one still running, tells nothing."""
    results = body.get("validation_results") or body.get("results") or {}
    if body.get("status") != "completed" or not isinstance(results, dict):
        return NOT_CHECKED
    status, name = results.get("account_status"), results.get("registered_name")
    if status in ("active", "valid"):
        return PayeeCheck(True, name if isinstance(name, str) else "")
    return PayeeCheck(False) if status == "invalid" else NOT_CHECKED


def refusal(status: int, body: Mapping[str, Any]) -> GatewayUnavailable | PayoutRejected:
    """What a 4xx means: refused for good (a Razorpay error body) or try again later."""
    error = body.get("error")
    description = error.get("description") if isinstance(error, dict) else None
    if status in RETRYABLE_4XX or not isinstance(description, str) or not description:
        return GatewayUnavailable(f"razorpay answered {status}: {description or 'no error body'}")
    return PayoutRejected(description)


def payout_from_entity(entity: Mapping[str, Any]) -> Payout:
    """Our view of a RazorpayX payout entity; ValueError/TypeError if malformed."""
    status = STATES.get(required_str(entity, "status"), PayoutStatus.PROCESSING)
    reason = ""
    if status in (PayoutStatus.FAILED, PayoutStatus.REVERSED):
        details = entity.get("status_details")
        described = details.get("description") if isinstance(details, dict) else None
        reason = str(described or entity.get("failure_reason") or entity["status"])
    return Payout(
        str(entity.get("reference_id") or ""),
        required_str(entity, "id"),
        status,
        required_int(entity, "amount"),
        reason,
        str(entity.get("utr") or ""),
    )


def signature_ok(secret: bytes, body: bytes, signature: str | None) -> bool:
    """Constant-time check of a hex HMAC-SHA256 over the raw body; never with an empty key."""
    if not secret or not signature:
        return False
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest().encode()
    return hmac.compare_digest(expected, signature.encode("utf-8", "replace"))


def body_digest(body: bytes) -> str:
    """A stable event id for a body that came without one: retries resend the same bytes."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _payout_event(event: Mapping[str, Any], event_id: str) -> GatewayEvent:
    payout = payout_from_entity(_entity(event, "payout"))
    if not payout.reference:
        raise WebhookInvalid("payout event without our reference_id")
    return GatewayEvent(
        event_id,
        "payout",
        payout.reference,
        payout.status.value,
        payout.amount,
        payout.provider_id,
        required_int(event, "created_at"),
        payout.failure_reason,
        raw=dict(event),
        utr=payout.utr,
    )


def _link_event(event: Mapping[str, Any], event_id: str, status: str) -> GatewayEvent:
    link = _entity(event, "payment_link")
    reference = required_str(link, "reference_id")
    amount = required_int(link, "amount_paid" if status == "paid" else "amount")
    return GatewayEvent(
        event_id,
        "payment_link",
        reference,
        status,
        amount,
        required_str(link, "id"),
        required_int(event, "created_at"),
        raw=dict(event),
    )


def _entity(event: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    entity = event["payload"][kind]["entity"]
    if not isinstance(entity, dict):
        raise TypeError(f"{kind} entity is not an object")
    return entity


def _api_payout(body: Mapping[str, Any]) -> Payout:
    try:
        return payout_from_entity(body)
    except (KeyError, TypeError, ValueError) as exc:
        raise GatewayUnavailable(f"razorpay answered an unreadable payout: {exc}") from exc


def _created(item: Mapping[str, Any]) -> int:
    value = item.get("created_at")
    return value if isinstance(value, int) else 0
