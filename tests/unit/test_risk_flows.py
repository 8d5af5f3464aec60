"""The risk controls through the public service functions, on the in-memory store: rate limits
before the PIN, refusal replies limited, the geofence holding a payment, expiry of a hold nobody
reviewed, and a device key burned by a reused counter."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from app.services import admin, kpis, review, risk, staff
from app.services.inbound import BURNED_KEY_ACTION, handle_inbound_sms
from sms import replies
from sms.inbound import InboundSms, Route
from sms.instructions import format_pay
from storage.models import HELD_ACCOUNT, StaffRole, TransactionState
from tests.support import FakeClock, Phone
from tests.unit.conftest import NOON, Money, build_services

ASHA, RAVI, OTHER = "+919876543210", "+919812345678", "+919800000003"
HOME = "12.9716,77.5946"  # Bengaluru
FAR = "13.4213,77.5946"  # 50 km due north


def located_pay(money: Money, phone: Phone, payee: str, paise: int, where: str) -> str:
    """A PAY instruction that carries the phone's location (`lat,lon`)."""
    lat, lon = (Decimal(x) for x in where.split(","))
    return phone.seal(format_pay(payee, paise, phone.pin, int(money.clock.now()), "", (lat, lon)))


def test_the_eleventh_instruction_in_a_minute_is_refused_before_the_pin(money: Money) -> None:
    asha, _ = money.user(ASHA, rupees=100), money.user(RAVI)
    for _ in range(10):
        assert money.sms(ASHA, asha.balance(at=money.clock.now())).outcome == "balance"
    refused = money.sms(ASHA, asha.balance(pin="0000", at=money.clock.now()))
    assert refused.outcome == "rate_limited"
    assert refused.text == replies.rate_limited("12:01")  # NOON is 12:00 local; one token: 6 s
    user = money.read(lambda uow: uow.get_user_by_phone(ASHA))
    assert user.failed_pin_attempts == 0  # the wrong PIN was never looked at
    assert money.pay(asha, RAVI, 100).outcome == "rate_limited"  # nor money logic
    assert money.balance(ASHA) == 10_000
    money.clock.advance(6)  # a token back
    assert money.pay(asha, RAVI, 100).outcome == "paid"


def test_refusal_replies_to_one_number_are_limited(money: Money) -> None:
    answers = [money.sms("+919000000009", "SP1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").text
               for _ in range(10)]  # fmt: skip
    assert answers[:6] == [replies.UNREADABLE] * 6 and answers[6:] == [""] * 4
    money.clock.advance(3600)
    assert money.sms("+919000000009", "HELP").text == replies.HELP


def test_a_silenced_refusal_stays_silent_when_the_same_sms_comes_again(money: Money) -> None:
    """The reply stored with a frame is the one its sender got: a duplicate delivery (the other
    route, a phone forwarding twice) answers alike, silence included, and is not counted."""
    asha = money.user(ASHA, rupees=100)
    for _ in range(10):
        money.sms(ASHA, asha.balance(at=money.clock.now()))
    refusals = [asha.balance(at=money.clock.now()) for _ in range(7)]  # over the user's rate
    answers = [money.sms(ASHA, body) for body in refusals]
    assert [a.outcome for a in answers] == ["rate_limited"] * 6 + ["rate_limited:silenced"]
    again = [money.sms(ASHA, body) for body in refusals]
    assert [a.text for a in again] == [a.text for a in answers]
    assert {a.outcome for a in again} == {"duplicate"} and again[-1].text == ""


def test_a_twilio_retry_is_answered_from_the_log_and_counts_nothing_again(money: Money) -> None:
    """A retried delivery (the same MessageSid) runs once to the unique key that refuses its
    log record, is undone, and runs again to find the record: what the undone run took (here
    a refusal reply from the number's allowance) is not taken."""
    sid = "SM" + "cd" * 16
    first = money.sms(OTHER, "hello", sid=sid)
    assert (first.outcome, first.text) == ("plain_text", replies.USAGE)
    retries = [money.sms(OTHER, "hello", sid=sid) for _ in range(8)]
    assert {(r.outcome, r.text) for r in retries} == {("redelivered", replies.USAGE)}
    others = [money.sms(OTHER, "hello").outcome for _ in range(6)]  # new MessageSids
    assert others == ["plain_text"] * 5 + ["plain_text:silenced"]  # six replies an hour
    (logged,) = [r for r in money.read(lambda uow: uow.inbound_for(OTHER)) if r.deliveries > 1]
    assert (logged.provider_message_id, logged.deliveries) == (sid, 9)


def test_a_forwarding_phone_has_its_own_bucket(money: Money) -> None:
    admin.add_tasker_gateway(money.svc, "shop-1")
    outcomes = []
    for _ in range(601):  # SMSPAY_RISK_GATEWAY_PER_MINUTE: 600
        sms = InboundSms(Route.TASKER, ASHA, "HELP", money.clock.now(), gateway_id="shop-1")
        outcomes.append(handle_inbound_sms(money.svc, sms).outcome)
    assert outcomes[:6] == ["help"] * 6 and set(outcomes[6:600]) == {"help:silenced"}
    assert outcomes[600] == "rate_limited_gateway:silenced"


def test_a_paid_sms_forwarded_again_past_the_phones_rate_gets_its_first_answer(
    money: Money,
) -> None:
    """The forwarding phone's bucket refuses new work with "try later, no money moved"; the
    same SMS again (the phone retrying a forward) is not new work and must not be told that,
    or its sender, believing nothing was paid, pays twice. Only the identical frame from its
    device's phone gets the stored answer."""
    asha, _ = money.user(ASHA, rupees=100), money.user(RAVI)
    admin.add_tasker_gateway(money.svc, "shop-1")

    def forward(sender: str, body: str) -> tuple[str, str]:
        sms = InboundSms(Route.TASKER, sender, body, money.clock.now(), gateway_id="shop-1")
        reply = handle_inbound_sms(money.svc, sms)
        return reply.outcome, reply.text

    first = asha.seal(format_pay(RAVI, 500, asha.pin, int(NOON)), counter=7)
    outcome, paid = forward(ASHA, first)
    assert outcome == "paid"
    for _ in range(599):  # the rest of SMSPAY_RISK_GATEWAY_PER_MINUTE (600), from another number
        forward(OTHER, "HELP")
    assert forward(ASHA, first) == ("duplicate", paid)
    new = asha.seal(format_pay(RAVI, 500, asha.pin, int(NOON)), counter=8)
    assert forward(ASHA, new) == ("rate_limited_gateway", replies.TRY_LATER)
    twin = asha.seal(format_pay(RAVI, 900, asha.pin, int(NOON)), counter=7)  # other bytes
    assert forward(ASHA, twin) == ("rate_limited_gateway", replies.TRY_LATER)
    assert forward(RAVI, first)[0] == "rate_limited_gateway"  # not its device's phone
    assert money.balances(ASHA, RAVI) == (9_500, 500)
    assert money.read(lambda uow: uow.get_device(asha.key_id)).active
    money.check_books()


def test_a_payment_fifty_km_from_the_usual_area_is_held_then_approved(money: Money) -> None:
    asha, _ = money.user(ASHA, rupees=1000), money.user(RAVI)
    for _ in range(3):
        assert money.sms(ASHA, located_pay(money, asha, RAVI, 1_000, HOME)).outcome == "paid"
        money.clock.advance(3600)
    reply = money.sms(ASHA, located_pay(money, asha, RAVI, 5_000, FAR))
    assert reply.outcome == "flagged"
    assert (
        reply.text.startswith("SMSPay: Rs 50.00 to ") and "held for a security check" in reply.text
    )
    txn = money.txn(reply.reference)
    assert txn.state is TransactionState.FLAGGED and (txn.lat, txn.lon) == (13.4213, 77.5946)
    assert "flag geofence: 50.0 km from the usual area" in txn.risk
    assert money.states(reply.reference) == ["PENDING", "FLAGGED"]
    assert money.balances(ASHA, RAVI, HELD_ACCOUNT) == (100_000 - 8_000, 3_000, 5_000)
    admin, _ = staff.add_staff(money.svc, "ada", StaffRole.ADMIN, "test")
    review.approve(money.svc, admin, reply.reference or "", "called the payer")
    assert money.balances(ASHA, RAVI, HELD_ACCOUNT) == (92_000, 8_000, 0)
    money.check_books()


def test_a_hold_nobody_reviews_is_refunded_by_the_worker(money: Money) -> None:
    asha, _ = money.user(ASHA, rupees=1000), money.user(RAVI)
    for _ in range(3):
        money.sms(ASHA, located_pay(money, asha, RAVI, 1_000, HOME))
        money.clock.advance(3600)
    ref = money.sms(ASHA, located_pay(money, asha, RAVI, 5_000, FAR)).reference
    money.clock.advance(money.svc.settings.risk_flag_expiry_seconds - 1)
    assert money.work() == 0 and money.txn(ref).state is TransactionState.FLAGGED
    money.clock.advance(1)
    assert money.work() == 1
    assert money.states(ref) == ["PENDING", "FLAGGED", "FAILED"]
    assert money.txn(ref).reason.startswith("flag_expired")
    assert money.balances(ASHA, RAVI, HELD_ACCOUNT) == (97_000, 3_000, 0)
    assert any("not checked in time" in body for body in money.outbox_to(ASHA))
    actions = [e.action for e in money.read(lambda uow: uow.audit_entries(actor="risk"))]
    assert actions == ["payment.expire", "payment.flag"]
    money.check_books()


def test_counter_reuse_with_another_ciphertext_burns_the_key(money: Money) -> None:
    asha, _ = money.user(ASHA, rupees=100), money.user(RAVI)
    first = asha.seal(format_pay(RAVI, 500, asha.pin, int(NOON)), counter=7)
    paid = money.sms(ASHA, first)
    assert paid.outcome == "paid"
    again = money.sms(ASHA, first)  # the identical SMS: a harmless duplicate, the same reply
    assert (again.outcome, again.text) == ("duplicate", paid.text)
    reused = asha.seal(format_pay(RAVI, 900, asha.pin, int(NOON)), counter=7)
    burned = money.sms(ASHA, reused)
    assert (burned.outcome, burned.text) == ("key_burned", replies.KEY_BURNED)
    assert money.balance(ASHA) == 9_500  # the Rs 9 never moved, and was not answered "Paid Rs 5"
    assert not money.read(lambda uow: uow.get_device(asha.key_id)).active
    alarm = money.read(lambda uow: uow.audit_entries(actor="risk"))
    assert [e.action for e in alarm] == [BURNED_KEY_ACTION] and alarm[0].target == ASHA
    later = money.sms(ASHA, asha.pay(RAVI, 100, at=money.clock.now()))
    assert later.outcome == "unknown_device"  # further frames from the key are refused


def test_the_dashboard_separates_mistakes_and_counts_what_the_controls_did(money: Money) -> None:
    asha, _ = money.user(ASHA, rupees=1000), money.user(RAVI)
    for _ in range(3):
        money.sms(ASHA, located_pay(money, asha, RAVI, 1_000, HOME))
        money.clock.advance(3600)
    assert money.sms(ASHA, located_pay(money, asha, RAVI, 5_000, FAR)).outcome == "flagged"
    assert money.pay(asha, "+919000000404", 100).outcome == "refused:payee_not_registered"
    assert money.pay(asha, RAVI, 100, pin="0000").outcome == "wrong_pin"
    assert money.pay(asha, RAVI, 2_000_000).outcome == "refused:over_payment_limit"
    balances = [money.sms(ASHA, asha.balance(at=money.clock.now())).outcome for _ in range(9)]
    assert balances == ["balance"] * 6 + ["rate_limited"] * 3  # 4 + 6 in this minute
    first = asha.seal(format_pay(RAVI, 100, asha.pin, int(money.clock.now())), counter=900)
    money.clock.advance(60)
    money.sms(ASHA, first)
    money.sms(ASHA, asha.seal(format_pay(RAVI, 200, asha.pin, int(money.clock.now())), counter=900))

    today = kpis.dashboard(money.svc).today
    assert (today.succeeded, today.failed) == (5, 2)  # cash-in, 3 at home, the first Rs 1
    assert (today.user_mistakes, today.refused_by_rules, today.system_failures) == (2, 1, 0)
    assert today.service_success_rate == 1.0  # nothing failed on the service's side
    assert today.rate_limited == 3 and today.flags == {"geofence": 1}
    burned = kpis.dashboard(money.svc).burned_keys
    assert [b.target for b in burned] == [ASHA]


def test_the_new_payee_daily_cap_counts_payments_older_than_the_recent_ones_read(
    tmp_path: Path, clock: FakeClock
) -> None:
    """The rules read the payer's newest HISTORY_LIMIT payments; after more than that many in
    24 h, what a new payee already got is summed on its own, so the cap still holds."""
    money = Money(
        build_services(
            tmp_path, clock, risk_user_per_minute=0, risk_velocity_payees=0,
            risk_amount_multiple=0,
        ),
        clock,
    )  # fmt: skip
    asha = money.user(ASHA, rupees=20_000)
    money.user(RAVI)
    money.user(OTHER)
    for _ in range(4):  # Rs 4,000 of the Rs 5,000 a new payee may get in 24 h
        clock.advance(1)
        assert money.pay(asha, RAVI, 100_000).outcome == "paid"
    for _ in range(risk.HISTORY_LIMIT):  # pushes those four out of the newest payments read
        clock.advance(1)
        assert money.pay(asha, OTHER, 100).outcome == "paid"
    clock.advance(1)
    assert money.pay(asha, RAVI, 100_000).outcome == "paid"  # Rs 5,000: the cap, not over it
    clock.advance(1)
    refused = money.pay(asha, RAVI, 100)
    assert refused.outcome == "refused:over_new_payee_daily_limit"
    assert money.txn(refused.reference).state is TransactionState.FAILED
    money.check_books()


def test_the_velocity_rule_counts_payees_older_than_the_recent_ones_read(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Five payees, then more than HISTORY_LIMIT payments to one of them inside the hour: a
    sixth payee is still the sixth in the hour, and the payment is held."""
    money = Money(
        build_services(
            tmp_path, clock, risk_user_per_minute=0, risk_amount_multiple=0,
            limit_new_payee_per_day_paise=10**9,
        ),
        clock,
    )  # fmt: skip
    asha = money.user(ASHA, rupees=20_000)
    payees = [f"+91980000001{i}" for i in range(6)]
    for payee in payees:
        money.user(payee)
    for payee in payees[:5]:
        clock.advance(1)
        assert money.pay(asha, payee, 100).outcome == "paid"
    for _ in range(risk.HISTORY_LIMIT):
        clock.advance(1)
        assert money.pay(asha, payees[0], 100).outcome == "paid"
    clock.advance(1)
    held = money.pay(asha, payees[5], 100)
    assert money.txn(held.reference).state is TransactionState.FLAGGED
    assert "velocity_payees" in money.txn(held.reference).risk
    money.check_books()
