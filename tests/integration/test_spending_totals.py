"""Running spending totals (storage/contract/spending.py) always equal the sums they replace.

`spent` must answer what `debited_since` sums, whatever came before: payments made and refused,
held, settled, rejected, refunded or reversed, across a day's and a month's end; payments from
before the totals existed (no row), a row of an earlier day or month, a clock behind the row.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage.contract import Store, UnitOfWork
from storage.models import Transaction, TransactionKind, TransactionState
from tests.conftest import EVERY_STORE

pytestmark = EVERY_STORE

DAY, MONTH = 86_400.0, 30 * 86_400.0  # any periods do: the store is given their starts
START = 1_795_000_000.0
S = TransactionState
COMMITTED = (S.PENDING, S.PROCESSING, S.SUCCESS, S.FLAGGED)
_payers = itertools.count()


@pytest.fixture
def store(svc: Any) -> Store:
    s: Store = svc.store
    return s


def starts(now: float) -> tuple[float, float]:
    return now - now % DAY, now - now % MONTH


def payment(ref: str, payer: str, amount: int, at: float, state: S = S.PENDING) -> Transaction:
    return Transaction(
        ref, TransactionKind.TRANSFER, amount, state, at, at, payer_id=payer,
        payer_phone="+911111111111", payee="+912222222222",
    )  # fmt: skip


def sums(uow: UnitOfWork, payer: str, now: float) -> tuple[int, int]:
    day, month = starts(now)
    return uow.debited_since(payer, day), uow.debited_since(payer, month)


def check(store: Store, payer: str, now: float) -> None:
    day, month = starts(now)
    totals, reference = store.atomic(
        lambda uow: (uow.spent(payer, day, month), sums(uow, payer, now))
    )
    assert totals == reference


# one step: what happens, an amount or which earlier payment, and how much time passes first
steps = st.tuples(
    st.sampled_from(["pay", "pay", "pay", "fail", "hold", "settle", "check", "ask_earlier"]),
    st.integers(1, 5_000),
    st.sampled_from([1.0, 600.0, 3600.0, 5 * 3600.0, 13 * 3600.0, DAY, 9 * DAY, 31 * DAY]),
)
legacy = st.lists(
    st.tuples(st.integers(1, 5_000), st.floats(0, 2 * MONTH), st.sampled_from(list(S))),
    max_size=6,
)


@settings(
    max_examples=40, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
@given(legacy=legacy, plan=st.lists(steps, min_size=1, max_size=25))
def test_the_totals_equal_the_sums_after_any_history(
    store: Store, legacy: list[tuple[int, float, S]], plan: list[tuple[str, int, float]]
) -> None:
    payer = f"p{next(_payers)}"  # a new payer per example: the store outlives examples
    refs = (f"{payer}-{i}" for i in itertools.count())
    made: list[Transaction] = []
    now = START + 2 * MONTH

    def unit(uow: UnitOfWork) -> None:  # payments from before the totals: no row is written
        for amount, ago, state in legacy:
            t = payment(next(refs), payer, amount, now - ago, state)
            uow.insert_transaction(t, "before the totals")
            made.append(t)

    store.atomic(unit)
    for action, n, wait in plan:
        now += wait
        if action == "pay":
            t = payment(next(refs), payer, n, now)
            day, month = starts(now)

            def opened(
                uow: UnitOfWork, t: Transaction = t, d: float = day, m: float = month
            ) -> None:
                uow.add_spent(payer, t.amount, d, m)
                uow.insert_transaction(t, "made")

            store.atomic(opened)
            made.append(t)
        elif action in ("fail", "hold", "settle") and made:
            t = made[n % len(made)]
            to = {"fail": S.FAILED, "hold": S.FLAGGED, "settle": S.SUCCESS}[action]

            def moved(uow: UnitOfWork, ref: str = t.reference, to: S = to, at: float = now) -> None:
                current = uow.get_transaction(ref)
                assert current is not None
                if current.state is S.FAILED:
                    return  # final
                uow.set_state(ref, to, "moved", at)
                if to is S.FAILED:
                    uow.remove_spent(payer, current.amount, current.created_at)

            store.atomic(moved)
        elif action == "check":
            check(store, payer, now)
        elif action == "ask_earlier":  # a clock behind the one that wrote the row
            check(store, payer, now - n * 60)
    check(store, payer, now)


def test_a_missing_row_is_summed_once_then_kept(store: Store) -> None:
    now = START + 10 * DAY + 3600
    day, month = starts(now)

    def before(uow: UnitOfWork) -> None:
        uow.insert_transaction(payment("OLD1", "u1", 100, day - 10), "c")  # this month
        uow.insert_transaction(payment("OLD2", "u1", 200, day + 10), "c")  # today
        uow.insert_transaction(payment("OLD3", "u1", 400, day + 20, S.FAILED), "c")
        uow.insert_transaction(payment("OLD4", "u1", 800, month - 10), "c")  # last month

    store.atomic(before)
    assert store.atomic(lambda uow: uow.spent("u1", day, month)) == (200, 300)
    store.atomic(lambda uow: uow.add_spent("u1", 50, day, month))  # before its insert
    store.atomic(lambda uow: uow.insert_transaction(payment("NEW1", "u1", 50, now), "c"))
    assert store.atomic(lambda uow: uow.spent("u1", day, month)) == (250, 350)
    # the next day: today's total restarts, the month's goes on
    assert store.atomic(lambda uow: uow.spent("u1", day + DAY, month)) == (0, 350)
    # a payment of yesterday refused today leaves the month's total only
    store.atomic(lambda uow: uow.remove_spent("u1", 200, day + 10))
    assert store.atomic(lambda uow: uow.spent("u1", day + DAY, month)) == (0, 150)
    # created at the very start of the day: counted in it, and taken out of it
    store.atomic(lambda uow: uow.add_spent("u1", 30, day + DAY, month))
    store.atomic(lambda uow: uow.insert_transaction(payment("NEW2", "u1", 30, day + DAY), "c"))
    assert store.atomic(lambda uow: uow.spent("u1", day + DAY, month)) == (30, 180)
    store.atomic(lambda uow: uow.set_state("NEW2", S.FAILED, "refused", day + DAY))
    store.atomic(lambda uow: uow.remove_spent("u1", 30, day + DAY))
    assert store.atomic(lambda uow: uow.spent("u1", day + DAY, month)) == (0, 150)
    # asked about an earlier day than the row holds: summed again
    store.atomic(lambda uow: uow.set_state("OLD2", S.FAILED, "refused", now))
    assert store.atomic(lambda uow: uow.spent("u1", day, month)) == (50, 150)


def test_a_payment_leaving_before_its_payer_has_a_row_is_not_counted(store: Store) -> None:
    day, month = starts(START)
    store.atomic(lambda uow: uow.insert_transaction(payment("OLD1", "u2", 100, day + 1), "c"))

    def refused(uow: UnitOfWork) -> None:
        uow.set_state("OLD1", S.FAILED, "rejected", START)
        uow.remove_spent("u2", 100, day + 1)

    store.atomic(refused)
    assert store.atomic(lambda uow: uow.spent("u2", day, month)) == (0, 0)
    assert store.atomic(lambda uow: uow.spent("nobody", day, month)) == (0, 0)
