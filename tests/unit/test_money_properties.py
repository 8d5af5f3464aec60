"""Property: whatever credits, payments and review decisions happen among a few users, the
ledger stays whole (the sum of all balances is zero), no wallet goes below zero, every balance is
what a plain model of the rules predicts, and each payment's money moved at most once."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from app.services import payments, review, staff
from app.services.review import WrongState
from storage.errors import InsufficientFunds
from storage.models import HELD_ACCOUNT, StaffRole, TransactionState
from tests.support import FakeClock, Phone
from tests.unit.conftest import NOON, Money, build_services

PHONES = ("+919800000001", "+919800000002", "+919800000003")
who = st.integers(0, len(PHONES) - 1)
paise = st.integers(1, 30_000)
pick = st.integers(0, 20)  # which of the payments an admin acts on (modulo how many there are)
steps = st.one_of(
    st.tuples(st.just("credit"), who, paise),
    st.tuples(st.just("pay"), who, who, paise),
    st.tuples(st.just("hold"), who, who, paise),
    st.tuples(st.just("approve"), pick),
    st.tuples(st.just("reject"), pick),
    st.tuples(st.just("decide_again"), pick),
    st.tuples(st.just("reverse"), pick),
)


class Model:
    """The rules, without a store: balances, and what each payment should have moved."""

    def __init__(self) -> None:
        self.balances = dict.fromkeys(PHONES, 0)
        self.payments: dict[str, tuple[str, str, int]] = {}  # reference: payer, payee, paise
        self.state: dict[str, TransactionState] = {}

    def refs(self, state: TransactionState) -> list[str]:
        return sorted(ref for ref, s in self.state.items() if s is state)


def expected_moves(money: Money, ref: str, model: Model) -> dict[str, int]:
    payer, payee, amount = model.payments[ref]
    accounts = {p: money.read(lambda uow, p=p: uow.get_user_by_phone(p).account) for p in PHONES}
    moves: dict[str, int] = {}
    state = model.state[ref]
    if state is TransactionState.SUCCESS:
        moves[accounts[payer]] = moves.get(accounts[payer], 0) - amount
        moves[accounts[payee]] = moves.get(accounts[payee], 0) + amount
    elif state is TransactionState.FLAGGED:
        moves = {accounts[payer]: -amount, HELD_ACCOUNT: amount}
    return {account: n for account, n in moves.items() if n}


def run(money: Money, phones: list[Phone], admin: Any, model: Model, step: tuple[Any, ...]) -> None:
    svc, kind = money.svc, step[0]
    if kind == "credit":
        _, u, amount = step
        payments.credit_wallet(svc, PHONES[u], amount, "cash", "agent")
        model.balances[PHONES[u]] += amount
    elif kind == "pay":
        _, u, v, amount = step
        reply = money.pay(phones[u], PHONES[v], amount)
        assert reply.reference is not None
        if u == v:
            assert reply.outcome == "refused:self_payment"
        elif amount > model.balances[PHONES[u]]:
            assert reply.outcome == "refused:insufficient_funds"
        else:
            assert reply.outcome == "paid"
            event("paid by SMS")
            model.balances[PHONES[u]] -= amount
            model.balances[PHONES[v]] += amount
        model.payments[reply.reference] = (PHONES[u], PHONES[v], amount)
        model.state[reply.reference] = money.txn(reply.reference).state
        if reply.outcome != "paid":
            assert model.state[reply.reference] is TransactionState.FAILED
    elif kind == "hold":
        _, u, v, amount = step
        if amount > model.balances[PHONES[u]]:
            with pytest.raises(InsufficientFunds):
                review.hold_payment(svc, PHONES[u], PHONES[v], amount, "rule")
            return
        held = review.hold_payment(svc, PHONES[u], PHONES[v], amount, "rule")
        model.balances[PHONES[u]] -= amount
        model.payments[held.reference] = (PHONES[u], PHONES[v], amount)
        model.state[held.reference] = TransactionState.FLAGGED
    elif kind in ("approve", "reject"):
        flagged = model.refs(TransactionState.FLAGGED)
        if not flagged:
            return
        ref = flagged[step[1] % len(flagged)]
        payer, payee, amount = model.payments[ref]
        if kind == "approve":
            review.approve(svc, admin, ref, "fine")
            event("approved")
            model.balances[payee] += amount
            model.state[ref] = TransactionState.SUCCESS
        else:
            review.reject(svc, admin, ref, "not fine")
            event("rejected")
            model.balances[payer] += amount
            model.state[ref] = TransactionState.FAILED
    elif kind == "decide_again":
        flagged = set(model.refs(TransactionState.FLAGGED))
        decided = [r for r in sorted(model.payments) if r not in flagged]
        if decided:
            ref = decided[step[1] % len(decided)]
            for act in (review.approve, review.reject):
                with pytest.raises(WrongState):
                    act(svc, admin, ref, "twice")
    elif kind == "reverse":
        done = model.refs(TransactionState.SUCCESS)
        if not done:
            return
        ref = done[step[1] % len(done)]
        payer, payee, amount = model.payments[ref]
        if model.balances[payee] < amount:
            with pytest.raises(WrongState):
                review.reverse(svc, admin, ref, "mistake")
            return
        review.reverse(svc, admin, ref, "mistake")
        event("reversed")
        model.balances[payee] -= amount
        model.balances[payer] += amount
        model.state[ref] = TransactionState.FAILED


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.integers(0, 100_000), min_size=3, max_size=3),
    st.lists(steps, min_size=8, max_size=30),
)
def test_the_books_stay_whole_whatever_happens(
    tmp_path_factory: pytest.TempPathFactory, start: list[int], plan: list[tuple[Any, ...]]
) -> None:
    clock = FakeClock(NOON)
    # the books under any plan; what the risk rules do is tested in test_risk_properties.py
    off = "user_rate,velocity_payees,velocity_amount,new_payee_payment_cap,new_payee_daily_cap"
    money = Money(build_services(tmp_path_factory.getbasetemp(), clock, risk_rules_off=off), clock)
    phones = [money.user(phone) for phone in PHONES]
    admin, _ = staff.add_staff(money.svc, "ada", StaffRole.ADMIN, "test")
    model = Model()
    for u, amount in enumerate(start):
        if amount:
            run(money, phones, admin, model, ("credit", u, amount))
    for step in plan:
        clock.advance(1)
        run(money, phones, admin, model, step)
        money.check_books()
        assert {p: money.balance(p) for p in PHONES} == model.balances
        for ref in model.payments:
            assert money.txn(ref).state is model.state[ref]
            assert money.moved(ref) == expected_moves(money, ref, model)
