"""The payment-gateway contract: what the service needs from RazorpayX, Cashfree or the sandbox.

Adapters wrap their SDK or HTTP session and translate provider states and errors into these
types. Amounts are integer paise. Every payout carries our transaction reference as its
idempotency key, so asking twice never pays twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class PayoutStatus(StrEnum):
    """A payout's state, normalised across providers."""

    PROCESSING = "processing"  # accepted; queued, pending or processing at the provider
    PROCESSED = "processed"  # the money reached the payee
    FAILED = "failed"  # it did not, and never will (failed, rejected, cancelled)
    REVERSED = "reversed"  # it reached the payee's bank, then came back


class GatewayError(Exception):
    """Base of gateway errors."""


class GatewayUnavailable(GatewayError):
    """The outcome is unknown (timeout, connection error, 5xx): resolve by fetching, never by
    asking again under a new key."""


class PayoutRejected(GatewayError):
    """The provider refused the payout for good (e.g. invalid VPA); nothing was sent."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PaymentLinksUnsupported(GatewayError):
    """This rail cannot make payment links (top-ups need another rail)."""


class WebhookInvalid(GatewayError):
    """A webhook body that verified but cannot be understood."""


@dataclass(frozen=True)
class PayoutRequest:
    """Send `amount` paise to a UPI id; `reference` is our transaction reference."""

    reference: str
    vpa: str
    amount: int
    payee_name: str = ""
    purpose: str = "payout"
    narration: str = "SMS Pay"


@dataclass(frozen=True)
class PayeeCheck:
    """What a payee check found: `valid` is None when nothing was checked or it could not tell
    (checks off, provider down, validation still running), so only False refuses a payout."""

    valid: bool | None
    name: str = ""  # the name the payee's bank has, when valid


NOT_CHECKED = PayeeCheck(None)


@dataclass(frozen=True)
class Payout:
    """What the provider says of one payout."""

    reference: str
    provider_id: str
    status: PayoutStatus
    amount: int
    failure_reason: str = ""
    utr: str = ""  # the bank's reference, when processed


@dataclass(frozen=True)
class PaymentLink:
    """A link the user pays to top the wallet up."""

    reference: str
    provider_id: str
    short_url: str
    amount: int
    expire_by: int


@dataclass(frozen=True)
class GatewayEvent:
    """A verified webhook event, normalised. `kind` is "payout" or "payment_link"."""

    event_id: str
    kind: str
    reference: str
    status: str  # a PayoutStatus value for payouts; "paid" / "expired" / "cancelled" for links
    amount: int
    provider_id: str
    created_at: int
    failure_reason: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    utr: str = ""  # the bank's reference of a processed payout


class PaymentGateway(Protocol):
    """Create and fetch payouts, validate payees, create payment links, read webhooks."""

    name: str

    def create_payout(self, request: PayoutRequest) -> Payout:
        """Ask for a payout; raises PayoutRejected or GatewayUnavailable."""
        ...

    def fetch_payout(self, reference: str) -> Payout | None:
        """The payout made under our reference, or None if the provider has none."""
        ...

    def list_payouts(self, since: int, until: int) -> list[Payout] | None:
        """Every payout the provider made in [since, until) (unix seconds), for reconciliation;
        None when this rail cannot list them."""
        ...

    def validate_payee(self, vpa: str) -> PayeeCheck:
        """Whether a VPA can be paid, and the name its bank has for it (NOT_CHECKED if off)."""
        ...

    def create_payment_link(
        self, reference: str, amount: int, phone: str, description: str, expire_by: int
    ) -> PaymentLink:
        """A UPI payment link for a top-up; raises GatewayUnavailable."""
        ...

    def parse_webhook(self, body: bytes, headers: dict[str, str]) -> GatewayEvent | None:
        """Verify the signature over the raw body, then parse; None when the signature is bad,
        WebhookInvalid when it verified but is not an event we understand."""
        ...
