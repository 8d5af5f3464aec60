"""Property: the payer's running totals (what the daily and monthly caps read) always equal the
sums over the payer's payments, through the service layer: payments paid and refused, holds by
hand, approvals, rejections, expiries and reversals, across local days and months. Guards the
one place a payment is opened (ledger.open_payment) and the one place it moves (ledger.move)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.services import payments, review, staff
from app.services.common import start_of_day, start_of_month
from storage.contract import UnitOfWork
from storage.models import StaffRole, TransactionState
from tests.support import FakeClock
from tests.unit.conftest import NOON, Money, build_services

ASHA = "+919876543210"
PAYEES = ("+919800000001", "+919800000002")
CAPS = {"limit_per_day_paise": 12_000, "limit_per_month_paise": 40_000}
steps = st.tuples(
    st.sampled_from(["pay", "pay", "pay", "hold", "approve", "reject", "reverse", "expire"]),
    st.integers(100, 6_000),
    st.sampled_from([6.0, 3_600.0, 10 * 3_600.0, 86_400.0, 12 * 86_400.0]),
)


def totals_and_sums(money: Money, payer_id: str) -> tuple[tuple[int, int], tuple[int, int]]:
    now, tz = money.clock.now(), money.svc.tz
    day, month = start_of_day(now, tz), start_of_month(now, tz)

    def unit(uow: UnitOfWork) -> tuple[tuple[int, int], tuple[int, int]]:
        sums = (uow.debited_since(payer_id, day), uow.debited_since(payer_id, month))
        return uow.spent(payer_id, day, month), sums

    result: tuple[tuple[int, int], tuple[int, int]] = money.svc.store.atomic(unit)
    return result


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps, min_size=5, max_size=30))
def test_the_running_totals_equal_the_sums_after_any_flow(
    tmp_path_factory: pytest.TempPathFactory, plan: list[tuple[str, int, float]]
) -> None:
    clock = FakeClock(NOON)
    svc = build_services(tmp_path_factory.getbasetemp(), clock, **CAPS)
    money = Money(svc, clock)
    asha = money.user(ASHA, rupees=2_000)
    for payee in PAYEES:
        money.user(payee)
    admin, _ = staff.add_staff(svc, "ada", StaffRole.ADMIN, "test")
    payer_id = money.read(lambda uow: uow.get_user_by_phone(ASHA).id)
    made: list[str] = []
    for action, amount, wait in plan:
        clock.advance(wait)
        mine = [money.txn(r) for r in made]
        held = [t.reference for t in mine if t.state is TransactionState.FLAGGED]
        paid = [t.reference for t in mine if t.state is TransactionState.SUCCESS]
        if action == "pay":
            made.append(money.pay(asha, PAYEES[amount % 2], amount).reference or "")
        elif action == "hold":
            made.append(review.hold_payment(svc, ASHA, PAYEES[0], amount, "test hold").reference)
        elif action == "approve" and held:
            review.approve(svc, admin, held[amount % len(held)], "called the payer")
        elif action == "reject" and held:
            review.reject(svc, admin, held[amount % len(held)], "not the payer")
        elif action == "reverse" and paid:
            review.reverse(svc, admin, paid[amount % len(paid)], "paid by mistake")
        elif action == "expire" and held:
            clock.advance(svc.settings.risk_flag_expiry_seconds)
            money.work()
        payments.credit_wallet(svc, ASHA, 6_000, "keep the wallet full", "agent")
        totals, sums = totals_and_sums(money, payer_id)
        assert totals == sums, (action, amount)
    money.check_books()
