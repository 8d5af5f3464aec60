"""Property: no sequence of instructions lets a user pay more than a cap allows: per payment, per
local day, per local month, and to a payee first paid in the last 24 hours (per payment and in
those 24 hours). Small caps so that the search reaches them; every payment by SMS."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from app.services import payments
from storage.models import TransactionState
from tests.support import FakeClock
from tests.unit.conftest import NOON, Money, build_services

ASHA = "+919876543210"
PAYEES = ("+919800000001", "+919800000002", "+919800000003", "+919800000004")
CAPS = {
    "limit_per_payment_paise": 5_000,
    "limit_per_day_paise": 12_000,
    "limit_per_month_paise": 30_000,
    "limit_new_payee_per_payment_paise": 2_000,
    "limit_new_payee_per_day_paise": 3_000,
}
steps = st.tuples(
    st.integers(0, len(PAYEES) - 1),
    st.integers(500, 6_000),
    st.sampled_from([6, 6, 60, 600, 3_600, 86_400, 3 * 86_400]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps, min_size=10, max_size=60))
def test_no_sequence_of_payments_gets_past_a_cap(
    tmp_path_factory: pytest.TempPathFactory, plan: list[tuple[int, int, int]]
) -> None:
    clock = FakeClock(NOON)
    svc = build_services(tmp_path_factory.getbasetemp(), clock, **CAPS)
    money = Money(svc, clock)
    asha = money.user(ASHA, rupees=1_000)
    for payee in PAYEES:
        money.user(payee)
    for u, amount, wait in plan:
        clock.advance(wait)
        payments.credit_wallet(svc, ASHA, amount, "keep the wallet full", "agent")
        reply = money.pay(asha, PAYEES[u], amount)
        event(reply.outcome)

    payer_id = money.read(lambda uow: uow.get_user_by_phone(ASHA).id)
    txns = money.read(lambda uow: uow.recent_payments(payer_id, 0, 10_000))
    live = [t for t in txns if t.state != TransactionState.FAILED]
    by_day: dict[Any, int] = defaultdict(int)
    by_month: dict[Any, int] = defaultdict(int)
    for t in live:
        local = datetime.fromtimestamp(t.created_at, svc.tz)
        by_day[local.date()] += t.amount
        by_month[(local.year, local.month)] += t.amount
        assert t.amount <= CAPS["limit_per_payment_paise"]
    assert max(by_day.values(), default=0) <= CAPS["limit_per_day_paise"]
    assert max(by_month.values(), default=0) <= CAPS["limit_per_month_paise"]
    for payee in PAYEES:
        to_payee = sorted((t for t in live if t.payee == payee), key=lambda t: t.created_at)
        if not to_payee:
            continue
        first = to_payee[0].created_at
        new = [t for t in to_payee if t.created_at - first < 86_400]
        assert all(t.amount <= CAPS["limit_new_payee_per_payment_paise"] for t in new)
        assert sum(t.amount for t in new) <= CAPS["limit_new_payee_per_day_paise"]
    money.check_books()
