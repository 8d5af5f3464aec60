"""Settlement end to end: SMS in, the worker, the gateway, signed webhooks back, on both backends.

Everything is real but the gateway edge: the store, the inbound routes, the webhook route, the
worker and its jobs, the CLI. The gateway is `FakeGateway` (tests/fakes.py), or the sandbox in
`TestSandbox`. After every step the books must balance and no wallet may be negative.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from app import create_app
from app.bootstrap import Services
from app.services import settlement
from app.worker import Worker
from gateway_clients.base import (
    GatewayUnavailable,
    PayeeCheck,
    Payout,
    PayoutRejected,
    PayoutRequest,
    PayoutStatus,
)
from gateway_clients.sandbox import SandboxGateway
from sms import replies
from sms.instructions import format_top_up
from storage.models import (
    PAYOUTS_IN_FLIGHT_ACCOUNT,
    PAYOUTS_SETTLED_ACCOUNT,
    Account,
    JobStatus,
    Transaction,
    TransactionKind,
    TransactionState,
)
from tests.conftest import World
from tests.fakes import FakeGateway, sign
from tests.functional.test_inbound import Routes
from tests.support import FakeClock, Phone

ASHA, RAVI = "+919876543210", "+919812345678"
VPA = "ravi.k@okaxis"
NOON = 1795588200.0  # 25 Nov 2026 12:00 in Asia/Kolkata: a payout and its polls stay in one day
ROUTES = pytest.mark.parametrize("route", ["twilio", "tasker"])
HANDLERS = {  # the settlement jobs; other kinds (outbound SMS) are left to their own tests
    "payout.create": settlement.run_payout_create,
    "payout.poll": settlement.run_payout_poll,
    "topup.link": settlement.run_top_up_link,
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOON)


@pytest.fixture
def gateway(fake: FakeGateway) -> FakeGateway | None:
    """The gateway the app is built with (None: the configured one, the sandbox)."""
    return fake


@pytest.fixture
def app(settings: dict[str, Any], clock: FakeClock, gateway: FakeGateway | None) -> Iterator[Flask]:
    application = create_app(settings, clock=clock, gateway=gateway)
    application.config["TESTING"] = True
    application.extensions["smspay"].store.init()
    yield application
    application.extensions["smspay"].store.close()


class Flow:
    """Drives one installation: SMS in, the worker, webhooks; checks the books after each step."""

    def __init__(self, client: FlaskClient, world: World, clock: FakeClock) -> None:
        self.client, self.world, self.clock = client, world, clock
        self.svc: Services = world.svc
        self.routes = Routes(client, world, clock)
        self.worker = Worker(self.svc, HANDLERS, owner="worker-1", rng=random.Random(5))
        self.total: int | None = None

    def user(self, phone: str = ASHA, rupees: int = 1000, name: str = "Asha") -> Phone:
        """Register a user with money in the wallet; the books' total is taken after."""
        user = self.world.user(phone, "1234", rupees=rupees, name=name)
        self.total = self.world.total()
        return user

    def check_books(self) -> None:
        """The ledger invariant: the sum of all balances is unchanged, no wallet is negative."""
        dumped = self.svc.store.read(lambda uow: list(uow.dump("accounts")))
        accounts = [a for a in dumped if isinstance(a, Account)]
        assert len(accounts) == len(dumped)
        assert sum(a.balance for a in accounts) == self.total == self.world.total()
        assert [a.id for a in accounts if a.balance < 0 and not a.allow_negative] == []

    def pay(self, payer: Phone, payee: str, paise: int, route: str = "tasker") -> tuple[str, str]:
        """Send a PAY; returns (reference, reply)."""
        status, text = self.routes.send(
            route, payer.phone, payer.pay(payee, paise, at=self.clock.now())
        )
        assert status == 200
        self.check_books()
        return reference_in(text), text

    def work(self) -> int:
        """Run every job that is due now; returns how many ran."""
        ran = 0
        while self.worker.run_once():
            ran += 1
            self.check_books()
            assert ran < 50, "the worker does not settle down"
        return ran

    def after(self, seconds: float) -> int:
        """Let time pass, then run what became due."""
        self.clock.advance(seconds)
        return self.work()

    def post(self, signed: tuple[bytes, dict[str, str]]) -> tuple[int, dict[str, Any] | None]:
        """Deliver a gateway webhook as the provider would."""
        body, headers = signed
        r = self.client.post("/webhooks/razorpay", data=body, headers=headers)
        self.check_books()
        return r.status_code, r.get_json(silent=True)

    def webhook(self, signed: tuple[bytes, dict[str, str]]) -> str:
        """Deliver a webhook that must be accepted; returns what became of it."""
        status, answer = self.post(signed)
        assert status == 200 and answer is not None
        return str(answer["status"])

    # what the store says
    def txn(self, ref: str) -> Transaction:
        found = self.svc.store.read(lambda uow: uow.get_transaction(ref))
        assert found is not None
        return found

    def states(self, ref: str) -> list[str]:
        return [e.state.value for e in self.svc.store.read(lambda uow: uow.events(ref))]

    def entries(self, ref: str) -> list[dict[str, int]]:
        rows = self.svc.store.read(lambda uow: uow.entries(ref))
        return [{p.account: p.amount for p in e.postings} for e in rows]

    def sms(self, ref: str) -> list[str]:
        return [
            m.body for m in self.svc.store.read(lambda uow: uow.outbox(1000)) if m.reference == ref
        ]

    def balance(self, account: str) -> int:
        return int(self.svc.store.read(lambda uow: uow.balance(account)))

    def jobs(self, status: JobStatus | None = None) -> list[str]:
        """Keys of the settlement jobs (other workers run other kinds)."""
        found = self.svc.store.read(lambda uow: uow.jobs(status, 1000))
        return [j.key for j in found if j.kind in HANDLERS]

    def snapshot(self) -> tuple[Any, ...]:
        """Everything a webhook could change."""

        def read(uow: Any) -> tuple[Any, ...]:
            return (
                list(uow.dump("accounts")),
                uow.search_transactions(limit=1000),
                uow.outbox(1000),
                uow.jobs(None, 1000),
            )

        return self.svc.store.read(read)


def reference_in(text: str) -> str:
    found = re.search(r"Ref ([A-Z0-9]{10})\b", text)
    assert found, text
    return found.group(1)


@pytest.fixture
def flow(client: FlaskClient, world: World, clock: FakeClock) -> Flow:
    return Flow(client, world, clock)


@pytest.fixture
def asha(flow: Flow) -> Phone:
    return flow.user()


def processing_payout(flow: Flow, asha: Phone, paise: int = 25_000) -> str:
    """A payout the gateway accepted and has not settled yet."""
    ref, _ = flow.pay(asha, VPA, paise)
    flow.work()
    assert flow.txn(ref).state is TransactionState.PROCESSING
    return ref


# --- payouts --------------------------------------------------------------------------------


@ROUTES
def test_payout_debits_at_once_pays_once_and_a_signed_webhook_settles_it(
    route: str, flow: Flow, asha: Phone, fake: FakeGateway, clock: FakeClock
) -> None:
    ref, text = flow.pay(asha, VPA, 25_000, route)
    assert text == replies.payout_started(25_000, "ra****@okaxis", ref, 75_000)
    assert text.startswith("SMSPay: Sending Rs 250.00 to ra****@okaxis.")
    assert flow.world.balance(ASHA) == 75_000
    assert flow.balance(PAYOUTS_IN_FLIGHT_ACCOUNT) == 25_000
    txn = flow.txn(ref)
    assert (txn.kind, txn.state, txn.channel) == (
        TransactionKind.PAYOUT,
        TransactionState.PENDING,
        route,
    )
    assert fake.calls == []  # the webhook answered before any gateway call
    assert flow.jobs(JobStatus.PENDING) == [f"payout.create:{ref}"]

    assert flow.work() == 1
    check, create = fake.calls
    assert (check.method, check.reference) == ("validate_payee", VPA)  # checked before paying
    assert create.method == "create_payout" and create.request is not None
    assert create.request == PayoutRequest(ref, VPA, 25_000)  # our reference is the key
    assert flow.txn(ref).state is TransactionState.PROCESSING and fake.made() == 1
    assert flow.jobs(JobStatus.PENDING) == [f"payout.poll:{ref}:1"]

    fake.set_status(ref, PayoutStatus.PROCESSED, utr="523223155921")
    assert flow.webhook(fake.payout_webhook(ref)) == "applied"
    assert flow.states(ref) == ["PENDING", "PENDING", "PROCESSING", "SUCCESS"]
    assert "utr 523223155921" in flow.txn(ref).reason  # the bank's reference, from the webhook
    assert flow.balance(PAYOUTS_IN_FLIGHT_ACCOUNT) == 0
    assert flow.balance(PAYOUTS_SETTLED_ACCOUNT) == 25_000
    assert flow.entries(ref) == [
        {f"user:{txn.payer_id}": -25_000, PAYOUTS_IN_FLIGHT_ACCOUNT: 25_000},
        {PAYOUTS_IN_FLIGHT_ACCOUNT: -25_000, PAYOUTS_SETTLED_ACCOUNT: 25_000},
    ]
    assert flow.sms(ref) == [replies.payout_done(25_000, "ra****@okaxis", ref, 75_000)]
    outbox = flow.svc.store.read(lambda uow: uow.outbox(1000))
    assert [m.to for m in outbox if m.reference == ref] == [ASHA]

    # the status check that was queued finds it settled and asks the gateway nothing
    assert flow.after(90) == 1
    assert fake.called("fetch_payout") == [] and fake.made() == 1
    assert flow.jobs(JobStatus.PENDING) == []


def test_gateway_5xx_then_success_makes_one_payout_under_one_key(
    flow: Flow, asha: Phone, fake: FakeGateway
) -> None:
    fake.fail_next(1, GatewayUnavailable("razorpay POST /v1/payouts answered 503"))
    ref, _ = flow.pay(asha, VPA, 25_000)
    assert flow.work() == 1
    assert fake.made() == 0 and flow.txn(ref).state is TransactionState.PENDING
    (job,) = [j for j in flow.svc.store.read(lambda uow: uow.jobs()) if j.kind == "payout.create"]
    assert job.status is JobStatus.PENDING
    assert job.key == f"payout.create:{ref}" and job.attempts == 1
    assert "503" in job.last_error
    assert flow.world.balance(ASHA) == 75_000  # held in flight, not refunded: outcome unknown

    assert flow.after(job.run_after - flow.clock.now()) == 1
    assert fake.made() == 1 and flow.txn(ref).state is TransactionState.PROCESSING
    creates = fake.called("create_payout")
    assert len(creates) == 2 and {c.reference for c in creates} == {ref}
    assert flow.jobs(JobStatus.PENDING) == [f"payout.poll:{ref}:1"]


def test_timeout_after_the_gateway_accepted_is_adopted_never_paid_twice(
    flow: Flow, asha: Phone, fake: FakeGateway
) -> None:
    fake.timeout_after_accept = True
    ref, _ = flow.pay(asha, VPA, 25_000)
    flow.work()
    assert fake.made() == 1  # the provider made it, but we never heard
    assert flow.txn(ref).state is TransactionState.PENDING

    flow.after(60)
    assert [c.method for c in fake.calls] == ["validate_payee", "create_payout", "fetch_payout"]
    assert fake.made() == 1 and len(fake.called("create_payout")) == 1
    assert flow.txn(ref).state is TransactionState.PROCESSING
    fake.set_status(ref, PayoutStatus.PROCESSED)
    assert flow.webhook(fake.payout_webhook(ref)) == "applied"
    assert flow.balance(PAYOUTS_SETTLED_ACCOUNT) == 25_000


def test_a_revived_payout_job_asks_the_gateway_before_paying_again(
    flow: Flow, asha: Phone, fake: FakeGateway, runner: FlaskCliRunner
) -> None:
    """A dead payout job may have reached the gateway: reviving it must not pay again blind."""
    fake.timeout_after_accept = True  # the first attempt reached the provider, then timed out
    fake.fail_next_fetch(100, GatewayUnavailable("razorpay GET /v1/payouts answered 502"))
    ref, _ = flow.pay(asha, VPA, 25_000)
    key = f"payout.create:{ref}"
    flow.work()
    while key not in flow.jobs(JobStatus.DEAD):
        flow.after(600)
    assert fake.made() == 1 and flow.txn(ref).state is TransactionState.PENDING
    assert flow.world.balance(ASHA) == 75_000  # still held: the outcome is unknown

    fake.heal()  # the gateway is back
    calls_before = len(fake.calls)
    assert runner.invoke(args=["jobs", "retry", key]).exit_code == 0
    flow.work()
    assert [c.method for c in fake.calls[calls_before:]] == ["fetch_payout"]
    assert fake.made() == 1 and flow.txn(ref).state is TransactionState.PROCESSING


def test_a_payee_the_bank_does_not_know_is_refused_before_any_money_leaves(
    flow: Flow, asha: Phone, fake: FakeGateway
) -> None:
    fake.payees[VPA] = PayeeCheck(False)
    ref, _ = flow.pay(asha, VPA, 25_000)
    flow.work()
    txn = flow.txn(ref)
    assert txn.state is TransactionState.FAILED and "the UPI id is not valid" in txn.reason
    assert fake.called("create_payout") == [] and fake.made() == 0
    assert flow.world.balance(ASHA) == 100_000 and flow.balance(PAYOUTS_IN_FLIGHT_ACCOUNT) == 0
    assert flow.sms(ref) == [replies.payout_refunded(25_000, "ra****@okaxis", ref, 100_000)]


def test_a_valid_payees_registered_name_goes_with_the_payout_and_into_the_history(
    flow: Flow, asha: Phone, fake: FakeGateway
) -> None:
    fake.payees[VPA] = PayeeCheck(True, "RAMESH KUMAR")
    ref, _ = flow.pay(asha, VPA, 25_000)
    flow.work()
    [create] = fake.called("create_payout")
    assert create.request == PayoutRequest(ref, VPA, 25_000, payee_name="RAMESH KUMAR")
    assert flow.txn(ref).state is TransactionState.PROCESSING
    assert "to RAMESH KUMAR" in flow.txn(ref).reason


def test_a_rejected_payout_fails_and_refunds_once(
    flow: Flow, asha: Phone, fake: FakeGateway
) -> None:
    fake.fail_next(1, PayoutRejected("Invalid VPA. Please enter a valid VPA"))
    ref, _ = flow.pay(asha, VPA, 25_000)
    flow.work()
    txn = flow.txn(ref)
    assert txn.state is TransactionState.FAILED and "Invalid VPA" in txn.reason
    assert flow.world.balance(ASHA) == 100_000
    assert flow.balance(PAYOUTS_IN_FLIGHT_ACCOUNT) == 0
    assert len(flow.entries(ref)) == 2
    assert flow.sms(ref) == [replies.payout_refunded(25_000, "ra****@okaxis", ref, 100_000)]
    assert flow.jobs(JobStatus.PENDING) == []  # refused for good: not retried
    flow.after(8_000)
    assert len(fake.called("create_payout")) == 1 and fake.made() == 0
    assert len(flow.entries(ref)) == 2


def test_a_failed_payout_refunds_once_however_often_it_is_reported(
    flow: Flow, asha: Phone, fake: FakeGateway
) -> None:
    ref = processing_payout(flow, asha)
    fake.set_status(ref, PayoutStatus.FAILED, "beneficiary bank offline")
    failed = fake.payout_webhook(ref, "payout.failed", "evt_failed_1")
    assert flow.webhook(failed) == "applied"
    assert flow.webhook(failed) == "duplicate"  # Razorpay delivers again
    assert flow.webhook(fake.payout_webhook(ref, "payout.failed", "evt_failed_2")) == "stale"
    assert flow.webhook(fake.payout_webhook(ref, "payout.rejected", "evt_rejected")) == "stale"
    assert flow.webhook(fake.payout_webhook(ref, "payout.reversed", "evt_reversed")) == "stale"
    assert flow.after(8_000) == 1  # the queued poll finds nothing to do
    txn = flow.txn(ref)
    assert txn.state is TransactionState.FAILED and "beneficiary bank offline" in txn.reason
    assert flow.world.balance(ASHA) == 100_000
    assert len(flow.entries(ref)) == 2
    assert flow.sms(ref) == [replies.payout_refunded(25_000, "ra****@okaxis", ref, 100_000)]
    assert fake.called("fetch_payout") == []


def test_a_reversal_after_processed_refunds_once_and_late_events_are_ignored(
    flow: Flow, asha: Phone, fake: FakeGateway
) -> None:
    ref = processing_payout(flow, asha)
    fake.set_status(ref, PayoutStatus.PROCESSED, utr="UTR1")
    assert flow.webhook(fake.payout_webhook(ref, "payout.processed", "evt_p1")) == "applied"
    fake.set_status(ref, PayoutStatus.REVERSED, "payee account closed")
    reversed_ = fake.payout_webhook(ref, "payout.reversed", "evt_r1")
    assert flow.webhook(reversed_) == "applied"
    assert flow.webhook(reversed_) == "duplicate"
    assert flow.webhook(fake.payout_webhook(ref, "payout.reversed", "evt_r2")) == "stale"
    assert flow.webhook(fake.payout_webhook(ref, "payout.processed", "evt_p2")) == "stale"
    assert flow.webhook(fake.payout_webhook(ref, "payout.pending", "evt_q")) == "stale"
    assert flow.txn(ref).state is TransactionState.FAILED
    assert flow.world.balance(ASHA) == 100_000
    assert flow.balance(PAYOUTS_SETTLED_ACCOUNT) == 0
    assert flow.balance(PAYOUTS_IN_FLIGHT_ACCOUNT) == 0
    assert len(flow.entries(ref)) == 3  # debit, settle, refund
    assert flow.sms(ref) == [
        replies.payout_done(25_000, "ra****@okaxis", ref, 75_000),
        replies.payout_refunded(25_000, "ra****@okaxis", ref, 100_000),
    ]


def test_events_out_of_order_move_a_payout_forward_only(
    flow: Flow, asha: Phone, fake: FakeGateway
) -> None:
    reversed_first = processing_payout(flow, asha)
    fake.set_status(reversed_first, PayoutStatus.REVERSED, "returned by bank")
    assert flow.webhook(fake.payout_webhook(reversed_first, "payout.reversed", "e1")) == "applied"
    assert flow.webhook(fake.payout_webhook(reversed_first, "payout.processed", "e2")) == "stale"
    assert flow.txn(reversed_first).state is TransactionState.FAILED
    assert len(flow.entries(reversed_first)) == 2  # debit and refund from in flight, no settle
    assert flow.world.balance(ASHA) == 100_000

    processed_first = processing_payout(flow, asha)
    assert flow.webhook(fake.payout_webhook(processed_first, "payout.processed", "e3")) == (
        "applied"
    )
    for late in ("payout.queued", "payout.pending", "payout.initiated", "payout.updated"):
        assert flow.webhook(fake.payout_webhook(processed_first, late, "late-" + late)) == "stale"
    assert flow.txn(processed_first).state is TransactionState.SUCCESS
    assert flow.states(processed_first)[-1] == "SUCCESS"
    assert flow.balance(PAYOUTS_SETTLED_ACCOUNT) == 25_000
    assert flow.world.balance(ASHA) == 75_000


def test_a_payout_webhook_before_the_create_answer_settles_it_and_the_job_stands_down(
    flow: Flow, asha: Phone, fake: FakeGateway
) -> None:
    ref, _ = flow.pay(asha, VPA, 25_000)
    fake.create_payout(PayoutRequest(ref, VPA, 25_000))  # as if another worker had asked
    fake.set_status(ref, PayoutStatus.PROCESSED)
    assert flow.webhook(fake.payout_webhook(ref)) == "applied"
    calls = len(fake.calls)
    flow.work()
    assert len(fake.calls) == calls and flow.txn(ref).state is TransactionState.SUCCESS


def test_a_duplicate_webhook_is_answered_as_such_and_changes_nothing(
    flow: Flow, asha: Phone, fake: FakeGateway
) -> None:
    ref = processing_payout(flow, asha)
    fake.set_status(ref, PayoutStatus.PROCESSED)
    body, headers = fake.payout_webhook(ref, event_id="evt_once")
    assert flow.webhook((body, headers)) == "applied"
    before = flow.snapshot()
    # a redelivery carries the same event id, even if the bytes differ (a new created_at)
    flow.clock.advance(30)
    again = fake.payout_webhook(ref, event_id="evt_once")
    assert again[0] != body
    assert flow.post(again) == (200, {"status": "duplicate"})
    assert flow.post((body, headers)) == (200, {"status": "duplicate"})
    assert flow.snapshot() == before
    event = flow.svc.store.read(lambda uow: uow.find_provider_event("razorpay", "evt_once"))
    assert event is not None and event.outcome == "applied" and event.reference == ref


def test_tampered_or_badly_signed_webhooks_get_a_bare_403_and_change_nothing(
    flow: Flow, asha: Phone, fake: FakeGateway
) -> None:
    ref = processing_payout(flow, asha)
    fake.set_status(ref, PayoutStatus.FAILED, "bank down")
    body, headers = fake.payout_webhook(ref, event_id="evt_bad")
    before = flow.snapshot()
    tampered = body.replace(b'"amount": 25000', b'"amount": 2500000')
    assert tampered != body
    reserialised = json.dumps(json.loads(body), indent=1).encode()  # same JSON, other bytes
    attempts = [
        (tampered, headers),
        (reserialised, headers),
        (body, {**headers, "X-Razorpay-Signature": "0" * 64}),
        (body, {**headers, "X-Razorpay-Signature": sign(body, "another-secret")}),
        (body, {k: v for k, v in headers.items() if k != "X-Razorpay-Signature"}),
        (body, {**headers, "X-Razorpay-Signature": headers["X-Razorpay-Signature"].upper()}),
    ]
    for signed in attempts:
        r = flow.client.post("/webhooks/razorpay", data=signed[0], headers=signed[1])
        assert (r.status_code, r.data) == (403, b"")
    assert flow.snapshot() == before
    assert flow.svc.store.read(lambda uow: uow.find_provider_event("razorpay", "evt_bad")) is None
    # the genuine delivery still counts: a refused forgery did not use up its event id
    assert flow.webhook((body, headers)) == "applied"
    assert flow.world.balance(ASHA) == 100_000


def test_an_unhandled_event_with_a_valid_signature_is_acknowledged_and_ignored(
    flow: Flow, asha: Phone, fake: FakeGateway
) -> None:
    ref = processing_payout(flow, asha)
    before = flow.snapshot()
    downtime = fake.webhook(
        "payout.downtime.started", "payout.downtime", {"id": "down_1", "status": "started"}
    )
    status, answer = flow.post(downtime)
    assert status == 200 and answer is not None and answer["status"] == "ignored"
    assert "unhandled" in answer["reason"]
    malformed = fake.webhook("payout.processed", "payout", {"id": "pout_x", "amount": "lots"})
    status, answer = flow.post(malformed)
    assert status == 200 and answer is not None and answer["status"] == "ignored"
    assert flow.snapshot() == before and flow.txn(ref).state is TransactionState.PROCESSING
    # another rail's route does not exist for this installation
    other = flow.client.post("/webhooks/cashfree", data=downtime[0], headers=downtime[1])
    assert other.status_code == 404


# --- status checks --------------------------------------------------------------------------


def test_with_no_webhook_the_status_check_at_90_s_settles_it(
    flow: Flow, asha: Phone, fake: FakeGateway, clock: FakeClock
) -> None:
    start = clock.now()
    ref = processing_payout(flow, asha)
    fake.set_status(ref, PayoutStatus.PROCESSED, utr="UTR90")
    assert flow.after(89.9) == 0
    assert fake.called("fetch_payout") == [] and flow.txn(ref).state is TransactionState.PROCESSING
    assert flow.after(0.1) == 1
    assert [c.at - start for c in fake.called("fetch_payout", ref)] == [90]
    txn = flow.txn(ref)
    assert txn.state is TransactionState.SUCCESS and "status check 1" in txn.reason
    assert flow.sms(ref) == [replies.payout_done(25_000, "ra****@okaxis", ref, 75_000)]
    assert flow.after(7_200) == 0 and len(fake.called("fetch_payout")) == 1


def test_a_failure_found_by_a_later_status_check_refunds_once(
    flow: Flow, asha: Phone, fake: FakeGateway, clock: FakeClock
) -> None:
    ref = processing_payout(flow, asha)
    flow.after(90)
    fake.set_status(ref, PayoutStatus.FAILED, "NPCI timeout")
    flow.after(1_800 - 90)
    assert flow.txn(ref).state is TransactionState.FAILED and flow.world.balance(ASHA) == 100_000
    assert len(fake.called("fetch_payout")) == 2
    fake.set_status(ref, PayoutStatus.FAILED, "NPCI timeout")
    assert flow.webhook(fake.payout_webhook(ref, "payout.failed", "evt_late")) == "stale"
    assert len(flow.entries(ref)) == 2 and len(flow.sms(ref)) == 1


def test_status_checks_follow_npci_pacing_at_most_three_the_first_after_90_s(
    flow: Flow, asha: Phone, fake: FakeGateway, clock: FakeClock
) -> None:
    start = clock.now()
    ref = processing_payout(flow, asha)
    for _ in range(4 * 3600 // 30):  # four hours in 30 s steps, the gateway never settling
        flow.after(30)
    times = [c.at - start for c in fake.called("fetch_payout")]
    assert times == [90, 1800, 7200]
    assert min(times) >= 90 and len(times) <= 3 and max(times) <= 7200
    assert flow.txn(ref).state is TransactionState.PROCESSING  # left to reconciliation
    assert flow.jobs(JobStatus.PENDING) == [] and flow.jobs(JobStatus.DEAD) == []
    assert flow.world.balance(ASHA) == 75_000


def test_status_checks_are_paced_from_when_the_gateway_accepted_the_payout(
    flow: Flow, asha: Phone, fake: FakeGateway, clock: FakeClock
) -> None:
    fake.fail_next(6, GatewayUnavailable("razorpay POST /v1/payouts answered 503"))
    ref, _ = flow.pay(asha, VPA, 25_000)
    flow.work()
    while flow.txn(ref).state is TransactionState.PENDING:
        flow.after(10)
    accepted = fake.called("create_payout")[-1].at
    assert accepted - flow.txn(ref).created_at > 90  # a long outage before the gateway said yes
    for _ in range(3 * 3600 // 10):
        flow.after(10)
    last_create = max(i for i, c in enumerate(fake.calls) if c.method == "create_payout")
    after_create = fake.calls[last_create + 1 :]
    checks = [c.at - accepted for c in after_create if c.method == "fetch_payout"]
    assert len(checks) == 3
    assert checks[0] >= 90  # not three checks in a burst the moment it was accepted
    assert checks == sorted(set(checks)) and checks[1] - checks[0] >= 1_000
    assert checks[-1] <= 7_200 + 10


def test_a_status_check_that_cannot_reach_the_gateway_is_retried(
    flow: Flow, asha: Phone, fake: FakeGateway, clock: FakeClock
) -> None:
    ref = processing_payout(flow, asha)
    fake.fail_next_fetch(1, GatewayUnavailable("connect timeout"))
    fake.set_status(ref, PayoutStatus.PROCESSED)
    assert flow.after(90) == 1
    assert flow.txn(ref).state is TransactionState.PROCESSING
    flow.after(60)
    assert flow.txn(ref).state is TransactionState.SUCCESS and len(fake.called("fetch_payout")) == 2


# --- a worker killed mid-job ----------------------------------------------------------------


@pytest.mark.parametrize("reached_gateway", [False, True])
def test_a_worker_killed_between_claim_and_completion_loses_nothing_and_pays_once(
    reached_gateway: bool, flow: Flow, asha: Phone, fake: FakeGateway, clock: FakeClock
) -> None:
    ref, _ = flow.pay(asha, VPA, 25_000)
    svc, lease = flow.svc, flow.svc.settings.worker_lease_seconds
    now = clock.now()
    killed = svc.store.atomic(
        lambda uow: uow.claim_job("killed-worker", now, lease, ["payout.create"])
    )
    assert killed is not None and killed.key == f"payout.create:{ref}"
    if reached_gateway:  # it asked the gateway, then died before recording the answer
        fake.create_payout(PayoutRequest(ref, VPA, 25_000))
    assert flow.work() == 0  # the lease still holds
    assert flow.after(lease + 1) == 1
    assert fake.made() == 1 and {c.reference for c in fake.called("create_payout")} == {ref}
    assert flow.txn(ref).state is TransactionState.PROCESSING
    later = clock.now()
    assert svc.store.atomic(lambda uow: uow.finish_job(killed.id, "killed-worker", later)) is False
    fake.set_status(ref, PayoutStatus.PROCESSED)
    flow.after(90)
    assert flow.txn(ref).state is TransactionState.SUCCESS and fake.made() == 1
    assert flow.balance(PAYOUTS_SETTLED_ACCOUNT) == 25_000


# --- top-ups --------------------------------------------------------------------------------


def top_up(flow: Flow, phone: Phone, paise: int, route: str = "tasker") -> str:
    sealed = phone.seal(format_top_up(paise, int(flow.clock.now())))
    status, text = flow.routes.send(route, phone.phone, sealed)
    assert status == 200
    ref = reference_in(text)
    assert text == replies.top_up_requested(paise, ref)
    flow.check_books()
    return ref


@ROUTES
def test_a_top_up_link_paid_credits_the_wallet_once(
    route: str, flow: Flow, asha: Phone, fake: FakeGateway
) -> None:
    ref = top_up(flow, asha, 50_000, route)
    txn = flow.txn(ref)
    assert (txn.kind, txn.state, txn.channel) == (
        TransactionKind.TOP_UP,
        TransactionState.PENDING,
        route,
    )
    assert flow.world.balance(ASHA) == 100_000 and fake.calls == []

    assert flow.work() == 1
    link = fake.links[ref]
    assert link.amount == 50_000 and flow.txn(ref).state is TransactionState.PROCESSING
    assert flow.sms(ref) == [replies.top_up_link(50_000, link.short_url, ref)]
    assert flow.world.balance(ASHA) == 100_000

    paid = fake.link_paid_webhook(ref, event_id="evt_paid")
    assert flow.webhook(paid) == "credited"
    assert flow.webhook(paid) == "duplicate"
    assert flow.webhook(fake.link_paid_webhook(ref, event_id="evt_paid_again")) == "stale"
    assert flow.world.balance(ASHA) == 150_000
    assert flow.txn(ref).state is TransactionState.SUCCESS
    assert len(flow.entries(ref)) == 1
    assert flow.sms(ref)[-1] == replies.credited(50_000, ref, 150_000)
    assert len(flow.sms(ref)) == 2


@pytest.mark.parametrize("event", ["payment_link.expired", "payment_link.cancelled"])
def test_an_expired_or_cancelled_link_closes_the_top_up_and_moves_nothing(
    event: str, flow: Flow, asha: Phone, fake: FakeGateway
) -> None:
    ref = top_up(flow, asha, 50_000, "tasker")
    assert flow.work() == 1
    link = fake.links[ref]
    entity = {"id": link.provider_id, "entity": "payment_link", "amount": 50_000,
              "amount_paid": 0, "currency": "INR", "status": event.split(".")[1],
              "reference_id": ref}  # fmt: skip
    accounts = flow.snapshot()[0]
    assert flow.webhook(fake.webhook(event, "payment_link", entity)) == "closed"
    txn = flow.txn(ref)
    assert (
        txn.state is TransactionState.FAILED and txn.reason == f"payment link {event.split('.')[1]}"
    )
    assert flow.world.balance(ASHA) == 100_000 and flow.entries(ref) == []
    # a late "paid" for a closed link credits nothing
    assert flow.webhook(fake.link_paid_webhook(ref, event_id="evt_late")) == "stale"
    assert flow.world.balance(ASHA) == 100_000
    assert flow.snapshot()[0] == accounts


def test_a_paid_link_for_an_unknown_reference_or_another_kind_credits_nothing(
    flow: Flow, asha: Phone, fake: FakeGateway
) -> None:
    payout = processing_payout(flow, asha)
    flow.user(RAVI, rupees=0, name="Ravi")
    transfer, _ = flow.pay(asha, RAVI, 1_000)
    before = flow.snapshot()
    for ref in ("ZZZZZZZZZZ", payout, transfer):
        assert flow.webhook(fake.link_paid_webhook(ref, 50_000)) == "unknown reference"
    assert flow.snapshot() == before
    assert flow.world.balance(ASHA) == 74_000 and flow.world.balance(RAVI) == 1_000


def test_a_payout_event_naming_a_wallet_transfer_changes_nothing(
    flow: Flow, asha: Phone, fake: FakeGateway
) -> None:
    flow.user(RAVI, rupees=0, name="Ravi")
    transfer, _ = flow.pay(asha, RAVI, 1_000)
    before = flow.snapshot()
    for status in ("reversed", "failed", "processed"):
        entity = {"id": "pout_forged", "entity": "payout", "amount": 1_000, "status": status,
                  "reference_id": transfer, "failure_reason": "forged"}  # fmt: skip
        assert flow.webhook(fake.webhook(f"payout.{status}", "payout", entity)) == "stale"
    assert flow.snapshot() == before
    assert flow.world.balance(ASHA) == 99_000 and flow.world.balance(RAVI) == 1_000


# --- reconciliation -------------------------------------------------------------------------


def test_reconcile_reports_a_clean_day_then_a_mismatch_and_stores_the_report(
    flow: Flow, asha: Phone, fake: FakeGateway, runner: FlaskCliRunner, clock: FakeClock
) -> None:
    settled = processing_payout(flow, asha)
    fake.set_status(settled, PayoutStatus.PROCESSED)
    flow.webhook(fake.payout_webhook(settled))
    fake.fail_next(1, PayoutRejected("invalid VPA"))
    refused, _ = flow.pay(asha, "nobody@okaxis", 1_000)
    flow.work()
    in_flight = processing_payout(flow, asha, 5_000)
    top_up(flow, asha, 20_000)
    day = datetime.fromtimestamp(clock.now(), flow.svc.tz).date().isoformat()

    clean = runner.invoke(args=["reconcile", "--date", day])
    assert clean.exit_code == 0, clean.output
    assert "3 checked, 0 mismatches" in clean.output
    stored = flow.svc.store.read(lambda uow: uow.get_meta(f"reconcile:{day}"))
    assert stored is not None
    report = json.loads(stored)
    assert report["date"] == day and report["checked"] == 3 and report["mismatches"] == []
    assert report["top_ups"]["PENDING"] + report["top_ups"]["PROCESSING"] == 1

    fake.set_status(settled, PayoutStatus.FAILED, "reversed by bank, no webhook")
    fake.payouts[in_flight] = dataclasses.replace(fake.payouts[in_flight], amount=4_000)
    dirty = runner.invoke(args=["reconcile", "--date", day])
    assert dirty.exit_code == 1, dirty.output
    assert "3 checked, 2 mismatches" in dirty.output
    stored = flow.svc.store.read(lambda uow: uow.get_meta(f"reconcile:{day}"))
    assert stored is not None
    mismatches = {m["reference"]: m for m in json.loads(stored)["mismatches"]}
    assert mismatches[settled] == {
        "reference": settled,
        "problem": "state differs",
        "ours": "SUCCESS",
        "theirs": "failed",
    }
    assert mismatches[in_flight]["problem"] == "amount differs"
    assert refused not in mismatches
    # reconciliation reports; it moves no money
    assert (
        flow.txn(settled).state is TransactionState.SUCCESS and flow.world.balance(ASHA) == 70_000
    )

    other_day = runner.invoke(args=["reconcile", "--date", "2026-11-24"])
    assert other_day.exit_code == 0 and "0 checked, 0 mismatches" in other_day.output

    # a payout on the gateway's books that no transaction of ours asked for
    fake.foreign.append(Payout("NOTOURS123", "pout_STRANGER01", PayoutStatus.PROCESSED, 9_900))
    found = runner.invoke(args=["reconcile", "--date", "2026-11-24"])
    assert found.exit_code == 1 and "0 checked, 1 mismatches" in found.output
    assert '"problem": "missing in ledger"' in found.output and "pout_STRANGER01" in found.output


def test_the_worker_command_runs_the_due_jobs_once(
    flow: Flow, asha: Phone, fake: FakeGateway, runner: FlaskCliRunner
) -> None:
    ref, _ = flow.pay(asha, VPA, 25_000)
    result = runner.invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert re.search(r"ran [1-9][0-9]* jobs", result.output)
    assert fake.made() == 1 and flow.txn(ref).state is TransactionState.PROCESSING
    flow.check_books()


def test_reconcile_without_a_date_checks_the_clocks_local_day(
    flow: Flow, asha: Phone, fake: FakeGateway, runner: FlaskCliRunner, clock: FakeClock
) -> None:
    processing_payout(flow, asha)
    result = runner.invoke(args=["reconcile"])
    assert result.exit_code == 0, result.output
    assert "1 checked, 0 mismatches" in result.output
    assert flow.svc.store.read(lambda uow: uow.get_meta("reconcile:2026-11-25")) is not None


# --- the sandbox gateway (the default) ------------------------------------------------------


class TestSandbox:
    """No gateway injected: the app builds the sandbox from settings, as a developer would."""

    @pytest.fixture
    def gateway(self) -> None:
        return None

    @pytest.fixture
    def settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        return {**settings, "sandbox_settle_seconds": 0, "sandbox_webhook_url": ""}

    @staticmethod
    def sandbox(flow: Flow) -> SandboxGateway:
        gateway = flow.svc.gateway
        assert isinstance(gateway, SandboxGateway)
        return gateway

    def test_success_and_failure_vpas_settle_and_refund(self, flow: Flow, asha: Phone) -> None:
        ok, _ = flow.pay(asha, "success@razorpay", 10_000, "twilio")
        bad, _ = flow.pay(asha, "failure@razorpay", 20_000, "tasker")
        assert flow.world.balance(ASHA) == 70_000
        flow.work()
        flow.after(90)
        assert flow.txn(ok).state is TransactionState.SUCCESS
        assert flow.txn(bad).state is TransactionState.FAILED and "declined" in flow.txn(bad).reason
        assert flow.world.balance(ASHA) == 90_000
        assert flow.balance(PAYOUTS_SETTLED_ACCOUNT) == 10_000
        assert flow.balance(PAYOUTS_IN_FLIGHT_ACCOUNT) == 0
        # the sandbox's own webhooks arrive late: verified, recorded, and they change nothing
        sandbox = self.sandbox(flow)
        for ref in (ok, bad):
            signed = sandbox.payout_event(ref)
            assert signed is not None
            assert flow.webhook(signed) == "stale"
            assert flow.webhook(signed) == "duplicate"
        assert flow.world.balance(ASHA) == 90_000
        assert len(flow.entries(ok)) == 2 and len(flow.entries(bad)) == 2
        assert flow.sms(bad) == [replies.payout_refunded(20_000, "fa****@razorpay", bad, 90_000)]

    def test_a_slow_sandbox_settles_by_its_webhook_or_by_a_status_check(
        self, flow: Flow, asha: Phone, clock: FakeClock
    ) -> None:
        flow.svc.settings = dataclasses.replace(flow.svc.settings, sandbox_settle_seconds=60)
        flow.svc.__dict__.pop("gateway", None)  # built on first use, now with the new delay
        ok, _ = flow.pay(asha, "success@razorpay", 10_000)
        bad, _ = flow.pay(asha, "failure@razorpay", 20_000)
        flow.work()
        assert flow.txn(ok).state is flow.txn(bad).state is TransactionState.PROCESSING
        sandbox = self.sandbox(flow)
        assert sandbox.payout_event(ok) is None  # nothing to tell yet
        clock.advance(60)
        signed = sandbox.payout_event(ok)
        assert signed is not None and flow.webhook(signed) == "applied"
        assert flow.txn(ok).state is TransactionState.SUCCESS
        assert flow.after(30) == 2  # both status checks: one has nothing to do, one finds out
        assert flow.txn(bad).state is TransactionState.FAILED
        assert flow.world.balance(ASHA) == 90_000

    def test_sandbox_pay_link_credits_a_top_up_once(
        self, flow: Flow, asha: Phone, runner: FlaskCliRunner
    ) -> None:
        ref = top_up(flow, asha, 30_000, "twilio")
        flow.work()
        assert flow.txn(ref).state is TransactionState.PROCESSING
        assert "https://sandbox.invalid/plink_sandbox" in flow.sms(ref)[0]
        paid = runner.invoke(args=["sandbox", "pay-link", ref.lower()])
        assert paid.exit_code == 0 and f"{ref.lower()}: credited" in paid.output
        flow.check_books()
        assert flow.world.balance(ASHA) == 130_000
        again = runner.invoke(args=["sandbox", "pay-link", ref])
        assert again.exit_code == 0 and "duplicate" in again.output
        assert flow.world.balance(ASHA) == 130_000
        unknown = runner.invoke(args=["sandbox", "pay-link", "ZZZZZZZZZZ"])
        assert unknown.exit_code != 0 and "no payment link for ZZZZZZZZZZ" in unknown.output
        flow.check_books()


def test_workers_share_the_gateways_rate_limit_without_using_attempts(
    flow: Flow, asha: Phone, fake: FakeGateway, clock: FakeClock
) -> None:
    """RazorpayX takes 5-10 payout calls a second: at 2 a second, three payouts due at once make
    two calls now and the third a second later, and waiting is not a failed attempt."""
    flow.svc.settings = dataclasses.replace(flow.svc.settings, gateway_requests_per_second=2)
    refs = [flow.pay(asha, VPA, 1_000)[0] for _ in range(3)]
    worker = Worker(flow.svc, HANDLERS)
    while worker.run_once():
        pass
    assert len(fake.called("create_payout")) == 2
    [waiting] = [
        j
        for j in flow.svc.store.read(lambda uow: uow.jobs(JobStatus.PENDING))
        if j.kind == "payout.create"
    ]
    assert waiting.attempts == 0 and waiting.last_error == "gateway rate limit"
    clock.advance(1)
    while worker.run_once():
        pass
    assert len(fake.called("create_payout")) == 3 and fake.made() == 3
    assert all(flow.txn(ref).state is TransactionState.PROCESSING for ref in refs)
