"""Each risk rule at and around its threshold: pure functions of the payment, the history and the
settings, on an injected time (no store, no clock)."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from app.config import RISK_RULES, ConfigError, Settings
from app.services import risk
from app.services.risk import Attempt, Past, Verdict
from storage.history import HistoryAsk, from_rows
from storage.models import RecentPayment, TransactionState

NOW = 1_795_588_200.0
BLR = (12.9716, 77.5946)  # Bengaluru
S = Settings()
RAVI = "+919812345678"


def paid(
    at: float,
    amount: int = 10_000,
    payee: str = RAVI,
    where: tuple[float, float] | None = None,
    state: TransactionState = TransactionState.SUCCESS,
) -> RecentPayment:
    lat, lon = where or (None, None)
    return RecentPayment(f"R{int(at * 1000) % 10**9:09d}", payee, amount, at, state.value, lat, lon)


class NoReads:
    """The reads `from_rows` falls back on, which a short history never needs."""

    def debited_since(self, user_id: str, since: float, payee: str | None = None) -> int:
        raise AssertionError("not read")

    def payees_paid_since(self, payer_id: str, since: float, limit: int) -> set[str]:
        raise AssertionError("not read")


def past(*recent: RecentPayment, payee: str = RAVI, **kw: Any) -> Past:
    """What `past_of` reads of a payer whose newest payments are `recent` (every part asked,
    as the stores make it from rows: storage/history.py)."""
    rows = sorted(recent, key=lambda t: -t.created_at)
    ask = HistoryAsk(
        since=NOW - risk.LOOKBACK, limit=risk.HISTORY_LIMIT, payee=payee,
        payee_since=NOW - risk.DAY, window_since=NOW - S.risk_velocity_seconds,
        payees_limit=S.risk_velocity_payees + 1, located=True,
    )  # fmt: skip
    history = from_rows("u1", rows, ask, NoReads())
    fields: dict[str, Any] = {
        "spent_today": 0, "spent_month": 0, "payee_first_paid": NOW - 10 * 86_400,
        "balance": 10**9, "paid_to_payee_24h": history.paid_to_payee,
        "payees_in_window": history.payees, "located": history.located,
    }  # fmt: skip
    fields.update(kw)
    return Past(amounts=history.amounts, **fields)


def attempt(amount: int = 10_000, payee: str = RAVI, where: tuple[float, float] | None = None,
            now: float = NOW) -> Attempt:  # fmt: skip
    lat, lon = where or (None, None)
    return Attempt(payee, amount, now, lat, lon)


def north_of(point: tuple[float, float], km: float) -> tuple[float, float]:
    """A point `km` due north (one degree of latitude is 111.195 km on the mean sphere)."""
    return point[0] + km / (risk.EARTH_KM * 3.141592653589793 / 180), point[1]


def test_haversine_matches_known_distances() -> None:
    assert risk.haversine_km(*BLR, *BLR) == 0
    assert risk.haversine_km(*BLR, *north_of(BLR, 20)) == pytest.approx(20, abs=1e-6)
    mumbai = (19.0760, 72.8777)
    assert risk.haversine_km(*BLR, *mumbai) == pytest.approx(845, abs=5)  # great-circle


@pytest.mark.parametrize(("amount", "refused"), [(1_000_000, False), (1_000_001, True)])
def test_payment_cap(amount: int, refused: bool) -> None:
    decision = risk.payment_cap(attempt(amount), past(), S)
    assert (decision is not None) is refused
    if decision:
        assert decision.verdict is Verdict.REFUSE and decision.code == "over_payment_limit"


@pytest.mark.parametrize(("spent", "refused"), [(9_990_000, False), (9_990_001, True)])
def test_daily_cap(spent: int, refused: bool) -> None:
    decision = risk.daily_cap(attempt(10_000), past(spent_today=spent), S)
    assert (decision is not None) is refused


@pytest.mark.parametrize(("spent", "refused"), [(99_990_000, False), (99_990_001, True)])
def test_monthly_cap(spent: int, refused: bool) -> None:
    decision = risk.monthly_cap(attempt(10_000), past(spent_month=spent), S)
    assert (decision is not None) is refused
    if decision:
        assert decision.code == "over_monthly_limit"


@pytest.mark.parametrize(
    ("first_paid", "amount", "refused"),
    [
        (None, 100_000, False),  # never paid: at the new-payee cap
        (None, 100_001, True),
        (NOW - 86_399, 100_001, True),  # first paid less than a day ago: still new
        (NOW - 86_400, 100_001, False),  # a day ago: known
    ],
)
def test_new_payee_payment_cap(first_paid: float | None, amount: int, refused: bool) -> None:
    decision = risk.new_payee_payment_cap(attempt(amount), past(payee_first_paid=first_paid), S)
    assert (decision is not None) is refused
    if decision:
        assert decision.code == "over_new_payee_limit"


@pytest.mark.parametrize(("already", "refused"), [(400_000, False), (400_001, True)])
def test_new_payee_daily_cap(already: int, refused: bool) -> None:
    earlier = paid(NOW - 3600, already)
    history = past(earlier, payee_first_paid=NOW - 3600)
    decision = risk.new_payee_daily_cap(attempt(100_000), history, S)
    assert (decision is not None) is refused
    other = "+919000000001"  # the same day's payments, read for another payee
    for_other = past(earlier, payee=other, payee_first_paid=NOW - 3600)
    assert for_other.paid_to_payee_24h == 0  # counted per payee
    assert risk.new_payee_daily_cap(attempt(100_000, payee=other), for_other, S) is None


def test_insufficient_balance_comes_before_the_new_payee_caps() -> None:
    judged = risk.judge(attempt(999_999), past(balance=21_000, payee_first_paid=None), S)
    assert judged.refusal is not None and judged.refusal.code == "insufficient_funds"


@pytest.mark.parametrize(("payees", "flagged"), [(5, False), (6, True)])
def test_velocity_distinct_payees(payees: int, flagged: bool) -> None:
    earlier = [paid(NOW - 60 * i, payee=f"+9190000000{i:02d}") for i in range(1, payees)]
    decision = risk.velocity_payees(attempt(payee="+919999999999"), past(*earlier), S)
    assert (decision is not None) is flagged
    if decision:
        assert decision.verdict is Verdict.FLAG and decision.facts["payees"] == payees


def test_velocity_counts_only_the_window() -> None:
    old = [paid(NOW - 3600 - i, payee=f"+9190000000{i:02d}") for i in range(1, 10)]
    assert risk.velocity_payees(attempt(), past(*old), S) is None  # an hour or more ago


@pytest.mark.parametrize(
    ("amount", "flagged"),
    [(100_000, False), (100_001, True)],  # 10 x the median of Rs 100
)
def test_amount_far_above_the_median(amount: int, flagged: bool) -> None:
    history = [paid(NOW - 86_400 * i, 10_000) for i in range(1, 6)]
    decision = risk.velocity_amount(attempt(amount), past(*history), S)
    assert (decision is not None) is flagged
    if decision:
        assert decision.facts["median_30d"] == 10_000


def test_the_median_rule_waits_for_enough_history() -> None:
    history = [paid(NOW - 86_400 * i, 10_000) for i in range(1, 5)]  # 4 < 5
    assert risk.velocity_amount(attempt(10**6), past(*history), S) is None


@pytest.mark.parametrize(("km", "flagged"), [(19.9, False), (20.1, True), (50, True)])
def test_geofence_at_twenty_km(km: float, flagged: bool) -> None:
    home = [paid(NOW - 86_400 * i, where=BLR) for i in range(1, 4)]
    decision = risk.geofence(attempt(where=north_of(BLR, km)), past(*home), S)
    assert (decision is not None) is flagged
    if decision:
        assert decision.facts["distance_km"] == pytest.approx(km, abs=0.1)
        assert decision.facts["usual_area"] == f"{BLR[0]},{BLR[1]}"


def test_geofence_needs_a_usual_area_and_a_location() -> None:
    two = [paid(NOW - 86_400 * i, where=BLR) for i in range(1, 3)]  # 2 < 3 located payments
    assert risk.geofence(attempt(where=north_of(BLR, 50)), past(*two), S) is None
    three = [*two, paid(NOW - 3 * 86_400, where=BLR)]
    assert risk.geofence(attempt(), past(*three), S) is None  # the instruction has no location


def test_a_usual_area_set_by_staff_wins_over_learning() -> None:
    home = [paid(NOW - 86_400 * i, where=BLR) for i in range(1, 4)]
    chennai = (13.0827, 80.2707)
    moved = past(*home, area=chennai)
    assert risk.usual_area(moved, S) == chennai
    assert risk.geofence(attempt(where=chennai), moved, S) is None
    decision = risk.geofence(attempt(where=BLR), past(area=chennai), S)  # no history needed
    assert decision is not None and decision.facts["usual_area"] == "13.0827,80.2707"


def test_the_usual_area_is_a_median_and_ignores_flagged_payments() -> None:
    home = [paid(NOW - 86_400 * i, where=BLR) for i in range(1, 4)]
    away = north_of(BLR, 300)
    held = [paid(NOW - 3600 * i, where=away, state=TransactionState.FLAGGED) for i in range(1, 9)]
    trip = paid(NOW - 7200, where=away)
    assert risk.usual_area(past(*home, *held, trip), S) == BLR


@pytest.mark.parametrize(("minutes", "flagged"), [(10, False), (9, True)])
def test_impossible_travel(minutes: float, flagged: bool) -> None:
    last = paid(NOW - minutes * 60, where=BLR)
    decision = risk.travel(attempt(where=north_of(BLR, 49.9)), past(last), S)  # 300 km/h
    assert (decision is not None) is flagged


def test_rules_switched_off_say_nothing_but_the_balance_always_speaks() -> None:
    home = [paid(NOW - 86_400 * i, where=BLR) for i in range(1, 4)]
    far = attempt(where=north_of(BLR, 50), now=NOW + 86_400)
    assert risk.judge(far, past(*home), S).verdict is Verdict.FLAG
    off = replace(S, risk_rules_off="geofence, travel")
    assert risk.judge(far, past(*home), off).verdict is Verdict.ALLOW
    assert risk.judge(far, past(*home), replace(S, risk_geofence_km=0)).verdict is Verdict.ALLOW
    broke = replace(S, risk_rules_off="balance")
    assert risk.judge(attempt(), past(balance=0), broke).verdict is Verdict.REFUSE


def test_the_judgement_keeps_every_flag_and_stops_at_a_refusal() -> None:
    home = [paid(NOW - 86_400 * i, 10_000, where=BLR) for i in range(1, 6)]
    judged = risk.judge(attempt(200_000, where=north_of(BLR, 50), now=NOW), past(*home), S)
    assert [d.code for d in judged.flags] == ["velocity_amount", "geofence"]  # 50 km in a day
    assert judged.code() == "flagged:velocity_amount,geofence"
    assert "flag geofence: 50.0 km from the usual area" in judged.summary()
    refused = risk.judge(attempt(2_000_000), past(*home), S)
    assert [d.code for d in refused.decisions] == ["over_payment_limit"]
    assert risk.judge(attempt(), past(), S).summary() == "allow"


def test_every_rule_is_named_in_the_settings_and_in_docs_risk_md() -> None:
    assert risk.RULE_NAMES == set(RISK_RULES)
    doc = (Path(__file__).resolve().parents[2] / "docs" / "risk.md").read_text()
    for name in RISK_RULES:
        assert f"| `{name}` |" in doc, name
    for f in dataclasses.fields(Settings):
        if f.name.startswith("risk_") or f.name.startswith("limit_"):
            assert f"SMSPAY_{f.name.upper()}" in doc, f.name
    with pytest.raises(ConfigError, match="no such rule: geofense"):
        Settings.from_env({"SMSPAY_RISK_RULES_OFF": "travel,geofense"})
