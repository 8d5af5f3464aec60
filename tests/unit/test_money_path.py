"""The money path end to end through the public service functions, on the in-memory store.

Cash-in, PAY by encrypted SMS (and the refusals that move nothing), the same frame delivered
twice, held payments approved, rejected and reversed, a payout settled by a gateway webhook and
one refunded. After every step: the books sum to zero and no wallet is below zero.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.bootstrap import Services
from app.services import payments, review, staff
from app.services.errors import UnknownUser
from app.services.review import WrongState
from gateway_clients.base import PayoutStatus
from sms import replies
from storage.errors import InsufficientFunds
from storage.models import (
    CASH_IN_ACCOUNT,
    HELD_ACCOUNT,
    PAYOUTS_IN_FLIGHT_ACCOUNT,
    PAYOUTS_SETTLED_ACCOUNT,
    StaffMember,
    StaffRole,
    TransactionKind,
    TransactionState,
)
from tests.support import FakeClock
from tests.unit.conftest import Money, build_services

ASHA, RAVI, MEERA = "+919876543210", "+919812345678", "+919800000001"
VPA = "ravi.k@okaxis"


@pytest.fixture
def admin(svc: Services) -> StaffMember:
    member, _ = staff.add_staff(svc, "ada", StaffRole.ADMIN, "test")
    return member


@pytest.fixture
def svc(tmp_path: Path, clock: FakeClock) -> Services:
    """The money path with the caps of payees paid before: the lower caps for new payees have
    their own tests (tests/unit/test_risk_rules.py)."""
    return build_services(
        tmp_path, clock, risk_rules_off="new_payee_payment_cap,new_payee_daily_cap"
    )


def test_cash_in_credits_the_wallet_against_the_cash_in_account(money: Money) -> None:
    money.user(ASHA)
    txn = payments.credit_wallet(money.svc, ASHA, 50_000, "cash at the counter", "agent-7")
    assert (txn.kind, txn.state) == (TransactionKind.CASH_IN, TransactionState.SUCCESS)
    assert money.balances(ASHA, CASH_IN_ACCOUNT) == (50_000, -50_000)
    assert money.states(txn.reference) == ["PENDING", "SUCCESS"]
    assert money.outbox_to(ASHA) == [replies.credited(50_000, txn.reference, 50_000)]
    money.check_books()
    with pytest.raises(UnknownUser):
        payments.credit_wallet(money.svc, RAVI, 100, "cash", "agent-7")
    money.check_books()


def test_an_sms_payment_moves_money_once_and_tells_both_sides(money: Money) -> None:
    asha, _ = money.user(ASHA, rupees=1000), money.user(RAVI)
    reply = money.pay(asha, RAVI, 25_000)
    assert reply.outcome == "paid" and "Paid Rs 250.00" in reply.text
    assert money.balances(ASHA, RAVI) == (75_000, 25_000)
    txn = money.txn(reply.reference)
    assert (txn.kind, txn.state) == (TransactionKind.TRANSFER, TransactionState.SUCCESS)
    assert (txn.payer_phone, txn.payee) == (ASHA, RAVI)
    assert money.states(reply.reference) == ["PENDING", "SUCCESS"]
    payer, payee = f"user:{txn.payer_id}", f"user:{txn.payee_id}"
    assert money.moved(reply.reference) == {payer: -25_000, payee: 25_000}
    assert any(reply.reference in body and "Rs 250.00" in body for body in money.outbox_to(RAVI))
    balance = money.sms(ASHA, asha.balance(at=money.clock.now()))
    assert balance.text == replies.balance(75_000)
    money.check_books()


def test_the_same_frame_delivered_twice_settles_once(money: Money) -> None:
    asha, _ = money.user(ASHA, rupees=100), money.user(RAVI)
    body = asha.pay(RAVI, 4_000, at=money.clock.now())
    first = money.sms(ASHA, body, sid="SM" + "ab" * 16)
    again = money.sms(ASHA, body, sid="SM" + "ab" * 16)  # Twilio retried the webhook
    other_route = money.sms(ASHA, body, route="tasker")  # the phone's forwarder sent it too
    outcomes = (first.outcome, again.outcome, other_route.outcome)
    assert outcomes == ("paid", "redelivered", "duplicate")
    assert first.text == again.text == other_route.text
    assert first.reference == again.reference == other_route.reference
    assert money.balances(ASHA, RAVI) == (6_000, 4_000)
    assert len(money.read(lambda uow: uow.entries(first.reference))) == 1
    logged = money.read(lambda uow: uow.inbound_for(ASHA))
    newest_first = [(r.route, r.outcome, r.deliveries) for r in logged]
    assert newest_first == [("tasker", "duplicate", 1), ("twilio", "paid", 2)]
    money.check_books()


@pytest.mark.parametrize(
    ("payee", "paise", "code"),
    [
        (ASHA, 100, "self_payment"),
        (MEERA, 100, "payee_not_registered"),
        (RAVI, 100_001, "insufficient_funds"),
        (RAVI, 1_000_001, "over_payment_limit"),
    ],
)
def test_a_refused_payment_is_recorded_and_moves_nothing(
    money: Money, payee: str, paise: int, code: str
) -> None:
    asha, _ = money.user(ASHA, rupees=1000), money.user(RAVI)
    reply = money.pay(asha, payee, paise)
    assert reply.outcome == f"refused:{code}" and replies.NO_MONEY_MOVED in reply.text
    assert money.states(reply.reference) == ["PENDING", "FAILED"]
    assert money.txn(reply.reference).reason == code
    assert money.moved(reply.reference) == {}
    assert money.balances(ASHA, RAVI) == (100_000, 0)
    money.check_books()


def test_the_daily_limit_counts_what_was_paid_today(money: Money) -> None:
    asha, _ = money.user(ASHA, rupees=100_000), money.user(RAVI)
    payments.credit_wallet(money.svc, ASHA, 10_000, "more cash", "agent")
    for _ in range(10):  # Rs 10,000 each: the day's Rs 1,00,000
        assert money.pay(asha, RAVI, 1_000_000).outcome == "paid"
        money.clock.advance(6)  # within the 10 instructions a minute
    over = money.pay(asha, RAVI, 100)
    assert over.outcome == "refused:over_daily_limit"
    assert replies.over_daily_limit(0) in over.text
    assert money.balances(ASHA, RAVI) == (10_000, 10_000_000)
    money.clock.advance(86_400)  # a new local day
    assert money.pay(asha, RAVI, 100).outcome == "paid"
    money.check_books()


def test_wrong_pins_move_nothing_and_lock_until_an_admin_unlocks(
    money: Money, admin: StaffMember
) -> None:
    asha, _ = money.user(ASHA, rupees=100), money.user(RAVI)
    assert money.pay(asha, RAVI, 100, pin="0000").text == replies.wrong_pin(2)
    assert money.pay(asha, RAVI, 100, pin="0000").text == replies.wrong_pin(1)
    assert money.pay(asha, RAVI, 100, pin="0000").outcome == "wrong_pin_locked"
    assert money.pay(asha, RAVI, 100).outcome == "locked"  # the right PIN, but locked
    assert money.read(lambda uow: uow.search_transactions(phone=ASHA, limit=100)) != []
    assert money.balances(ASHA, RAVI) == (10_000, 0)
    review.unlock(money.svc, admin, ASHA, "called the user")
    assert money.pay(asha, RAVI, 100).outcome == "paid"
    assert replies.UNLOCKED in money.outbox_to(ASHA)
    money.check_books()


def test_a_held_payment_approved_reaches_the_payee_once(money: Money, admin: StaffMember) -> None:
    money.user(ASHA, rupees=100)
    money.user(RAVI)
    held = review.hold_payment(money.svc, ASHA, RAVI, 3_000, "velocity rule")
    assert held.state is TransactionState.FLAGGED
    assert money.balances(ASHA, HELD_ACCOUNT, RAVI) == (7_000, 3_000, 0)
    money.check_books()
    done = review.approve(money.svc, admin, held.reference, "checked with the payer")
    assert done.state is TransactionState.SUCCESS
    assert money.balances(ASHA, HELD_ACCOUNT, RAVI) == (7_000, 0, 3_000)
    for act in (review.approve, review.reject):  # decided once: a second decision is refused
        with pytest.raises(WrongState):
            act(money.svc, admin, held.reference, "again")
    assert money.states(held.reference) == ["PENDING", "FLAGGED", "SUCCESS"]
    audited = money.read(lambda uow: uow.audit_entries(target=held.reference))
    assert [e.action for e in audited] == ["payment.approve"]
    money.check_books()


def test_a_held_payment_rejected_goes_back_to_the_payer(money: Money, admin: StaffMember) -> None:
    money.user(ASHA, rupees=100)
    money.user(RAVI)
    held = review.hold_payment(money.svc, ASHA, RAVI, 3_000, "new payee")
    done = review.reject(money.svc, admin, held.reference, "payer did not confirm")
    assert done.state is TransactionState.FAILED and done.reason.startswith("rejected by staff:ada")
    assert money.balances(ASHA, HELD_ACCOUNT, RAVI) == (10_000, 0, 0)
    assert money.moved(held.reference) == {}
    money.check_books()


def test_holding_more_than_the_balance_is_undone_whole(money: Money) -> None:
    money.user(ASHA, rupees=10)
    money.user(RAVI)
    with pytest.raises(InsufficientFunds):
        review.hold_payment(money.svc, ASHA, RAVI, 1_001, "rule")
    assert money.read(lambda uow: uow.search_transactions(phone=RAVI)) == []
    assert money.balance(ASHA) == 1_000
    money.check_books()


def test_a_reversal_returns_the_money_once_and_only_if_the_payee_still_has_it(
    money: Money, admin: StaffMember
) -> None:
    asha, ravi = money.user(ASHA, rupees=100), money.user(RAVI)
    money.user(MEERA)
    paid = money.pay(asha, RAVI, 5_000)
    reversed_ = review.reverse(money.svc, admin, paid.reference or "", "sent by mistake")
    assert reversed_.state is TransactionState.FAILED
    assert money.balances(ASHA, RAVI) == (10_000, 0)
    assert money.moved(paid.reference) == {}  # paid, then paid back
    with pytest.raises(WrongState):
        review.reverse(money.svc, admin, paid.reference or "", "again")
    second = money.pay(asha, RAVI, 5_000)
    assert money.pay(ravi, MEERA, 1_000).outcome == "paid"  # the payee spent some of it
    with pytest.raises(WrongState, match="no longer covers"):
        review.reverse(money.svc, admin, second.reference or "", "sent by mistake")
    assert money.balances(ASHA, RAVI, MEERA) == (5_000, 4_000, 1_000)
    money.check_books()


def test_a_payout_goes_out_once_and_settles_by_webhook(money: Money) -> None:
    asha = money.user(ASHA, rupees=100)
    reply = money.pay(asha, VPA, 2_500)
    ref = reply.reference or ""
    assert reply.outcome == "payout_queued"
    assert money.balances(ASHA, PAYOUTS_IN_FLIGHT_ACCOUNT) == (7_500, 2_500)
    money.stays(TransactionState.PENDING, ref)
    money.check_books()
    assert money.work() == 1
    assert len(money.gateway.called("create_payout", ref)) == 1 and money.gateway.made() == 1
    money.stays(TransactionState.PROCESSING, ref)
    assert money.payout_webhook(ref, PayoutStatus.PROCESSED) == "applied"
    money.stays(TransactionState.SUCCESS, ref)
    assert money.balances(PAYOUTS_IN_FLIGHT_ACCOUNT, PAYOUTS_SETTLED_ACCOUNT) == (0, 2_500)
    assert money.payout_webhook(ref, PayoutStatus.PROCESSED) == "duplicate"  # same event id
    assert money.states(ref) == ["PENDING", "PENDING", "PROCESSING", "SUCCESS"]
    assert money.balance(ASHA) == 7_500
    assert any(ref in body for body in money.outbox_to(ASHA))
    money.check_books()


def test_a_failed_payout_is_refunded_to_the_payer(money: Money) -> None:
    asha = money.user(ASHA, rupees=100)
    ref = money.pay(asha, VPA, 2_500).reference or ""
    money.work()
    outcome = money.payout_webhook(ref, PayoutStatus.FAILED, reason="beneficiary bank down")
    assert outcome == "applied"
    txn = money.txn(ref)
    assert txn.state is TransactionState.FAILED and "beneficiary bank down" in txn.reason
    assert money.balances(ASHA, PAYOUTS_IN_FLIGHT_ACCOUNT) == (10_000, 0)
    assert money.moved(ref) == {}
    assert money.payout_webhook(ref, PayoutStatus.PROCESSED) == "stale"  # states only go forward
    assert money.balance(ASHA) == 10_000
    money.check_books()
