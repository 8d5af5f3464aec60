"""A recording fake of the payment-gateway contract, for the service layer's tests.

`FakeGateway` keeps its payouts and links in memory like a provider keeps its own book, records
every call with the time it was made, and can be scripted to fail: refuse or time out the next
creates, or accept a payout and then lose the answer (the unknown-outcome case). Its webhooks are
Razorpay-format and signed like Razorpay's; it parses them with the real `RazorpayGateway` code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from gateway_clients.base import (
    NOT_CHECKED,
    GatewayEvent,
    GatewayUnavailable,
    PayeeCheck,
    PaymentLink,
    Payout,
    PayoutRequest,
    PayoutStatus,
)
from gateway_clients.razorpay import RazorpayGateway

WEBHOOK_SECRET = "fake-razorpay-webhook-secret"


@dataclass(frozen=True)
class Call:
    """One call the service made to the gateway."""

    method: str
    reference: str
    at: float
    request: PayoutRequest | None = None


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    """X-Razorpay-Signature: hex HMAC-SHA256 over the raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class FakeGateway:
    """An in-memory payout rail that records calls; speaks Razorpay's webhook format."""

    name = "razorpay"

    def __init__(
        self, clock: Callable[[], float] = time.time, webhook_secret: str = WEBHOOK_SECRET
    ) -> None:
        self.clock = clock
        self.secret = webhook_secret
        self.calls: list[Call] = []
        self.payouts: dict[str, Payout] = {}  # the provider's book, by our reference
        self.links: dict[str, PaymentLink] = {}
        self.payees: dict[str, PayeeCheck] = {}  # what validate_payee answers, by VPA
        self.foreign: list[Payout] = []  # payouts on the account that we never asked for
        self.timeout_after_accept = False
        self._create_failures: list[Exception] = []
        self._fetch_failures: list[Exception] = []
        self._parser = RazorpayGateway("fake", "fake", "fake", webhook_secret)

    # scripting
    def fail_next(self, n: int, exc: Exception) -> None:
        """Raise `exc` on the next `n` create calls, before the provider records anything."""
        self._create_failures.extend([exc] * n)

    def fail_next_fetch(self, n: int, exc: Exception) -> None:
        """Raise `exc` on the next `n` fetch calls."""
        self._fetch_failures.extend([exc] * n)

    def heal(self) -> None:
        """Forget the failures still scripted: the gateway answers normally again."""
        self._create_failures.clear()
        self._fetch_failures.clear()

    def set_status(
        self, reference: str, status: PayoutStatus, reason: str = "", utr: str = ""
    ) -> Payout:
        """What the provider says of a payout from now on."""
        payout = replace(self.payouts[reference], status=status, failure_reason=reason, utr=utr)
        self.payouts[reference] = payout
        return payout

    # what the tests count
    def made(self) -> int:
        """How many distinct payouts the provider made."""
        return len(self.payouts)

    def called(self, method: str, reference: str | None = None) -> list[Call]:
        """The calls of one method (for one reference)."""
        return [
            c
            for c in self.calls
            if c.method == method and (reference is None or c.reference == reference)
        ]

    # the gateway contract
    def create_payout(self, request: PayoutRequest) -> Payout:
        """Idempotent by reference: a repeat returns the payout made the first time."""
        self.calls.append(Call("create_payout", request.reference, self.clock(), request))
        if self._create_failures:
            raise self._create_failures.pop(0)
        payout = self.payouts.get(request.reference)
        if payout is None:
            provider_id = f"pout_fake{len(self.payouts) + 1:06d}"
            payout = Payout(request.reference, provider_id, PayoutStatus.PROCESSING, request.amount)
            self.payouts[request.reference] = payout
        if self.timeout_after_accept:
            self.timeout_after_accept = False
            raise GatewayUnavailable("fake: read timed out after the payout was accepted")
        return payout

    def fetch_payout(self, reference: str) -> Payout | None:
        """The payout made under our reference, as it stands now."""
        self.calls.append(Call("fetch_payout", reference, self.clock()))
        if self._fetch_failures:
            raise self._fetch_failures.pop(0)
        return self.payouts.get(reference)

    def list_payouts(self, since: int, until: int) -> list[Payout] | None:
        """Every payout the fake provider holds (it keeps no times), plus any made elsewhere."""
        self.calls.append(Call("list_payouts", None, self.clock()))
        return [*self.payouts.values(), *self.foreign]

    def validate_payee(self, vpa: str) -> PayeeCheck:
        """What `payees` says of the VPA; not checked unless a test set it."""
        self.calls.append(Call("validate_payee", vpa, self.clock()))
        return self.payees.get(vpa, NOT_CHECKED)

    def create_payment_link(
        self, reference: str, amount: int, phone: str, description: str, expire_by: int
    ) -> PaymentLink:
        """Idempotent by reference, like Razorpay's reference_id."""
        self.calls.append(Call("create_payment_link", reference, self.clock()))
        link = self.links.get(reference)
        if link is None:
            link_id = f"plink_fake{len(self.links) + 1:06d}"
            link = PaymentLink(reference, link_id, f"https://rzp.io/i/{link_id}", amount, expire_by)
            self.links[reference] = link
        return link

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> GatewayEvent | None:
        """Verified and parsed by the real Razorpay adapter's code."""
        return self._parser.parse_webhook(body, headers)

    # the provider's side of the webhooks
    def payout_webhook(
        self, reference: str, event: str | None = None, event_id: str | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """A signed payout webhook for the payout as it stands (or as `event` says)."""
        payout = self.payouts[reference]
        state = event.removeprefix("payout.") if event else payout.status.value
        entity: dict[str, Any] = {
            "id": payout.provider_id,
            "entity": "payout",
            "amount": payout.amount,
            "currency": "INR",
            "status": state,
            "mode": "UPI",
            "reference_id": reference,
            "utr": payout.utr or None,
            "status_details": {"description": payout.failure_reason}
            if payout.failure_reason
            else None,
        }
        return self.webhook(f"payout.{state}", "payout", entity, event_id)

    def link_paid_webhook(
        self, reference: str, amount: int | None = None, event_id: str | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """A signed `payment_link.paid` webhook (for a link we may never have made)."""
        link = self.links.get(reference)
        paid = amount if amount is not None else (link.amount if link else 100)
        entity = {
            "id": link.provider_id if link else "plink_unknown",
            "entity": "payment_link",
            "amount": paid,
            "amount_paid": paid,
            "currency": "INR",
            "status": "paid",
            "reference_id": reference,
        }
        return self.webhook("payment_link.paid", "payment_link", entity, event_id)

    def webhook(
        self, event: str, kind: str, entity: Mapping[str, Any], event_id: str | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """Any Razorpay-format event, signed, with its event id header."""
        body = json.dumps(
            {
                "entity": "event",
                "account_id": "acc_FAKE0000000001",
                "event": event,
                "contains": [kind],
                "payload": {kind: {"entity": dict(entity)}},
                "created_at": int(self.clock()),
            }
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Razorpay-Signature": sign(body, self.secret),
            "X-Razorpay-Event-Id": event_id or f"evt_{hashlib.sha1(body).hexdigest()[:14]}",
        }
        return body, headers
