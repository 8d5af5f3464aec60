"""RazorpayGateway against replayed RazorpayX and Razorpay payloads (tests/fixtures/razorpay/).

Each test names the fixture it replays; every fixture says in `_source` which documentation page
its body comes from. Webhook fixtures are used byte for byte as the signed raw body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from responses import matchers

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
from gateway_clients.razorpay import RazorpayGateway

FIXTURES = Path(__file__).parents[1] / "fixtures" / "razorpay"
API = "https://api.razorpay.com"
KEY_ID = "rzp_test_FAKEKEY0000001"
KEY_SECRET = "fake-key-secret-not-real"
ACCOUNT = "7878780080316316"
WEBHOOK_SECRET = "fake-webhook-secret-not-real"
REF = "7KQ2M9XH4P"
VPA = "gaurav.kumar@exampleupi"
REQUEST = PayoutRequest(REF, VPA, 25000, payee_name="Gaurav Kumar")
EVENT_ID = "evt_FAKE0000000001"


def raw(name: str) -> bytes:
    """A fixture's bytes, exactly as stored (and as Razorpay would sign them)."""
    return (FIXTURES / f"{name}.json").read_bytes()


def load(name: str) -> dict[str, Any]:
    """A fixture's body without its `_source` note."""
    body: dict[str, Any] = json.loads(raw(name))
    body.pop("_source")
    return body


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    """Razorpay's webhook signature: hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headers_for(body: bytes, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    """The headers Razorpay sends with a webhook."""
    return {"X-Razorpay-Signature": sign(body, secret), "X-Razorpay-Event-Id": EVENT_ID}


def sent_json(call: Any) -> Any:
    """The JSON body of a recorded request."""
    return json.loads(call.request.body)


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    """Every HTTP call must be registered, and every registered one must be made."""
    with responses.RequestsMock() as rsps:
        yield rsps


@pytest.fixture
def gateway() -> RazorpayGateway:
    return RazorpayGateway(KEY_ID, KEY_SECRET, ACCOUNT, WEBHOOK_SECRET, session=requests.Session())


# --- payouts -------------------------------------------------------------------------------


def test_create_payout_sends_the_composite_payout_under_our_reference(
    mocked: responses.RequestsMock, gateway: RazorpayGateway
) -> None:
    """payout_create_request + payout_created."""
    mocked.post(f"{API}/v1/payouts", json=load("payout_created"))

    payout = gateway.create_payout(REQUEST)

    assert payout == Payout(REF, "pout_FAKE0000000001", PayoutStatus.PROCESSING, 25000)
    (call,) = mocked.calls
    assert sent_json(call) == load("payout_create_request")
    assert call.request.headers["X-Payout-Idempotency"] == REF
    basic = base64.b64encode(f"{KEY_ID}:{KEY_SECRET}".encode()).decode()
    assert call.request.headers["Authorization"] == f"Basic {basic}"


def test_amount_goes_out_in_paise_unchanged(
    mocked: responses.RequestsMock, gateway: RazorpayGateway
) -> None:
    """payout_created: amounts are integer paise on both sides."""
    mocked.post(f"{API}/v1/payouts", json={**load("payout_created"), "amount": 1000001})

    payout = gateway.create_payout(PayoutRequest(REF, VPA, 1000001))

    assert sent_json(mocked.calls[0])["amount"] == 1000001
    assert payout.amount == 1000001


def test_unknown_payee_name_gets_a_valid_contact_name(
    mocked: responses.RequestsMock, gateway: RazorpayGateway
) -> None:
    """payout_created: the contact name is mandatory, so a blank one is replaced."""
    mocked.post(f"{API}/v1/payouts", json=load("payout_created"))

    gateway.create_payout(PayoutRequest(REF, VPA, 25000, payee_name=""))

    assert sent_json(mocked.calls[0])["fund_account"]["contact"]["name"] == "SMS Pay payee"


def test_5xx_is_unknown_and_the_retry_reuses_the_same_key(
    mocked: responses.RequestsMock, gateway: RazorpayGateway
) -> None:
    """payout_error_server, then payout_created: no silent retry inside the adapter."""
    mocked.post(f"{API}/v1/payouts", status=500, json=load("payout_error_server"))
    mocked.post(f"{API}/v1/payouts", json=load("payout_created"))

    with pytest.raises(GatewayUnavailable):
        gateway.create_payout(REQUEST)
    assert len(mocked.calls) == 1
    payout = gateway.create_payout(REQUEST)

    assert payout.status is PayoutStatus.PROCESSING
    first, second = mocked.calls
    assert first.request.headers["X-Payout-Idempotency"] == REF
    assert second.request.headers["X-Payout-Idempotency"] == REF
    assert first.request.body == second.request.body  # RazorpayX wants the same body on a retry


@pytest.mark.parametrize(
    "error",
    [
        requests.exceptions.ConnectTimeout("connect timed out"),
        requests.exceptions.ReadTimeout("read timed out"),
        requests.exceptions.ConnectionError("connection reset"),
    ],
)
def test_timeouts_and_connection_errors_are_unknown_outcomes(
    mocked: responses.RequestsMock, gateway: RazorpayGateway, error: Exception
) -> None:
    """No fixture: the request never got an answer."""
    mocked.post(f"{API}/v1/payouts", body=error)

    with pytest.raises(GatewayUnavailable) as caught:
        gateway.create_payout(REQUEST)

    assert caught.value.__cause__ is error


def test_5xx_without_json_is_unknown(
    mocked: responses.RequestsMock, gateway: RazorpayGateway
) -> None:
    """No fixture: a proxy's HTML error page."""
    mocked.post(f"{API}/v1/payouts", status=502, body="<html>Bad gateway</html>")

    with pytest.raises(GatewayUnavailable):
        gateway.create_payout(REQUEST)


def test_validation_error_is_a_rejection_with_razorpays_description(
    mocked: responses.RequestsMock, gateway: RazorpayGateway
) -> None:
    """payout_error_invalid_vpa."""
    mocked.post(f"{API}/v1/payouts", status=400, json=load("payout_error_invalid_vpa"))

    with pytest.raises(PayoutRejected) as caught:
        gateway.create_payout(REQUEST)

    assert caught.value.reason == "Invalid VPA. Please enter a valid Virtual Payment Address"


@pytest.mark.parametrize("status", [401, 403, 429])
def test_auth_allowlist_and_rate_limit_errors_are_retried_not_rejections(
    mocked: responses.RequestsMock, gateway: RazorpayGateway, status: int
) -> None:
    """payout_error_invalid_vpa's error shape: these 4xx are not the payee's fault."""
    mocked.post(f"{API}/v1/payouts", status=status, json=load("payout_error_invalid_vpa"))

    with pytest.raises(GatewayUnavailable):
        gateway.create_payout(REQUEST)


def test_4xx_without_a_razorpay_error_body_is_unknown(
    mocked: responses.RequestsMock, gateway: RazorpayGateway
) -> None:
    """No fixture: a 400 that is not Razorpay's error object is not a refusal we can trust."""
    mocked.post(f"{API}/v1/payouts", status=400, body="Bad Request")

    with pytest.raises(GatewayUnavailable):
        gateway.create_payout(REQUEST)


def test_fetch_by_reference_returns_the_newest_payout(
    mocked: responses.RequestsMock, gateway: RazorpayGateway
) -> None:
    """payouts_by_reference."""
    query = matchers.query_param_matcher({"account_number": ACCOUNT, "reference_id": REF})
    mocked.get(f"{API}/v1/payouts", json=load("payouts_by_reference"), match=[query])

    payout = gateway.fetch_payout(REF)

    assert payout == Payout(REF, "pout_FAKE0000000002", PayoutStatus.PROCESSED, 25000,
                            utr="523223155921")  # fmt: skip


def test_list_payouts_pages_through_a_days_window(
    mocked: responses.RequestsMock, gateway: RazorpayGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """payouts_by_reference (as the first page) then payouts_by_reference_empty."""
    monkeypatch.setattr("gateway_clients.razorpay.LIST_PAGE", 2)
    page = load("payouts_by_reference")
    assert len(page["items"]) == 2  # a full page: the adapter must ask for the next one
    window = {"account_number": ACCOUNT, "from": "1755648000", "to": "1755734399", "count": "2"}
    mocked.get(
        f"{API}/v1/payouts",
        json=page,
        match=[matchers.query_param_matcher({**window, "skip": "0"})],
    )
    mocked.get(f"{API}/v1/payouts", json=load("payouts_by_reference_empty"),
               match=[matchers.query_param_matcher({**window, "skip": "2"})])  # fmt: skip

    listed = gateway.list_payouts(1755648000, 1755734400)

    assert listed is not None and [p.provider_id for p in listed] == [
        i["id"] for i in page["items"]
    ]
    assert len(mocked.calls) == 2


def test_fetch_by_reference_finds_nothing(
    mocked: responses.RequestsMock, gateway: RazorpayGateway
) -> None:
    """payouts_by_reference_empty."""
    mocked.get(f"{API}/v1/payouts", json=load("payouts_by_reference_empty"))

    assert gateway.fetch_payout(REF) is None


def test_fetch_ignores_payouts_under_another_reference(
    mocked: responses.RequestsMock, gateway: RazorpayGateway
) -> None:
    """payouts_by_reference with the references changed: the filter is checked, not trusted."""
    listing = load("payouts_by_reference")
    for item in listing["items"]:
        item["reference_id"] = "ANOTHERREF"
    mocked.get(f"{API}/v1/payouts", json=listing)

    assert gateway.fetch_payout(REF) is None


def test_fetch_on_5xx_is_unknown(mocked: responses.RequestsMock, gateway: RazorpayGateway) -> None:
    """payout_error_server."""
    mocked.get(f"{API}/v1/payouts", status=503, json=load("payout_error_server"))

    with pytest.raises(GatewayUnavailable):
        gateway.fetch_payout(REF)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("queued", PayoutStatus.PROCESSING),
        ("pending", PayoutStatus.PROCESSING),
        ("processing", PayoutStatus.PROCESSING),
        ("scheduled", PayoutStatus.PROCESSING),
        ("processed", PayoutStatus.PROCESSED),
        ("reversed", PayoutStatus.REVERSED),
        ("failed", PayoutStatus.FAILED),
        ("rejected", PayoutStatus.FAILED),
        ("cancelled", PayoutStatus.FAILED),
        ("some_new_state", PayoutStatus.PROCESSING),
    ],
)
def test_state_mapping(
    mocked: responses.RequestsMock, gateway: RazorpayGateway, state: str, expected: PayoutStatus
) -> None:
    """payouts_by_reference with the newest item in each RazorpayX state."""
    listing = load("payouts_by_reference")
    listing["items"][0]["status"] = state
    mocked.get(f"{API}/v1/payouts", json=listing)

    payout = gateway.fetch_payout(REF)

    assert payout is not None and payout.status is expected
    final_failure = expected in (PayoutStatus.FAILED, PayoutStatus.REVERSED)
    assert bool(payout.failure_reason) is final_failure


def test_failure_reason_falls_back_to_failure_reason_field(
    mocked: responses.RequestsMock, gateway: RazorpayGateway
) -> None:
    """payouts_by_reference with the deprecated failure_reason and no status_details."""
    listing = load("payouts_by_reference")
    listing["items"][0].update(status="failed", status_details=None, failure_reason="Bank down")
    mocked.get(f"{API}/v1/payouts", json=listing)

    payout = gateway.fetch_payout(REF)

    assert payout is not None and payout.failure_reason == "Bank down"


# --- payee validation ----------------------------------------------------------------------


def test_validation_off_makes_no_call(mocked: responses.RequestsMock) -> None:
    """No fixture: off means no HTTP at all."""
    gateway = RazorpayGateway(KEY_ID, KEY_SECRET, ACCOUNT, WEBHOOK_SECRET)

    assert gateway.validate_payee(VPA) == NOT_CHECKED
    assert len(mocked.calls) == 0


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("validation_completed_active", PayeeCheck(True, "Gaurav Kumar")),
        ("validation_completed_invalid", PayeeCheck(False)),
        ("validation_created", NOT_CHECKED),  # still running: tells nothing yet
    ],
)
def test_validation_returns_the_registered_name_of_an_active_vpa(
    mocked: responses.RequestsMock, fixture: str, expected: PayeeCheck
) -> None:
    """validation_request + validation_completed_active / _invalid / validation_created."""
    mocked.post(f"{API}/v1/fund_accounts/validations", json=load(fixture))
    gateway = RazorpayGateway(KEY_ID, KEY_SECRET, ACCOUNT, WEBHOOK_SECRET, validate_payees=True)

    assert gateway.validate_payee(VPA) == expected
    assert sent_json(mocked.calls[0]) == load("validation_request")


@pytest.mark.parametrize("status", [400, 500])
def test_validation_errors_mean_not_checked(mocked: responses.RequestsMock, status: int) -> None:
    """payout_error_invalid_vpa / payout_error_server as the validation's answer."""
    fixture = "payout_error_invalid_vpa" if status == 400 else "payout_error_server"
    mocked.post(f"{API}/v1/fund_accounts/validations", status=status, json=load(fixture))
    gateway = RazorpayGateway(KEY_ID, KEY_SECRET, ACCOUNT, WEBHOOK_SECRET, validate_payees=True)

    assert gateway.validate_payee(VPA) == NOT_CHECKED  # an error is not a verdict on the VPA


# --- payment links (through the SDK, on the injected session) ------------------------------


def test_payment_link_goes_through_the_sdk_on_our_session(
    mocked: responses.RequestsMock, gateway: RazorpayGateway
) -> None:
    """payment_link_create_request + payment_link_created."""
    mocked.post(f"{API}/v1/payment_links", json=load("payment_link_created"))

    link = gateway.create_payment_link("HT3PW2345K", 50000, "+919876543210",
                                       "SMS Pay top-up HT3PW2345K", 1760000000)  # fmt: skip

    assert link == PaymentLink("HT3PW2345K", "plink_FAKE000000001", "https://rzp.io/i/FAKElnk",
                               50000, 1760000000)  # fmt: skip
    (call,) = mocked.calls
    assert sent_json(call) == load("payment_link_create_request")
    assert call.request.headers["Authorization"].startswith("Basic ")


def test_payment_link_refused_is_gateway_unavailable(
    mocked: responses.RequestsMock, gateway: RazorpayGateway
) -> None:
    """payout_error_invalid_vpa's error shape, answered to a payment link."""
    mocked.post(f"{API}/v1/payment_links", status=400, json=load("payout_error_invalid_vpa"))

    with pytest.raises(GatewayUnavailable):
        gateway.create_payment_link("HT3PW2345K", 50000, "+919876543210", "top-up", 1760000000)


def test_payment_link_timeout_is_gateway_unavailable(
    mocked: responses.RequestsMock, gateway: RazorpayGateway
) -> None:
    """No fixture: the SDK's request timed out."""
    mocked.post(f"{API}/v1/payment_links", body=requests.exceptions.ReadTimeout("slow"))

    with pytest.raises(GatewayUnavailable):
        gateway.create_payment_link("HT3PW2345K", 50000, "+919876543210", "top-up", 1760000000)


# --- webhooks ------------------------------------------------------------------------------


def test_webhook_with_a_valid_signature_parses(gateway: RazorpayGateway) -> None:
    """webhook_payout_processed."""
    body = raw("webhook_payout_processed")

    event = gateway.parse_webhook(body, headers_for(body))

    utr = json.loads(body)["payload"]["payout"]["entity"]["utr"]
    assert utr  # a processed payout carries the bank's reference, and the event keeps it
    assert event == GatewayEvent(EVENT_ID, "payout", REF, "processed", 25000,
                                 "pout_FAKE0000000001", 1755693679, utr=utr)  # fmt: skip
    assert event.raw["event"] == "payout.processed"


def test_header_names_are_case_insensitive(gateway: RazorpayGateway) -> None:
    """webhook_payout_processed, with the lower-case header names a WSGI server may give."""
    body = raw("webhook_payout_processed")
    lowered = {key.lower(): value for key, value in headers_for(body).items()}

    assert gateway.parse_webhook(body, lowered) is not None


def test_tampered_body_does_not_verify(gateway: RazorpayGateway) -> None:
    """webhook_payout_processed with the amount changed after signing."""
    body = raw("webhook_payout_processed")
    headers = headers_for(body)
    tampered = body.replace(b'"amount": 25000', b'"amount": 95000')
    assert tampered != body

    assert gateway.parse_webhook(tampered, headers) is None


def test_wrong_secret_does_not_verify(gateway: RazorpayGateway) -> None:
    """webhook_payout_processed signed with another secret."""
    body = raw("webhook_payout_processed")

    assert gateway.parse_webhook(body, headers_for(body, "another-fake-secret")) is None


def test_missing_signature_does_not_verify(gateway: RazorpayGateway) -> None:
    """webhook_payout_processed without X-Razorpay-Signature."""
    body = raw("webhook_payout_processed")

    assert gateway.parse_webhook(body, {"X-Razorpay-Event-Id": EVENT_ID}) is None


def test_reserialised_json_does_not_verify(gateway: RazorpayGateway) -> None:
    """webhook_payout_processed: the signature is over the raw bytes, not over the JSON value."""
    body = raw("webhook_payout_processed")
    headers = headers_for(body)
    reserialised = json.dumps(json.loads(body), separators=(",", ":")).encode()
    assert json.loads(reserialised) == json.loads(body)

    assert gateway.parse_webhook(reserialised, headers) is None


def test_empty_webhook_secret_verifies_nothing() -> None:
    """webhook_payout_processed signed with the empty key an unconfigured secret would give."""
    body = raw("webhook_payout_processed")
    gateway = RazorpayGateway(KEY_ID, KEY_SECRET, ACCOUNT, "")

    assert gateway.parse_webhook(body, headers_for(body, "")) is None


@pytest.mark.parametrize(
    ("fixture", "status", "reason"),
    [
        ("webhook_payout_processed", "processed", ""),
        ("webhook_payout_updated", "processed", ""),
        ("webhook_payout_initiated", "processing", ""),
        ("webhook_payout_queued", "processing", ""),
        ("webhook_payout_pending", "processing", ""),
        ("webhook_payout_reversed", "reversed",
         "Beneficiary bank systems are offline, please retry after 30 min"),
        ("webhook_payout_failed", "failed",
         "Payout failed as the beneficiary account is closed. Please contact the beneficiary bank"),
        ("webhook_payout_rejected", "failed",
         "Payout rejected by beneficiary bank. Please contact beneficiary bank"),
    ],
)  # fmt: skip
def test_payout_events(gateway: RazorpayGateway, fixture: str, status: str, reason: str) -> None:
    """webhook_payout_*: each event parses into the right payout status and reason."""
    body = raw(fixture)
    expected_created = json.loads(body)["created_at"]
    utr = json.loads(body)["payload"]["payout"]["entity"].get("utr") or ""

    event = gateway.parse_webhook(body, headers_for(body))

    assert event == GatewayEvent(EVENT_ID, "payout", REF, status, 25000, "pout_FAKE0000000001",
                                 expected_created, reason, utr=utr)  # fmt: skip


@pytest.mark.parametrize(
    ("fixture", "status", "amount", "created_at"),
    [
        ("webhook_payment_link_paid", "paid", 50000, 1759990400),
        ("webhook_payment_link_expired", "expired", 50000, 1760000011),
        ("webhook_payment_link_cancelled", "cancelled", 50000, 1759995000),
    ],
)
def test_payment_link_events(
    gateway: RazorpayGateway, fixture: str, status: str, amount: int, created_at: int
) -> None:
    """webhook_payment_link_paid / _expired / _cancelled."""
    body = raw(fixture)

    event = gateway.parse_webhook(body, headers_for(body))

    assert event == GatewayEvent(EVENT_ID, "payment_link", "HT3PW2345K", status, amount,
                                 "plink_FAKE000000001", created_at)  # fmt: skip


def test_paid_link_reports_the_amount_paid(gateway: RazorpayGateway) -> None:
    """webhook_payment_link_paid with amount_paid differing from amount."""
    event = json.loads(raw("webhook_payment_link_paid"))
    event["payload"]["payment_link"]["entity"]["amount_paid"] = 49000
    body = json.dumps(event).encode()

    parsed = gateway.parse_webhook(body, headers_for(body))

    assert parsed is not None and parsed.amount == 49000


def test_unknown_event_is_invalid(gateway: RazorpayGateway) -> None:
    """webhook_payout_downtime_started: verified, but not an event this service handles."""
    body = raw("webhook_payout_downtime_started")

    with pytest.raises(WebhookInvalid):
        gateway.parse_webhook(body, headers_for(body))


def test_payout_event_without_our_reference_is_invalid(gateway: RazorpayGateway) -> None:
    """webhook_payout_processed with reference_id null (a payout made from the dashboard)."""
    event = json.loads(raw("webhook_payout_processed"))
    event["payload"]["payout"]["entity"]["reference_id"] = None
    body = json.dumps(event).encode()

    with pytest.raises(WebhookInvalid):
        gateway.parse_webhook(body, headers_for(body))


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"event": "payout.processed"}'])
def test_verified_garbage_is_invalid(gateway: RazorpayGateway, body: bytes) -> None:
    """No fixture: a signed body that is not a well-formed event."""
    with pytest.raises(WebhookInvalid):
        gateway.parse_webhook(body, headers_for(body))


def test_event_id_falls_back_to_a_digest_of_the_body(gateway: RazorpayGateway) -> None:
    """webhook_payout_processed without X-Razorpay-Event-Id: the same bytes, the same id."""
    body = raw("webhook_payout_processed")
    headers = {"X-Razorpay-Signature": sign(body)}

    first = gateway.parse_webhook(body, headers)
    again = gateway.parse_webhook(body, headers)

    assert first is not None and again is not None
    assert first.event_id == again.event_id == "sha256:" + hashlib.sha256(body).hexdigest()
