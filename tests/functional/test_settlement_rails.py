"""Settlement through the real adapters: only the providers' HTTP is played, by `responses`.

The flow of test_settlement.py (SMS in, the worker, signed webhooks back, the books checked after
every step) runs here with `RazorpayGateway` and `CashfreeGateway` themselves injected, on both
backends. Each rail's API is played by `responses` callbacks that answer with the documented
bodies of tests/fixtures/<rail>/ (our reference, amount and ids put in) and keep the provider's
own book of payouts by idempotency key, so a payout asked for under a second key would show as a
second payout made. Webhooks are built from the same fixtures and signed here, independently of
the adapters, as each provider signs them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
import requests
import responses
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.jobs import HANDLERS
from app.worker import Worker
from gateway_clients.base import PaymentGateway, PayoutRequest
from gateway_clients.cashfree import IST, SANDBOX_URL, CashfreeGateway
from gateway_clients.razorpay import RazorpayGateway
from sms import replies
from storage.models import (
    PAYOUTS_IN_FLIGHT_ACCOUNT,
    PAYOUTS_SETTLED_ACCOUNT,
    Job,
    JobStatus,
    TransactionState,
)
from tests.conftest import World
from tests.functional.test_settlement import (
    ASHA,
    NOON,
    VPA,
    Flow,
    processing_payout,
    top_up,
)
from tests.integration import test_cashfree_client as cf
from tests.integration import test_razorpay_client as rzp
from tests.support import FakeClock, Phone

JSON = "application/json"
MASKED = "ra****@okaxis"  # how VPA appears in the status SMS
Answer = tuple[int, dict[str, str], str] | Exception


@dataclass(frozen=True)
class Create:
    """One payout request that reached the provider."""

    reference: str  # the reference its body names
    key: str  # the idempotency key it carried
    body: dict[str, Any]


class Rail:
    """A provider's payout API and webhooks, played over `responses` from its fixtures.

    Faults the next create calls meet, in order: "5xx" (nothing made), "429" (rate limited,
    nothing made), "invalid-vpa" (refused for good), "connect-timeout" (never arrived),
    "timeout" (made, the answer lost), "5xx-after" (made, then a 5xx), "garbled" (made, then an
    HTML page with 200). Fetches can meet "5xx", "timeout" or "stranger" (an answer about a
    payout under another reference: the fixture's sample as it stands).
    """

    name = ""
    in_progress: tuple[str, ...] = ()  # event names that say "still on its way"
    signature_header = ""

    def __init__(self, mock: responses.RequestsMock, clock: FakeClock) -> None:
        self.mock, self.clock = mock, clock
        self.book: dict[str, dict[str, Any]] = {}  # the provider's payouts, by idempotency key
        self.creates: list[Create] = []
        self.fetches: list[str] = []
        self.create_faults: list[str] = []
        self.fetch_faults: list[str] = []
        self.unlisted: dict[str, int] = {}  # reference -> fetches that do not show it yet
        self.handled = 0  # HTTP calls this played provider answered
        self.delivered = 0  # webhooks built
        self.register()

    # --- what a test scripts and reads ---------------------------------------------------
    def gateway(self) -> PaymentGateway:
        raise NotImplementedError

    def register(self) -> None:
        raise NotImplementedError

    def fail_creates(self, *faults: str) -> None:
        self.create_faults.extend(faults)

    def fail_fetches(self, *faults: str) -> None:
        self.fetch_faults.extend(faults)

    def hide(self, reference: str, fetches: int = 1) -> None:
        """The provider's listing lags: the next `fetches` reads do not show the payout."""
        self.unlisted[reference] = fetches

    def made(self) -> int:
        """How many distinct payouts the provider made."""
        return len(self.book)

    def record(self, reference: str) -> dict[str, Any]:
        (found,) = [r for r in self.book.values() if self.reference_of(r) == reference]
        return found

    def move(self, reference: str, event: str) -> None:
        """The provider's payout is now in the state `event` reports."""
        self.record(reference).update(self.state_of(event))

    # --- the provider's HTTP side ----------------------------------------------------------
    def _on_create(self, request: requests.PreparedRequest) -> Answer:
        self.handled += 1
        fault = self.create_faults.pop(0) if self.create_faults else ""
        if fault == "connect-timeout":
            return requests.exceptions.ConnectTimeout("connect timed out")
        body = json.loads(request.body or b"{}")
        key = self.key_of(request, body)
        self.creates.append(Create(self.reference_of(body), key, body))
        if fault in ("5xx", "429", "invalid-vpa"):
            return self.error(fault)
        if key in self.book:
            answer = self.repeated(key)
        else:
            self.book[key] = self.new_payout(body)
            answer = (200, {}, json.dumps(self.book[key]))
        if fault == "timeout":
            return requests.exceptions.ReadTimeout("read timed out")
        if fault == "5xx-after":
            return self.error("5xx")
        if fault == "garbled":
            return 200, {}, "<html><body>Service temporarily busy</body></html>"
        assert not fault, fault
        return answer

    def _on_fetch(self, request: requests.PreparedRequest) -> Answer:
        self.handled += 1
        reference = self.fetched_reference(request)
        self.fetches.append(reference)
        fault = self.fetch_faults.pop(0) if self.fetch_faults else ""
        if fault == "timeout":
            return requests.exceptions.ReadTimeout("read timed out")
        if fault == "stranger":  # the documented sample as it stands: someone else's payout
            return self.listing([self.stranger()])
        if fault:
            return self.error(fault)
        found = [copy.deepcopy(r) for r in self.book.values() if self.reference_of(r) == reference]
        if self.unlisted.get(reference, 0) > 0:
            self.unlisted[reference] -= 1
            found = []
        return self.listing(found)

    # --- per provider ------------------------------------------------------------------------
    def key_of(self, request: requests.PreparedRequest, body: dict[str, Any]) -> str:
        raise NotImplementedError

    def reference_of(self, body: dict[str, Any]) -> str:
        raise NotImplementedError

    def fetched_reference(self, request: requests.PreparedRequest) -> str:
        raise NotImplementedError

    def new_payout(self, body: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def repeated(self, key: str) -> Answer:
        raise NotImplementedError

    def stranger(self) -> dict[str, Any]:
        """A payout the provider made under a reference that is not ours."""
        raise NotImplementedError

    def listing(self, found: list[dict[str, Any]]) -> Answer:
        raise NotImplementedError

    def error(self, fault: str) -> Answer:
        raise NotImplementedError

    def state_of(self, event: str) -> dict[str, Any]:
        raise NotImplementedError

    def reason(self, event: str) -> str:
        raise NotImplementedError

    def utr(self) -> str:
        raise NotImplementedError

    def expected_request(self, reference: str, vpa: str, paise: int) -> dict[str, Any]:
        raise NotImplementedError

    def webhook(self, reference: str, event: str) -> tuple[bytes, dict[str, str]]:
        """A new delivery of `event` for the payout, built from the fixture and signed."""
        raise NotImplementedError

    def redeliver(self, signed: tuple[bytes, dict[str, str]]) -> tuple[bytes, dict[str, str]]:
        """The provider's retry of a delivery it thinks failed."""
        raise NotImplementedError

    def forgeries(self, signed: tuple[bytes, dict[str, str]]) -> list[tuple[bytes, dict[str, str]]]:
        """What a forger can make of a genuine delivery without the secret."""
        raise NotImplementedError

    def resigned(self, signed: tuple[bytes, dict[str, str]], secret: str) -> dict[str, str]:
        """The delivery's headers, signed with another secret."""
        raise NotImplementedError

    def inflate(self, body: bytes) -> bytes:
        """The event with its amount multiplied, and the signature left as it was."""
        raise NotImplementedError


class Razorpay(Rail):
    """RazorpayX payouts (`X-Payout-Idempotency`) and Razorpay payment links."""

    name = "razorpay"
    in_progress = ("queued", "pending", "initiated")
    signature_header = "X-Razorpay-Signature"
    PAYOUTS = f"{rzp.API}/v1/payouts"
    LINKS = f"{rzp.API}/v1/payment_links"

    def gateway(self) -> PaymentGateway:
        return RazorpayGateway(rzp.KEY_ID, rzp.KEY_SECRET, rzp.ACCOUNT, rzp.WEBHOOK_SECRET)

    def register(self) -> None:
        self.links: dict[str, dict[str, Any]] = {}
        self.link_requests: list[dict[str, Any]] = []
        self.mock.add_callback(responses.POST, self.PAYOUTS, self._on_create, content_type=JSON)
        self.mock.add_callback(responses.GET, self.PAYOUTS, self._on_fetch, content_type=JSON)
        self.mock.add_callback(responses.POST, self.LINKS, self._on_link, content_type=JSON)

    def key_of(self, request: requests.PreparedRequest, body: dict[str, Any]) -> str:
        return str(request.headers.get("X-Payout-Idempotency", ""))

    def reference_of(self, body: dict[str, Any]) -> str:
        return str(body.get("reference_id") or "")

    def fetched_reference(self, request: requests.PreparedRequest) -> str:
        params = request.params  # type: ignore[attr-defined]
        assert params["account_number"] == rzp.ACCOUNT
        return str(params["reference_id"])

    def new_payout(self, body: dict[str, Any]) -> dict[str, Any]:
        entity = rzp.load("payout_created")
        n = len(self.book) + 1
        vpa = body["fund_account"]["vpa"]["address"]
        entity.update(id=f"pout_RAILS{n:09d}", amount=body["amount"],
                      reference_id=body["reference_id"], narration=body["narration"],
                      created_at=int(self.clock.now()))  # fmt: skip
        username, handle = vpa.split("@")
        entity["fund_account"]["vpa"] = {"username": username, "handle": handle, "address": vpa}
        entity["fund_account"]["contact"].update(body["fund_account"]["contact"])
        return entity

    def repeated(self, key: str) -> Answer:
        """RazorpayX answers a repeated idempotency key with the payout made the first time."""
        return 200, {}, json.dumps(self.book[key])

    def stranger(self) -> dict[str, Any]:
        item: dict[str, Any] = rzp.load("payouts_by_reference")["items"][0]
        return item

    def listing(self, found: list[dict[str, Any]]) -> Answer:
        collection = rzp.load("payouts_by_reference_empty")
        collection.update(count=len(found), items=found)
        return 200, {}, json.dumps(collection)

    def error(self, fault: str) -> Answer:
        if fault == "5xx":
            return 500, {}, json.dumps(rzp.load("payout_error_server"))
        body = rzp.load("payout_error_invalid_vpa")
        if fault == "429":
            body["error"].update(description="Too many requests", reason="NA", field=None)
            return 429, {}, json.dumps(body)
        return 400, {}, json.dumps(body)

    def _event(self, event: str) -> dict[str, Any]:
        body: dict[str, Any] = rzp.load(f"webhook_payout_{event}")
        return body

    def state_of(self, event: str) -> dict[str, Any]:
        entity = self._event(event)["payload"]["payout"]["entity"]
        return {k: entity[k] for k in ("status", "utr", "status_details", "failure_reason")}

    def reason(self, event: str) -> str:
        return str(self.state_of(event)["status_details"]["description"])

    def utr(self) -> str:
        return str(self.state_of("processed")["utr"])

    def expected_request(self, reference: str, vpa: str, paise: int) -> dict[str, Any]:
        body = rzp.load("payout_create_request")
        body.update(amount=paise, reference_id=reference)
        body["fund_account"]["vpa"]["address"] = vpa
        body["fund_account"]["contact"].update(name="SMS Pay payee", reference_id=vpa)
        return body

    def signed(
        self, body: bytes, event_id: str, secret: str = rzp.WEBHOOK_SECRET
    ) -> tuple[bytes, dict[str, str]]:
        headers = {"Content-Type": JSON, "X-Razorpay-Signature": rzp.sign(body, secret),
                   "X-Razorpay-Event-Id": event_id}  # fmt: skip
        return body, headers

    def _deliver(self, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        event["created_at"] = int(self.clock.now())
        self.delivered += 1
        return self.signed(json.dumps(event, indent=2).encode(), f"evt_RAILS{self.delivered:07d}")

    def webhook(self, reference: str, event: str) -> tuple[bytes, dict[str, str]]:
        payout = self.record(reference)
        body = self._event(event)
        entity = body["payload"]["payout"]["entity"]
        for field in ("id", "amount", "reference_id", "fund_account", "narration", "created_at"):
            entity[field] = payout[field]
        return self._deliver(body)

    def redeliver(self, signed: tuple[bytes, dict[str, str]]) -> tuple[bytes, dict[str, str]]:
        return signed  # the same bytes under the same X-Razorpay-Event-Id

    def forgeries(self, signed: tuple[bytes, dict[str, str]]) -> list[tuple[bytes, dict[str, str]]]:
        body, headers = signed
        signature = headers[self.signature_header]
        return [
            (body, {**headers, self.signature_header: signature.upper()}),
            (body, {**headers, self.signature_header: "0" * 64}),
        ]

    def resigned(self, signed: tuple[bytes, dict[str, str]], secret: str) -> dict[str, str]:
        body, headers = signed
        return self.signed(body, headers["X-Razorpay-Event-Id"], secret)[1]

    def inflate(self, body: bytes) -> bytes:
        event = json.loads(body)
        kind = event["contains"][0]
        event["payload"][kind]["entity"]["amount"] *= 100
        return json.dumps(event, indent=2).encode()

    # payment links, through the SDK on the adapter's session
    def _on_link(self, request: requests.PreparedRequest) -> Answer:
        self.handled += 1
        body = json.loads(request.body or b"{}")
        self.link_requests.append(body)
        n = len(self.links) + 1
        link = rzp.load("payment_link_created")
        now = int(self.clock.now())
        link.update({k: body[k] for k in ("amount", "reference_id", "description", "expire_by",
                                          "customer")})  # fmt: skip
        link.update(id=f"plink_RAILS{n:07d}", short_url=f"https://rzp.io/i/RAILS{n}",
                    created_at=now, updated_at=now)  # fmt: skip
        self.links[body["reference_id"]] = link
        return 200, {}, json.dumps(link)

    def expected_link_request(self, reference: str, paise: int, phone: str) -> dict[str, Any]:
        body = rzp.load("payment_link_create_request")
        body.update(amount=paise, reference_id=reference, customer={"contact": phone},
                    description=f"SMS Pay top-up {reference}",
                    expire_by=int(self.clock.now()) + 86_400)  # fmt: skip
        return body

    def link_paid(self, reference: str) -> tuple[bytes, dict[str, str]]:
        """A `payment_link.paid` delivery for the link made under our reference."""
        link = self.links[reference]
        event = rzp.load("webhook_payment_link_paid")
        payload = event["payload"]
        entity = payload["payment_link"]["entity"]
        for field in ("id", "amount", "reference_id", "description", "expire_by", "customer",
                      "short_url", "created_at"):  # fmt: skip
            entity[field] = link[field]
        entity.update(amount_paid=link["amount"], updated_at=int(self.clock.now()))
        payload["order"]["entity"].update(amount=link["amount"], amount_paid=link["amount"],
                                          receipt=reference)  # fmt: skip
        payload["payment"]["entity"].update(amount=link["amount"])
        return self._deliver(event)


class Cashfree(Rail):
    """Cashfree Payouts v2 standard transfers, idempotent by `transfer_id`."""

    name = "cashfree"
    in_progress = ("processing",)
    signature_header = "x-webhook-signature"
    EVENTS = {"processed": "acknowledged", "processing": "success", "failed": "failed",
              "rejected": "rejected", "reversed": "reversed"}  # fmt: skip
    STATE_FIELDS = ("status", "status_code", "status_description", "transfer_utr")

    def gateway(self) -> PaymentGateway:
        return CashfreeGateway(cf.CLIENT_ID, cf.CLIENT_SECRET, base_url=SANDBOX_URL)

    def register(self) -> None:
        self.retries = 0
        self.mock.add_callback(responses.POST, cf.TRANSFERS, self._on_create, content_type=JSON)
        self.mock.add_callback(responses.GET, cf.TRANSFERS, self._on_fetch, content_type=JSON)

    def key_of(self, request: requests.PreparedRequest, body: dict[str, Any]) -> str:
        return str(body.get("transfer_id") or "")

    def reference_of(self, body: dict[str, Any]) -> str:
        return str(body.get("transfer_id") or "")

    def fetched_reference(self, request: requests.PreparedRequest) -> str:
        params = request.params  # type: ignore[attr-defined]
        assert set(params) == {"transfer_id"}
        return str(params["transfer_id"])

    def _now(self) -> str:
        return datetime.fromtimestamp(self.clock.now(), IST).strftime("%Y-%m-%dT%H:%M:%S")

    def new_payout(self, body: dict[str, Any]) -> dict[str, Any]:
        transfer = cf.load("transfer_received")
        transfer.update(transfer_id=body["transfer_id"], transfer_amount=body["transfer_amount"],
                        cf_transfer_id=str(700_000 + len(self.book)), added_on=self._now(),
                        updated_on=self._now())  # fmt: skip
        transfer["beneficiary_details"] = copy.deepcopy(body["beneficiary_details"])
        return transfer

    def repeated(self, key: str) -> Answer:
        """Cashfree refuses a second transfer under the same transfer_id."""
        return 409, {}, json.dumps(cf.load("transfer_error_already_exists"))

    def stranger(self) -> dict[str, Any]:
        return cf.load("transfer_status_completed")

    def listing(self, found: list[dict[str, Any]]) -> Answer:
        if not found:
            return 404, {}, json.dumps(cf.load("transfer_not_found"))
        (transfer,) = found
        status = cf.load("transfer_status_completed")
        for field in self.STATE_FIELDS:
            status.pop(field, None)
        status.update({k: v for k, v in transfer.items() if k in self.STATE_FIELDS})
        for field in ("transfer_id", "cf_transfer_id", "transfer_amount", "beneficiary_details",
                      "added_on", "updated_on"):  # fmt: skip
            status[field] = transfer[field]
        return 200, {}, json.dumps(status)

    def error(self, fault: str) -> Answer:
        if fault == "5xx":
            return 502, {"Content-Type": "text/html"}, "<html><body>502 Bad Gateway</body></html>"
        body = cf.load("transfer_error_invalid_vpa")
        if fault == "429":
            body.update(type="rate_limit_error", code="rate_limit_exceeded",
                        message="Too many requests")  # fmt: skip
            return 429, {}, json.dumps(body)
        return 400, {}, json.dumps(body)

    def _event(self, event: str) -> dict[str, Any]:
        body: dict[str, Any] = cf.load(f"webhook_transfer_{self.EVENTS[event]}")
        return body

    def state_of(self, event: str) -> dict[str, Any]:
        data = self._event(event)["data"]
        return {k: data.get(k) for k in self.STATE_FIELDS}

    def reason(self, event: str) -> str:
        state = self.state_of(event)
        return str(state["status_description"] or state["status_code"])

    def utr(self) -> str:
        return str(self.state_of("processed")["transfer_utr"])

    def expected_request(self, reference: str, vpa: str, paise: int) -> dict[str, Any]:
        body = cf.load("transfer_create_request")
        body.update(transfer_id=reference, transfer_amount=paise / 100)
        body["beneficiary_details"] = {
            "beneficiary_name": "SMS Pay payee",
            "beneficiary_instrument_details": {"vpa": vpa},
        }
        return body

    def signed(
        self, body: bytes, timestamp: str, secret: str = cf.CLIENT_SECRET
    ) -> tuple[bytes, dict[str, str]]:
        headers = {"Content-Type": JSON, "x-webhook-signature": cf.sign(body, timestamp, secret),
                   "x-webhook-timestamp": timestamp, "x-webhook-version": "2024-01-01"}  # fmt: skip
        return body, headers

    def _timestamp(self) -> str:
        return str(int(self.clock.now() * 1000))

    def webhook(self, reference: str, event: str) -> tuple[bytes, dict[str, str]]:
        transfer = self.record(reference)
        body = self._event(event)
        data = body["data"]
        data.update(transfer_id=reference, transfer_amount=transfer["transfer_amount"])
        if "cf_transfer_id" in data:
            data["cf_transfer_id"] = transfer["cf_transfer_id"]
        if "beneficiary_details" in data:
            data["beneficiary_details"] = copy.deepcopy(transfer["beneficiary_details"])
        body["event_time"] = self._now()
        self.delivered += 1
        return self.signed(json.dumps(body, indent=2).encode(), self._timestamp())

    def redeliver(self, signed: tuple[bytes, dict[str, str]]) -> tuple[bytes, dict[str, str]]:
        """The same bytes, sent again a little later: a new timestamp, so a new signature."""
        self.retries += 1
        return self.signed(signed[0], str(int(self._timestamp()) + 5_000 * self.retries))

    def forgeries(self, signed: tuple[bytes, dict[str, str]]) -> list[tuple[bytes, dict[str, str]]]:
        body, headers = signed
        moved = str(int(headers["x-webhook-timestamp"]) + 1000)
        no_timestamp = {k: v for k, v in headers.items() if k != "x-webhook-timestamp"}
        return [(body, {**headers, "x-webhook-timestamp": moved}), (body, no_timestamp)]

    def resigned(self, signed: tuple[bytes, dict[str, str]], secret: str) -> dict[str, str]:
        body, headers = signed
        return self.signed(body, headers["x-webhook-timestamp"], secret)[1]

    def inflate(self, body: bytes) -> bytes:
        event = json.loads(body)
        event["data"]["transfer_amount"] *= 100
        return json.dumps(event, indent=2).encode()


RAILS: dict[str, type[Rail]] = {"razorpay": Razorpay, "cashfree": Cashfree}
RAZORPAY_ONLY = pytest.mark.parametrize("rail", ["razorpay"], indirect=True)
CASHFREE_ONLY = pytest.mark.parametrize("rail", ["cashfree"], indirect=True)


class RailFlow(Flow):
    """Flow (test_settlement.py) with every job kind the worker runs, webhooks to the rail."""

    def __init__(self, client: FlaskClient, world: World, clock: FakeClock, rail: Rail) -> None:
        super().__init__(client, world, clock)
        self.rail = rail
        self.worker = Worker(self.svc, HANDLERS, owner="worker-1", rng=random.Random(5))

    def post(self, signed: tuple[bytes, dict[str, str]]) -> tuple[int, dict[str, Any] | None]:
        body, headers = signed
        r = self.client.post(f"/webhooks/{self.rail.name}", data=body, headers=headers)
        self.check_books()
        return r.status_code, r.get_json(silent=True)

    def job(self, key: str) -> Job:
        (found,) = [
            j for j in self.svc.store.read(lambda uow: uow.jobs(None, 1000)) if j.key == key
        ]
        return found

    def settle_down(self, step: float = 30, limit: int = 200) -> None:
        """Let time pass until no payout or top-up job is waiting."""
        for _ in range(limit):
            if not self.jobs(JobStatus.PENDING) and not self.jobs(JobStatus.RUNNING):
                return
            self.after(step)
        raise AssertionError(f"jobs still waiting: {self.jobs(JobStatus.PENDING)}")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOON)


@pytest.fixture(params=list(RAILS))
def rail(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[Rail]:
    """One provider's HTTP, played; any call to anything else fails the test."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        played = RAILS[request.param](mock, clock)
        yield played
        urls = [c.request.url for c in mock.calls]
        assert len(mock.calls) == played.handled, f"a call no provider answered, in {urls}"


@pytest.fixture
def app(settings: dict[str, Any], clock: FakeClock, rail: Rail) -> Iterator[Flask]:
    application = create_app(settings, clock=clock, gateway=rail.gateway())
    application.config["TESTING"] = True
    application.extensions["smspay"].store.init()
    yield application
    application.extensions["smspay"].store.close()


@pytest.fixture
def flow(client: FlaskClient, world: World, clock: FakeClock, rail: Rail) -> RailFlow:
    return RailFlow(client, world, clock, rail)


@pytest.fixture
def asha(flow: RailFlow) -> Phone:
    return flow.user()


def one_key(rail: Rail, ref: str) -> None:
    """Every payout request carried our reference, as the reference and as the key."""
    assert rail.creates and {(c.reference, c.key) for c in rail.creates} == {(ref, ref)}


def settled(flow: RailFlow, rail: Rail, ref: str) -> None:
    """The provider pays out and says so by webhook: the payout ends SUCCESS, once."""
    rail.move(ref, "processed")
    assert flow.webhook(rail.webhook(ref, "processed")) == "applied"
    assert flow.txn(ref).state is TransactionState.SUCCESS
    assert flow.balance(PAYOUTS_SETTLED_ACCOUNT) == 25_000
    assert flow.balance(PAYOUTS_IN_FLIGHT_ACCOUNT) == 0
    assert flow.world.balance(ASHA) == 75_000 and rail.made() == 1


# --- success ------------------------------------------------------------------------------


def test_a_payout_is_asked_for_once_under_our_reference_and_a_signed_webhook_settles_it(
    flow: RailFlow, asha: Phone, rail: Rail
) -> None:
    ref, text = flow.pay(asha, VPA, 25_000)
    assert text == replies.payout_started(25_000, MASKED, ref, 75_000)
    assert rail.creates == [] and flow.world.balance(ASHA) == 75_000

    flow.work()
    (create,) = rail.creates
    assert create.key == ref  # X-Payout-Idempotency / transfer_id
    assert create.body == rail.expected_request(ref, VPA, 25_000)
    assert rail.made() == 1 and rail.fetches == []
    assert flow.txn(ref).state is TransactionState.PROCESSING
    assert flow.jobs(JobStatus.PENDING) == [f"payout.poll:{ref}:1"]

    settled(flow, rail, ref)
    txn = flow.txn(ref)
    assert f"utr {rail.utr()}" in txn.reason  # the bank's reference, from the webhook
    assert flow.states(ref) == ["PENDING", "PENDING", "PROCESSING", "SUCCESS"]
    assert flow.sms(ref) == [replies.payout_done(25_000, MASKED, ref, 75_000)]
    flow.after(90)  # the queued status check finds it settled and asks the provider nothing
    assert rail.fetches == [] and len(rail.creates) == 1
    assert flow.jobs(JobStatus.PENDING) == []


def test_without_a_webhook_the_status_check_reads_the_providers_answer_and_settles_it(
    flow: RailFlow, asha: Phone, rail: Rail
) -> None:
    ref = processing_payout(flow, asha)
    rail.move(ref, "processed")
    flow.after(89)
    assert rail.fetches == [] and flow.txn(ref).state is TransactionState.PROCESSING
    flow.after(1)
    assert rail.fetches == [ref]
    txn = flow.txn(ref)
    assert txn.state is TransactionState.SUCCESS and "status check 1" in txn.reason
    assert f"utr {rail.utr()}" in txn.reason
    assert flow.balance(PAYOUTS_SETTLED_ACCOUNT) == 25_000 and flow.world.balance(ASHA) == 75_000
    assert flow.webhook(rail.webhook(ref, "processed")) == "stale"  # the late webhook
    flow.after(7_200)
    assert rail.fetches == [ref] and len(rail.creates) == 1 and rail.made() == 1
    assert flow.sms(ref) == [replies.payout_done(25_000, MASKED, ref, 75_000)]


# --- 5xx and timeouts: unknown outcomes -----------------------------------------------------


@pytest.mark.parametrize("made_before_5xx", [False, True])
def test_a_5xx_then_success_makes_one_payout_under_one_key(
    made_before_5xx: bool, flow: RailFlow, asha: Phone, rail: Rail, clock: FakeClock
) -> None:
    rail.fail_creates("5xx-after" if made_before_5xx else "5xx")
    ref, _ = flow.pay(asha, VPA, 25_000)
    flow.work()
    assert flow.txn(ref).state is TransactionState.PENDING
    assert flow.world.balance(ASHA) == 75_000  # held in flight, not refunded: outcome unknown
    assert rail.made() == int(made_before_5xx)
    job = flow.job(f"payout.create:{ref}")
    assert job.status is JobStatus.PENDING and job.attempts == 1
    assert "answered 50" in job.last_error

    flow.after(job.run_after - clock.now())
    assert flow.txn(ref).state is TransactionState.PROCESSING
    assert rail.fetches == [ref]  # the retry asked first what became of the first attempt
    assert len(rail.creates) == (1 if made_before_5xx else 2)
    one_key(rail, ref)
    settled(flow, rail, ref)


@pytest.mark.parametrize(
    "case", ["answer lost", "answer lost, not yet listed", "answer lost, status unreadable",
             "never arrived"],
)  # fmt: skip
def test_a_timeout_is_resolved_by_fetching_never_by_a_second_payout(
    case: str, flow: RailFlow, asha: Phone, rail: Rail
) -> None:
    rail.fail_creates("connect-timeout" if case == "never arrived" else "timeout")
    if case == "answer lost, status unreadable":
        rail.fail_fetches("5xx", "timeout")
    ref, _ = flow.pay(asha, VPA, 25_000)
    if case == "answer lost, not yet listed":
        rail.hide(ref)
    flow.work()
    assert flow.txn(ref).state is TransactionState.PENDING and flow.world.balance(ASHA) == 75_000
    assert rail.made() == (0 if case == "never arrived" else 1)
    assert "outcome unknown" in flow.job(f"payout.create:{ref}").last_error

    for _ in range(50):
        if flow.txn(ref).state is not TransactionState.PENDING:
            break
        flow.after(15)
        assert flow.world.balance(ASHA) == 75_000  # never refunded while the outcome is unknown
    assert flow.txn(ref).state is TransactionState.PROCESSING
    assert rail.made() == 1
    one_key(rail, ref)
    expected_creates = {"answer lost": 1, "answer lost, not yet listed": 2,
                        "answer lost, status unreadable": 1, "never arrived": 1}  # fmt: skip
    assert len(rail.creates) == expected_creates[case]
    settled(flow, rail, ref)


@pytest.mark.parametrize("faults", [("429",), ("garbled",), ("5xx", "timeout", "garbled")])
def test_answers_no_one_named_leave_the_outcome_unknown_and_still_pay_once(
    faults: tuple[str, ...], flow: RailFlow, asha: Phone, rail: Rail
) -> None:
    rail.fail_creates(*faults)
    ref, _ = flow.pay(asha, VPA, 25_000)
    flow.work()
    for _ in range(60):
        if flow.txn(ref).state is not TransactionState.PENDING:
            break
        assert flow.world.balance(ASHA) == 75_000
        flow.after(15)
    assert flow.txn(ref).state is TransactionState.PROCESSING
    assert rail.made() == 1
    one_key(rail, ref)
    settled(flow, rail, ref)


def test_a_status_answer_about_another_payout_is_not_taken_for_ours(
    flow: RailFlow, asha: Phone, rail: Rail
) -> None:
    """The create answer is lost, and the status read that should resolve it answers with a
    payout under another reference: ours must still be resolved, not left PENDING with no job."""
    rail.fail_creates("timeout")
    rail.fail_fetches("stranger")
    ref, _ = flow.pay(asha, VPA, 25_000)
    assert rail.reference_of(rail.stranger()) != ref
    flow.work()
    for _ in range(50):
        if flow.txn(ref).state is not TransactionState.PENDING:
            break
        flow.after(15)
    job = flow.job(f"payout.create:{ref}")
    assert rail.fetches[0] == ref
    assert flow.txn(ref).state is TransactionState.PROCESSING, f"create job {job.status.value}"
    assert rail.made() == 1
    one_key(rail, ref)
    settled(flow, rail, ref)


def test_a_status_check_answered_about_another_payout_does_not_end_the_checks(
    flow: RailFlow, asha: Phone, rail: Rail
) -> None:
    ref = processing_payout(flow, asha)
    rail.move(ref, "processed")
    rail.fail_fetches("stranger")
    flow.after(90)
    assert rail.fetches == [ref] and flow.txn(ref).state is TransactionState.PROCESSING
    flow.after(1_800)
    assert rail.fetches == [ref, ref], "the second status check was never queued"
    assert flow.txn(ref).state is TransactionState.SUCCESS
    assert flow.balance(PAYOUTS_SETTLED_ACCOUNT) == 25_000


def test_a_payee_the_provider_refuses_is_refunded_at_once_and_never_retried(
    flow: RailFlow, asha: Phone, rail: Rail
) -> None:
    rail.fail_creates("invalid-vpa")
    ref, _ = flow.pay(asha, VPA, 25_000)
    flow.work()
    txn = flow.txn(ref)
    assert txn.state is TransactionState.FAILED and "valid VPA" in txn.reason
    assert flow.world.balance(ASHA) == 100_000 and flow.balance(PAYOUTS_IN_FLIGHT_ACCOUNT) == 0
    assert len(flow.entries(ref)) == 2
    assert flow.sms(ref) == [replies.payout_refunded(25_000, MASKED, ref, 100_000)]
    flow.after(8_000)
    assert len(rail.creates) == 1 and rail.made() == 0 and rail.fetches == []


# --- failures and reversals: refund once ----------------------------------------------------


@pytest.mark.parametrize("event", ["failed", "rejected"])
def test_a_failed_payout_is_refunded_once_however_often_it_is_reported(
    event: str, flow: RailFlow, asha: Phone, rail: Rail, clock: FakeClock
) -> None:
    ref = processing_payout(flow, asha)
    rail.move(ref, event)
    failed = rail.webhook(ref, event)
    assert flow.webhook(failed) == "applied"
    assert flow.webhook(rail.redeliver(failed)) == "duplicate"
    clock.advance(1)
    before = flow.snapshot()
    assert flow.webhook(rail.webhook(ref, event)) == "stale"  # another event, the same news
    assert flow.webhook(rail.webhook(ref, "reversed")) == "stale"
    assert flow.webhook(rail.webhook(ref, "processed")) == "stale"
    assert flow.snapshot() == before
    flow.after(8_000)  # the queued status check finds nothing to do
    txn = flow.txn(ref)
    assert txn.state is TransactionState.FAILED and rail.reason(event) in txn.reason
    assert flow.world.balance(ASHA) == 100_000 and flow.balance(PAYOUTS_IN_FLIGHT_ACCOUNT) == 0
    assert len(flow.entries(ref)) == 2
    assert flow.sms(ref) == [replies.payout_refunded(25_000, MASKED, ref, 100_000)]
    assert rail.fetches == [] and len(rail.creates) == 1


def test_a_reversal_after_success_refunds_once_from_the_settled_account(
    flow: RailFlow, asha: Phone, rail: Rail, clock: FakeClock
) -> None:
    ref = processing_payout(flow, asha)
    settled(flow, rail, ref)
    rail.move(ref, "reversed")
    reversal = rail.webhook(ref, "reversed")
    assert flow.webhook(reversal) == "applied"
    assert flow.webhook(rail.redeliver(reversal)) == "duplicate"
    clock.advance(1)
    for late in ("reversed", "processed", "failed", *rail.in_progress):
        assert flow.webhook(rail.webhook(ref, late)) == "stale", late
    txn = flow.txn(ref)
    assert txn.state is TransactionState.FAILED and rail.reason("reversed") in txn.reason
    assert flow.world.balance(ASHA) == 100_000
    assert flow.balance(PAYOUTS_SETTLED_ACCOUNT) == flow.balance(PAYOUTS_IN_FLIGHT_ACCOUNT) == 0
    assert len(flow.entries(ref)) == 3  # debit, settle, refund
    assert flow.sms(ref) == [
        replies.payout_done(25_000, MASKED, ref, 75_000),
        replies.payout_refunded(25_000, MASKED, ref, 100_000),
    ]


@pytest.mark.parametrize("event", ["failed", "reversed"])
def test_a_failure_found_by_the_status_check_refunds_once(
    event: str, flow: RailFlow, asha: Phone, rail: Rail
) -> None:
    ref = processing_payout(flow, asha)
    rail.move(ref, event)
    flow.after(90)
    assert rail.fetches == [ref]
    txn = flow.txn(ref)
    assert txn.state is TransactionState.FAILED and rail.reason(event) in txn.reason
    assert flow.world.balance(ASHA) == 100_000 and flow.balance(PAYOUTS_IN_FLIGHT_ACCOUNT) == 0
    assert flow.webhook(rail.webhook(ref, event)) == "stale"  # the webhook comes late
    flow.after(8_000)
    assert rail.fetches == [ref] and len(flow.entries(ref)) == 2
    assert flow.sms(ref) == [replies.payout_refunded(25_000, MASKED, ref, 100_000)]


# --- duplicate and out-of-order webhooks ----------------------------------------------------


def test_a_redelivered_webhook_is_a_duplicate_and_changes_nothing(
    flow: RailFlow, asha: Phone, rail: Rail, clock: FakeClock
) -> None:
    ref = processing_payout(flow, asha)
    rail.move(ref, "processed")
    genuine = rail.webhook(ref, "processed")
    assert flow.webhook(genuine) == "applied"
    before = flow.snapshot()
    for _ in range(3):
        clock.advance(30)
        assert flow.post(rail.redeliver(genuine)) == (200, {"status": "duplicate"})
    assert flow.snapshot() == before
    assert flow.txn(ref).state is TransactionState.SUCCESS and len(flow.entries(ref)) == 2
    assert len(flow.sms(ref)) == 1


def test_a_reversal_that_overtakes_the_success_event_refunds_once_and_the_success_is_stale(
    flow: RailFlow, asha: Phone, rail: Rail
) -> None:
    ref = processing_payout(flow, asha)
    rail.move(ref, "processed")
    processed = rail.webhook(ref, "processed")  # sent first, delivered last
    rail.move(ref, "reversed")
    assert flow.webhook(rail.webhook(ref, "reversed")) == "applied"
    assert flow.webhook(processed) == "stale"
    assert flow.txn(ref).state is TransactionState.FAILED
    assert len(flow.entries(ref)) == 2  # debit and refund from in flight, never settled
    assert flow.world.balance(ASHA) == 100_000 and flow.balance(PAYOUTS_IN_FLIGHT_ACCOUNT) == 0


def test_in_progress_events_after_success_are_stale(
    flow: RailFlow, asha: Phone, rail: Rail
) -> None:
    ref = processing_payout(flow, asha)
    early = [rail.webhook(ref, name) for name in rail.in_progress]  # delivered late
    settled(flow, rail, ref)
    for signed in early:
        assert flow.webhook(signed) == "stale"
    assert flow.txn(ref).state is TransactionState.SUCCESS and flow.states(ref)[-1] == "SUCCESS"
    assert flow.balance(PAYOUTS_SETTLED_ACCOUNT) == 25_000


def test_a_webhook_that_overtakes_a_lost_create_answer_settles_it_and_the_retry_stands_down(
    flow: RailFlow, asha: Phone, rail: Rail
) -> None:
    rail.fail_creates("timeout")
    ref, _ = flow.pay(asha, VPA, 25_000)
    flow.work()
    assert flow.txn(ref).state is TransactionState.PENDING and rail.made() == 1
    rail.move(ref, "processed")
    assert flow.webhook(rail.webhook(ref, "processed")) == "applied"
    flow.settle_down()
    assert len(rail.creates) == 1 and rail.fetches == []
    assert flow.txn(ref).state is TransactionState.SUCCESS
    assert flow.balance(PAYOUTS_SETTLED_ACCOUNT) == 25_000


# --- tampered webhooks ----------------------------------------------------------------------


def test_tampered_or_badly_signed_webhooks_are_refused_and_change_nothing(
    flow: RailFlow, asha: Phone, rail: Rail
) -> None:
    ref = processing_payout(flow, asha)
    rail.move(ref, "processed")
    genuine = rail.webhook(ref, "processed")
    body, headers = genuine
    reversal = rail.webhook(ref, "reversed")[0]  # a well-formed body the secret never signed
    attempts = [
        (reversal, headers),
        (rail.inflate(body), headers),
        (json.dumps(json.loads(body), separators=(",", ":")).encode(), headers),  # same JSON
        (body, rail.resigned(genuine, "another-fake-secret")),
        (body, {k: v for k, v in headers.items() if k != rail.signature_header}),
        *rail.forgeries(genuine),
    ]
    before = flow.snapshot()
    for forged_body, forged_headers in attempts:
        assert forged_body != body or forged_headers != headers
        r = flow.client.post(f"/webhooks/{rail.name}", data=forged_body, headers=forged_headers)
        assert (r.status_code, r.data) == (403, b"")
        flow.check_books()
    other = "cashfree" if rail.name == "razorpay" else "razorpay"
    assert flow.client.post(f"/webhooks/{other}", data=body, headers=headers).status_code == 404
    assert flow.snapshot() == before and flow.txn(ref).state is TransactionState.PROCESSING
    # the genuine delivery still counts: the refused forgeries used up nothing
    assert flow.webhook(genuine) == "applied"
    assert flow.txn(ref).state is TransactionState.SUCCESS and flow.world.balance(ASHA) == 75_000


# --- top-ups --------------------------------------------------------------------------------


@RAZORPAY_ONLY
def test_a_payment_link_paid_twice_credits_the_wallet_once(
    flow: RailFlow, asha: Phone, rail: Razorpay, clock: FakeClock
) -> None:
    ref = top_up(flow, asha, 50_000)
    expected = rail.expected_link_request(ref, 50_000, ASHA)
    flow.work()
    assert rail.link_requests == [expected]
    link = rail.links[ref]
    assert flow.txn(ref).state is TransactionState.PROCESSING
    assert flow.sms(ref) == [replies.top_up_link(50_000, link["short_url"], ref)]
    assert flow.world.balance(ASHA) == 100_000

    paid = rail.link_paid(ref)
    assert flow.webhook(paid) == "credited"
    assert flow.webhook(rail.redeliver(paid)) == "duplicate"
    clock.advance(60)
    assert flow.webhook(rail.link_paid(ref)) == "stale"  # paid again: another event id
    assert flow.world.balance(ASHA) == 150_000
    assert flow.txn(ref).state is TransactionState.SUCCESS and len(flow.entries(ref)) == 1
    assert flow.sms(ref) == [
        replies.top_up_link(50_000, link["short_url"], ref),
        replies.credited(50_000, ref, 150_000),
    ]
    assert len(rail.link_requests) == 1


@CASHFREE_ONLY
def test_cashfree_offers_no_payment_links_so_a_top_up_is_refused_at_once(
    flow: RailFlow, asha: Phone, rail: Cashfree
) -> None:
    ref = top_up(flow, asha, 50_000)
    key = f"topup.link:{ref}"
    flow.work()
    job = flow.job(key)
    assert job.status is JobStatus.DONE and job.attempts == 1  # not retried for hours
    txn = flow.txn(ref)
    assert txn.state is TransactionState.FAILED and "not available on this rail" in txn.reason
    assert flow.entries(ref) == [] and flow.world.balance(ASHA) == 100_000
    assert flow.sms(ref) == [replies.TOP_UP_UNAVAILABLE]
    assert rail.handled == 0  # no HTTP call was made for a link this rail cannot make
    # a Razorpay link event cannot reach this installation either
    body = json.dumps(rzp.load("webhook_payment_link_paid")).encode()
    paid = (body, {"X-Razorpay-Signature": rzp.sign(body), "X-Razorpay-Event-Id": "evt_1"})
    assert flow.post(paid)[0] == 403
    assert flow.client.post("/webhooks/razorpay", data=body, headers=paid[1]).status_code == 404
    assert flow.world.balance(ASHA) == 100_000


# --- a worker killed mid-job ----------------------------------------------------------------


@pytest.mark.parametrize("reached_provider", [False, True])
def test_a_worker_killed_between_claim_and_completion_makes_exactly_one_payout(
    reached_provider: bool, flow: RailFlow, asha: Phone, rail: Rail, clock: FakeClock
) -> None:
    ref, _ = flow.pay(asha, VPA, 25_000)
    svc, lease = flow.svc, flow.svc.settings.worker_lease_seconds
    now = clock.now()
    killed = svc.store.atomic(
        lambda uow: uow.claim_job("killed-worker", now, lease, ["payout.create"])
    )
    assert killed is not None and killed.key == f"payout.create:{ref}"
    if reached_provider:  # it asked the provider through the adapter, then died
        svc.gateway.create_payout(PayoutRequest(ref, VPA, 25_000))
    flow.work()
    assert len(rail.creates) == int(reached_provider)  # the lease still holds
    flow.after(lease + 1)
    assert flow.txn(ref).state is TransactionState.PROCESSING
    assert rail.made() == 1 and len(rail.creates) == 1 and rail.fetches == [ref]
    one_key(rail, ref)
    later = clock.now()
    assert svc.store.atomic(lambda uow: uow.finish_job(killed.id, "killed-worker", later)) is False
    rail.move(ref, "processed")
    flow.after(90)
    assert flow.txn(ref).state is TransactionState.SUCCESS and rail.made() == 1
    assert flow.balance(PAYOUTS_SETTLED_ACCOUNT) == 25_000 and flow.world.balance(ASHA) == 75_000
    assert len(rail.creates) == 1 and rail.fetches == [ref, ref]


def test_event_ids_are_what_the_provider_sends(flow: RailFlow, asha: Phone, rail: Rail) -> None:
    """The dedupe key recorded is the provider's event id (Razorpay) or the body's digest."""
    ref = processing_payout(flow, asha)
    rail.move(ref, "processed")
    body, headers = rail.webhook(ref, "processed")
    assert flow.webhook((body, headers)) == "applied"
    if rail.name == "razorpay":
        event_id = headers["X-Razorpay-Event-Id"]
    else:
        event_id = "sha256:" + hashlib.sha256(body).hexdigest()
    event = flow.svc.store.read(lambda uow: uow.find_provider_event(rail.name, event_id))
    assert event is not None and (event.reference, event.outcome) == (ref, "applied")
