"""CashfreeGateway against replayed Cashfree Payouts v2 payloads (tests/fixtures/cashfree/).

Each test names the fixture it replays; every fixture says in `_source` which documentation page
its body comes from. Webhook fixtures are used byte for byte as the signed raw body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
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
    PaymentLinksUnsupported,
    Payout,
    PayoutRejected,
    PayoutRequest,
    PayoutStatus,
    WebhookInvalid,
)
from gateway_clients.cashfree import SANDBOX_URL, CashfreeGateway

FIXTURES = Path(__file__).parents[1] / "fixtures" / "cashfree"
TRANSFERS = f"{SANDBOX_URL}/payout/transfers"
CLIENT_ID = "CF_FAKE_CLIENT_ID_0001"
CLIENT_SECRET = "cf-fake-client-secret-not-real"
REF = "9PX4K7M2QH"
VPA = "gaurav.kumar@exampleupi"
REQUEST = PayoutRequest(REF, VPA, 12345, payee_name="Gaurav Kumar")
TIMESTAMP = "1755692017000"  # x-webhook-timestamp is in milliseconds
EVENT_TIME = int(datetime(2025, 8, 20, 17, 43, 37, tzinfo=timezone(timedelta(hours=5, minutes=30)))
                 .timestamp())  # fmt: skip


def raw(name: str) -> bytes:
    """A fixture's bytes, exactly as stored (and as Cashfree would sign them)."""
    return (FIXTURES / f"{name}.json").read_bytes()


def load(name: str) -> dict[str, Any]:
    """A fixture's body without its `_source` note."""
    body: dict[str, Any] = json.loads(raw(name))
    body.pop("_source")
    return body


def sign(body: bytes, timestamp: str = TIMESTAMP, secret: str = CLIENT_SECRET) -> str:
    """Cashfree's webhook signature: base64 HMAC-SHA256 of timestamp + raw body."""
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def headers_for(body: bytes, secret: str = CLIENT_SECRET) -> dict[str, str]:
    """The headers Cashfree sends with a webhook."""
    return {
        "x-webhook-signature": sign(body, secret=secret),
        "x-webhook-timestamp": TIMESTAMP,
        "x-webhook-version": "2024-01-01",
    }


def sent(call: Any) -> bytes:
    """The raw body of a recorded request."""
    body = call.request.body
    assert isinstance(body, bytes)
    return body


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    """Every HTTP call must be registered, and every registered one must be made."""
    with responses.RequestsMock() as rsps:
        yield rsps


@pytest.fixture
def gateway() -> CashfreeGateway:
    return CashfreeGateway(CLIENT_ID, CLIENT_SECRET, session=requests.Session(),
                           base_url=SANDBOX_URL)  # fmt: skip


# --- payouts -------------------------------------------------------------------------------


def test_create_transfer_sends_the_documented_body_and_headers(
    mocked: responses.RequestsMock, gateway: CashfreeGateway
) -> None:
    """transfer_create_request + transfer_received."""
    mocked.post(TRANSFERS, json=load("transfer_received"))

    payout = gateway.create_payout(REQUEST)

    assert payout == Payout(REF, "123456", PayoutStatus.PROCESSING, 12345)
    (call,) = mocked.calls
    assert json.loads(sent(call)) == load("transfer_create_request")
    assert b'"transfer_amount": 123.45,' in sent(call)  # rupees, exact, as a number
    assert call.request.headers["x-client-id"] == CLIENT_ID
    assert call.request.headers["x-client-secret"] == CLIENT_SECRET
    assert call.request.headers["x-api-version"] == "2024-01-01"


@pytest.mark.parametrize(
    ("amount", "rupees"),
    [(100, b"1.0"), (101, b"1.01"), (110, b"1.1"), (12345, b"123.45"), (1000000, b"10000.0"),
     (999999999, b"9999999.99"), (100000000001, b"1000000000.01")],
)  # fmt: skip
def test_paise_become_exact_rupees(
    mocked: responses.RequestsMock, gateway: CashfreeGateway, amount: int, rupees: bytes
) -> None:
    """transfer_received with the amount echoed back: paise -> rupees -> paise is exact."""
    answer = {**load("transfer_received"), "transfer_amount": float(rupees)}
    mocked.post(TRANSFERS, json=answer)

    payout = gateway.create_payout(PayoutRequest(REF, VPA, amount))

    assert b'"transfer_amount": ' + rupees + b"," in sent(mocked.calls[0])
    assert payout.amount == amount


def test_unknown_payee_name_gets_a_valid_beneficiary_name(
    mocked: responses.RequestsMock, gateway: CashfreeGateway
) -> None:
    """transfer_received: beneficiary_name is mandatory without a beneficiary_id."""
    mocked.post(TRANSFERS, json=load("transfer_received"))

    gateway.create_payout(PayoutRequest(REF, VPA, 12345, payee_name="R. K. #1"))

    body = json.loads(sent(mocked.calls[0]))
    assert body["beneficiary_details"]["beneficiary_name"] == "R K"


def test_5xx_is_unknown_and_the_retry_reuses_the_same_transfer_id(
    mocked: responses.RequestsMock, gateway: CashfreeGateway
) -> None:
    """A 502, then transfer_received: no silent retry inside the adapter."""
    mocked.post(TRANSFERS, status=502, body="Bad gateway")
    mocked.post(TRANSFERS, json=load("transfer_received"))

    with pytest.raises(GatewayUnavailable):
        gateway.create_payout(REQUEST)
    assert len(mocked.calls) == 1
    payout = gateway.create_payout(REQUEST)

    assert payout.status is PayoutStatus.PROCESSING
    first, second = mocked.calls
    assert json.loads(sent(first))["transfer_id"] == REF
    assert first.request.body == second.request.body


@pytest.mark.parametrize(
    "error",
    [
        requests.exceptions.ConnectTimeout("connect timed out"),
        requests.exceptions.ReadTimeout("read timed out"),
        requests.exceptions.ConnectionError("connection reset"),
    ],
)
def test_timeouts_and_connection_errors_are_unknown_outcomes(
    mocked: responses.RequestsMock, gateway: CashfreeGateway, error: Exception
) -> None:
    """No fixture: the request never got an answer."""
    mocked.post(TRANSFERS, body=error)

    with pytest.raises(GatewayUnavailable) as caught:
        gateway.create_payout(REQUEST)

    assert caught.value.__cause__ is error


def test_validation_error_is_a_rejection_with_cashfrees_message(
    mocked: responses.RequestsMock, gateway: CashfreeGateway
) -> None:
    """transfer_error_invalid_vpa."""
    mocked.post(TRANSFERS, status=400, json=load("transfer_error_invalid_vpa"))

    with pytest.raises(PayoutRejected) as caught:
        gateway.create_payout(REQUEST)

    assert caught.value.reason == load("transfer_error_invalid_vpa")["message"]


@pytest.mark.parametrize("status", [401, 403, 429])
def test_auth_allowlist_and_rate_limit_errors_are_retried_not_rejections(
    mocked: responses.RequestsMock, gateway: CashfreeGateway, status: int
) -> None:
    """transfer_error_invalid_vpa's error shape: these 4xx are not the payee's fault."""
    mocked.post(TRANSFERS, status=status, json=load("transfer_error_invalid_vpa"))

    with pytest.raises(GatewayUnavailable):
        gateway.create_payout(REQUEST)


def test_repeated_transfer_id_answers_with_the_existing_transfer(
    mocked: responses.RequestsMock, gateway: CashfreeGateway
) -> None:
    """transfer_error_already_exists, then transfer_status_completed: a lost answer, not a
    refusal (reading 409 as 'rejected' would refund a payout that went out)."""
    mocked.post(TRANSFERS, status=409, json=load("transfer_error_already_exists"))
    mocked.get(TRANSFERS, json=load("transfer_status_completed"),
               match=[matchers.query_param_matcher({"transfer_id": REF})])  # fmt: skip

    payout = gateway.create_payout(REQUEST)

    assert payout == Payout(REF, "339", PayoutStatus.PROCESSED, 12345, utr="1732088013492889")


def test_repeated_transfer_id_not_yet_visible_is_unknown(
    mocked: responses.RequestsMock, gateway: CashfreeGateway
) -> None:
    """transfer_error_already_exists, then transfer_not_found."""
    mocked.post(TRANSFERS, status=409, json=load("transfer_error_already_exists"))
    mocked.get(TRANSFERS, status=404, json=load("transfer_not_found"))

    with pytest.raises(GatewayUnavailable):
        gateway.create_payout(REQUEST)


def test_fetch_by_reference_found(mocked: responses.RequestsMock, gateway: CashfreeGateway) -> None:
    """transfer_status_completed."""
    mocked.get(TRANSFERS, json=load("transfer_status_completed"),
               match=[matchers.query_param_matcher({"transfer_id": REF})])  # fmt: skip

    payout = gateway.fetch_payout(REF)

    assert payout == Payout(REF, "339", PayoutStatus.PROCESSED, 12345, utr="1732088013492889")
    assert mocked.calls[0].request.headers["x-api-version"] == "2024-01-01"


def test_fetch_by_reference_not_found(
    mocked: responses.RequestsMock, gateway: CashfreeGateway
) -> None:
    """transfer_not_found."""
    mocked.get(TRANSFERS, status=404, json=load("transfer_not_found"))

    assert gateway.fetch_payout(REF) is None


def test_fetch_on_5xx_is_unknown(mocked: responses.RequestsMock, gateway: CashfreeGateway) -> None:
    """No fixture: a 500 while reading status."""
    mocked.get(TRANSFERS, status=500, body="oops")

    with pytest.raises(GatewayUnavailable):
        gateway.fetch_payout(REF)


@pytest.mark.parametrize(
    ("status", "status_code", "expected"),
    [
        ("RECEIVED", "RECEIVED", PayoutStatus.PROCESSING),
        ("PENDING", "SENT_TO_BANK", PayoutStatus.PROCESSING),
        ("APPROVAL_PENDING", "", PayoutStatus.PROCESSING),
        ("QUEUED", "", PayoutStatus.PROCESSING),
        ("SENT_TO_BENEFICIARY", "", PayoutStatus.PROCESSING),
        ("SUCCESS", "SENT_TO_BENEFICIARY", PayoutStatus.PROCESSING),
        ("SUCCESS", "COMPLETED", PayoutStatus.PROCESSED),
        ("FAILED", "INVALID_BENE_VPA", PayoutStatus.FAILED),
        ("REJECTED", "BENE_BLACKLISTED", PayoutStatus.FAILED),
        ("MANUALLY_REJECTED", "", PayoutStatus.FAILED),
        ("REVERSED", "INVALID_ACCOUNT_FAIL", PayoutStatus.REVERSED),
        ("SOME_NEW_STATE", "", PayoutStatus.PROCESSING),
    ],
)
def test_state_mapping(
    mocked: responses.RequestsMock,
    gateway: CashfreeGateway,
    status: str,
    status_code: str,
    expected: PayoutStatus,
) -> None:
    """transfer_status_completed with each Cashfree status and status_code."""
    answer = {**load("transfer_status_completed"), "status": status, "status_code": status_code}
    mocked.get(TRANSFERS, json=answer)

    payout = gateway.fetch_payout(REF)

    assert payout is not None and payout.status is expected
    final_failure = expected in (PayoutStatus.FAILED, PayoutStatus.REVERSED)
    assert bool(payout.failure_reason) is final_failure


def test_unreadable_amount_is_unknown(
    mocked: responses.RequestsMock, gateway: CashfreeGateway
) -> None:
    """transfer_status_completed with a fraction of a paisa: never rounded silently."""
    mocked.get(TRANSFERS, json={**load("transfer_status_completed"), "transfer_amount": 123.456})

    with pytest.raises(GatewayUnavailable):
        gateway.fetch_payout(REF)


def test_payee_validation_and_payment_links_are_not_on_this_rail(
    mocked: responses.RequestsMock, gateway: CashfreeGateway
) -> None:
    """No fixture: neither makes an HTTP call."""
    assert gateway.validate_payee(VPA) == NOT_CHECKED
    with pytest.raises(PaymentLinksUnsupported, match="not supported on this rail"):
        gateway.create_payment_link("HT3PW2345K", 50000, "+919876543210", "top-up", 1760000000)
    assert len(mocked.calls) == 0


# --- webhooks ------------------------------------------------------------------------------


def test_webhook_with_a_valid_signature_parses(gateway: CashfreeGateway) -> None:
    """webhook_transfer_acknowledged."""
    body = raw("webhook_transfer_acknowledged")

    event = gateway.parse_webhook(body, headers_for(body))

    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    utr = json.loads(body)["data"]["transfer_utr"]
    assert utr  # the bank's reference travels with the event
    assert event == GatewayEvent(
        digest, "payout", REF, "processed", 12345, "123456", EVENT_TIME, utr=utr
    )
    assert event.raw["type"] == "TRANSFER_ACKNOWLEDGED"


def test_header_names_are_case_insensitive(gateway: CashfreeGateway) -> None:
    """webhook_transfer_acknowledged, with Title-Case header names."""
    body = raw("webhook_transfer_acknowledged")
    titled = {key.title(): value for key, value in headers_for(body).items()}

    assert gateway.parse_webhook(body, titled) is not None


def test_idempotency_key_header_is_the_event_id(gateway: CashfreeGateway) -> None:
    """webhook_transfer_acknowledged with an x-idempotency-key header."""
    body = raw("webhook_transfer_acknowledged")
    headers = {**headers_for(body), "x-idempotency-key": "FAKEidempotencyKey0001="}

    event = gateway.parse_webhook(body, headers)

    assert event is not None and event.event_id == "FAKEidempotencyKey0001="


def test_tampered_body_does_not_verify(gateway: CashfreeGateway) -> None:
    """webhook_transfer_acknowledged with the amount changed after signing."""
    body = raw("webhook_transfer_acknowledged")
    headers = headers_for(body)
    tampered = body.replace(b'"transfer_amount": 123.45', b'"transfer_amount": 923.45')
    assert tampered != body

    assert gateway.parse_webhook(tampered, headers) is None


def test_changed_timestamp_does_not_verify(gateway: CashfreeGateway) -> None:
    """webhook_transfer_acknowledged: the timestamp is part of what is signed."""
    body = raw("webhook_transfer_acknowledged")
    headers = {**headers_for(body), "x-webhook-timestamp": "1755692099000"}

    assert gateway.parse_webhook(body, headers) is None


def test_wrong_secret_does_not_verify(gateway: CashfreeGateway) -> None:
    """webhook_transfer_acknowledged signed with another secret."""
    body = raw("webhook_transfer_acknowledged")

    assert gateway.parse_webhook(body, headers_for(body, "another-fake-secret")) is None


@pytest.mark.parametrize("missing", ["x-webhook-signature", "x-webhook-timestamp"])
def test_missing_header_does_not_verify(gateway: CashfreeGateway, missing: str) -> None:
    """webhook_transfer_acknowledged without its signature or its timestamp."""
    body = raw("webhook_transfer_acknowledged")
    headers = headers_for(body)
    del headers[missing]

    assert gateway.parse_webhook(body, headers) is None


def test_reserialised_json_does_not_verify(gateway: CashfreeGateway) -> None:
    """webhook_transfer_acknowledged: the signature is over the raw bytes."""
    body = raw("webhook_transfer_acknowledged")
    headers = headers_for(body)
    reserialised = json.dumps(json.loads(body), separators=(",", ":")).encode()

    assert gateway.parse_webhook(reserialised, headers) is None


def test_empty_client_secret_verifies_nothing() -> None:
    """webhook_transfer_acknowledged signed with the empty key an unset secret would give."""
    body = raw("webhook_transfer_acknowledged")
    gateway = CashfreeGateway(CLIENT_ID, "")

    assert gateway.parse_webhook(body, headers_for(body, "")) is None


@pytest.mark.parametrize(
    ("fixture", "status", "provider_id", "reason"),
    [
        ("webhook_transfer_acknowledged", "processed", "123456", ""),
        ("webhook_transfer_success", "processing", "123456", ""),
        ("webhook_transfer_failed", "failed", "", "The beneficiary VPA is invalid."),
        ("webhook_transfer_reversed", "reversed", "", "INVALID_ACCOUNT_FAIL"),
        ("webhook_transfer_rejected", "failed", "", "INVALID_MODE_FOR_PYID"),
    ],
)
def test_transfer_events(
    gateway: CashfreeGateway, fixture: str, status: str, provider_id: str, reason: str
) -> None:
    """webhook_transfer_*: each event parses into the right payout status and reason."""
    body = raw(fixture)

    event = gateway.parse_webhook(body, headers_for(body))

    assert event is not None
    assert (event.kind, event.reference, event.status, event.amount) == ("payout", REF, status,
                                                                         12345)  # fmt: skip
    assert (event.provider_id, event.failure_reason, event.created_at) == (provider_id, reason,
                                                                           EVENT_TIME)  # fmt: skip


def test_unknown_event_is_invalid(gateway: CashfreeGateway) -> None:
    """webhook_bulk_transfer_rejected: verified, but not an event this service handles."""
    body = raw("webhook_bulk_transfer_rejected")

    with pytest.raises(WebhookInvalid):
        gateway.parse_webhook(body, headers_for(body))


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"type": "TRANSFER_SUCCESS", "data": {"transfer_id": "X"}}'],
)
def test_verified_garbage_is_invalid(gateway: CashfreeGateway, body: bytes) -> None:
    """No fixture: a signed body that is not a well-formed transfer event."""
    with pytest.raises(WebhookInvalid):
        gateway.parse_webhook(body, headers_for(body))
