"""The risk engine: an ordered list of rules that allow, flag or refuse a payment.

Each rule is a pure function of the payment (`Attempt`), the payer's recent history (`Past`, read
through the store by `past_of`) and the settings, and answers with a `Decision` (or None: nothing
to say). `judge` runs every rule a deployment has not switched off (SMSPAY_RISK_RULES_OFF) in
order: the first refusal wins; otherwise every flag is kept and the payment is held for review
(app/services/review.py). What was decided is stored with the transaction (`Transaction.risk`)
and its FLAGGED or FAILED event, so the timeline says why.

The rate limits (token buckets per user and per forwarding phone) act earlier, before the PIN is
checked and before any money logic: app/services/inbound.py. docs/risk.md lists every rule, its
setting, its default and where the number comes from.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from app.config import Settings
from sms import replies
from storage.contract import Transactions
from storage.contract.spending import Standing
from storage.history import HistoryAsk
from storage.models import RecentPayment, TransactionState, User


class Reads(Transactions, Protocol):
    """The parts of the unit of work `past_of` reads beside the payment's `Standing`."""


DAY = 86_400.0
LOOKBACK = 30 * DAY  # what the median and the usual area are learned from
HISTORY_LIMIT = 100  # newest payments read per decision: enough for a median and an area
NEW_PAYEE_SECONDS = DAY  # a payee first paid this recently is "new"
EARTH_KM = 6371.0088  # mean Earth radius (IUGG)


class Verdict(StrEnum):
    """What a rule says about a payment."""

    ALLOW = "allow"
    FLAG = "flag"
    REFUSE = "refuse"


@dataclass(frozen=True)
class Decision:
    """One rule's answer: a reason code (the rule), a short reason for people, and the facts."""

    verdict: Verdict
    code: str
    reason: str  # for staff: the timeline, the flagged queue
    facts: dict[str, float | str] = field(default_factory=dict)
    reply: str = ""  # for the payer, when a refusal: fits inside replies.payment_failed

    def line(self) -> str:
        """The decision as one line: `flag geofence: 52.1 km from usual area (distance_km=52.1)`."""
        facts = " ".join(f"{k}={v}" for k, v in self.facts.items())
        return f"{self.verdict.value} {self.code}: {self.reason}" + (f" ({facts})" if facts else "")


@dataclass(frozen=True)
class Attempt:
    """The payment being judged."""

    payee: str
    amount: int
    now: float
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True)
class Past:
    """What the store knows about the payer, read once per payment."""

    # the amounts of the committed payments among the payer's newest of the last 30 days (at
    # most HISTORY_LIMIT payments, every state counted), newest first
    amounts: Sequence[int]
    spent_today: int  # committed since local midnight (the payer's running total)
    spent_month: int  # committed since the first of the local month (the running total)
    payee_first_paid: float | None  # when the payer first paid this payee (not failed), or None
    balance: int = 0  # the payer's wallet now
    area: tuple[float, float] | None = None  # the usual area staff set, which wins over learning
    paid_to_payee_24h: int = 0  # committed to this payee in the last 24 h (read if it is new)
    # the payees of committed payments in the velocity window (read if the rule is on; at least
    # one more than it allows, if there are more)
    payees_in_window: frozenset[str] = frozenset()
    # the committed payments among the newest that carry a location, newest first (read only
    # for a payment that carries one: the geofence and travel rules)
    located: Sequence[RecentPayment] = ()


def past_of(
    uow: Reads,
    payer: User,
    standing: Standing,
    payee: str,
    now: float,
    s: Settings,
    located: bool = False,
) -> Past:
    """Read the payer's history for `judge` (inside the payment's unit of work), beside the
    `standing` the payment read first: only what the rules will use (the new payee's 24 hours
    if the payee is new, the velocity window's payees if that rule is on, the located payments
    if this payment has a location), a bounded number of reads, each by an index, whatever the
    length of the payer's history. `located`: the payment carries a location."""
    area = None if payer.area_lat is None or payer.area_lon is None else (
        payer.area_lat, payer.area_lon)  # fmt: skip
    first_paid = standing.first_paid
    new_payee_paid = first_paid is not None and now - first_paid < NEW_PAYEE_SECONDS
    most = s.risk_velocity_payees
    velocity_on = bool(most) and "velocity_payees" not in s.rules_off
    history = uow.payment_history(
        payer.id,
        HistoryAsk(
            since=now - LOOKBACK,
            limit=HISTORY_LIMIT,
            payee=payee,
            payee_since=now - DAY if new_payee_paid else None,
            window_since=now - s.risk_velocity_seconds if velocity_on else None,
            payees_limit=most + 1,  # one more than the rule allows tells it is exceeded
            located=located,
        ),
    )
    return Past(
        amounts=history.amounts,
        area=area,
        balance=standing.balance,
        spent_today=standing.spent_today,
        spent_month=standing.spent_month,
        payee_first_paid=first_paid,
        paid_to_payee_24h=history.paid_to_payee or 0,
        payees_in_window=history.payees or frozenset(),
        located=history.located,
    )


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance between two points in decimal degrees, in km."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_KM * math.asin(min(1.0, math.sqrt(a)))


def _settled_located(past: Past) -> list[RecentPayment]:
    """Located payments that taught the usual area: not refused, not held."""
    return [t for t in past.located if t.state != TransactionState.FLAGGED]


def usual_area(past: Past, s: Settings) -> tuple[float, float] | None:
    """The user's usual area: the one staff set, else the median latitude and longitude of their
    located payments of the last 30 days (a median, so a few payments elsewhere do not move it),
    or None if too few."""
    if past.area is not None:
        return past.area
    points = _settled_located(past)
    if len(points) < max(1, s.risk_geofence_min_points):
        return None
    lat = statistics.median(t.lat for t in points if t.lat is not None)
    lon = statistics.median(t.lon for t in points if t.lon is not None)
    return round(lat, 5), round(lon, 5)


# The rules, in order. Caps refuse; the rest flag.


def payment_cap(a: Attempt, past: Past, s: Settings) -> Decision | None:
    """Over the per-payment cap."""
    if a.amount <= s.limit_per_payment_paise:
        return None
    limit = s.limit_per_payment_paise
    return Decision(
        Verdict.REFUSE, "over_payment_limit", f"above the cap of {limit} paise a payment",
        {"amount": a.amount, "cap": limit}, replies.over_txn_limit(limit),
    )  # fmt: skip


def daily_cap(a: Attempt, past: Past, s: Settings) -> Decision | None:
    """Over the per-day cap (local day)."""
    if past.spent_today + a.amount <= s.limit_per_day_paise:
        return None
    left = max(0, s.limit_per_day_paise - past.spent_today)
    return Decision(
        Verdict.REFUSE, "over_daily_limit", f"daily cap: {left} paise left today",
        {"spent_today": past.spent_today, "cap": s.limit_per_day_paise},
        replies.over_daily_limit(left),
    )  # fmt: skip


def monthly_cap(a: Attempt, past: Past, s: Settings) -> Decision | None:
    """Over the per-month cap (local calendar month)."""
    if past.spent_month + a.amount <= s.limit_per_month_paise:
        return None
    left = max(0, s.limit_per_month_paise - past.spent_month)
    return Decision(
        Verdict.REFUSE, "over_monthly_limit", f"monthly cap: {left} paise left this month",
        {"spent_month": past.spent_month, "cap": s.limit_per_month_paise},
        replies.over_monthly_limit(left),
    )  # fmt: skip


def balance(a: Attempt, past: Past, s: Settings) -> Decision | None:
    """Not enough money in the wallet (a user mistake; judged after the caps on the request and
    before the caps on a new payee, so the payer hears the reason they can act on)."""
    if past.balance >= a.amount:
        return None
    return Decision(
        Verdict.REFUSE, "insufficient_funds", "not enough balance",
        {"amount": a.amount, "balance": past.balance}, replies.INSUFFICIENT_FUNDS,
    )  # fmt: skip


def is_new_payee(a: Attempt, past: Past) -> bool:
    """Never paid before, or first paid less than 24 hours ago."""
    first = past.payee_first_paid
    return first is None or a.now - first < NEW_PAYEE_SECONDS


def new_payee_payment_cap(a: Attempt, past: Past, s: Settings) -> Decision | None:
    """A payee first paid in the last 24 hours: a lower per-payment cap."""
    limit = s.limit_new_payee_per_payment_paise
    if not is_new_payee(a, past) or a.amount <= limit:
        return None
    return Decision(
        Verdict.REFUSE, "over_new_payee_limit", f"new payee: cap of {limit} paise a payment",
        {"amount": a.amount, "cap": limit}, replies.over_new_payee_limit(limit),
    )  # fmt: skip


def new_payee_daily_cap(a: Attempt, past: Past, s: Settings) -> Decision | None:
    """A payee first paid in the last 24 hours: a lower cap on what they get in 24 hours."""
    if not is_new_payee(a, past):
        return None
    paid = past.paid_to_payee_24h
    limit = s.limit_new_payee_per_day_paise
    if paid + a.amount <= limit:
        return None
    left = max(0, limit - paid)
    return Decision(
        Verdict.REFUSE, "over_new_payee_daily_limit", f"new payee: {left} paise left in 24 h",
        {"paid_24h": paid, "cap": limit}, replies.over_new_payee_daily_limit(left),
    )  # fmt: skip


def velocity_payees(a: Attempt, past: Past, s: Settings) -> Decision | None:
    """Many distinct payees in a short window (this payment's payee counted)."""
    most = s.risk_velocity_payees
    if not most:
        return None
    window = s.risk_velocity_seconds
    payees = {*past.payees_in_window, a.payee}
    if len(payees) <= most:
        return None
    return Decision(
        Verdict.FLAG, "velocity_payees",
        f"{len(payees)} different payees in {window // 60} min (more than {most})",
        {"payees": len(payees), "window_s": window, "most": most},
    )  # fmt: skip


def velocity_amount(a: Attempt, past: Past, s: Settings) -> Decision | None:
    """An amount far above the user's usual: more than N times their 30-day median."""
    multiple = s.risk_amount_multiple
    amounts = past.amounts
    if not multiple or len(amounts) < max(1, s.risk_amount_min_history):
        return None
    median = statistics.median(amounts)
    if a.amount <= multiple * median:
        return None
    return Decision(
        Verdict.FLAG, "velocity_amount",
        f"{a.amount / median:.1f} times the usual payment (more than {multiple})",
        {"amount": a.amount, "median_30d": int(median), "payments_30d": len(amounts)},
    )  # fmt: skip


def geofence(a: Attempt, past: Past, s: Settings) -> Decision | None:
    """Farther than N km (Haversine) from the user's usual area."""
    if not s.risk_geofence_km or a.lat is None or a.lon is None:
        return None
    area = usual_area(past, s)
    if area is None:
        return None
    km = haversine_km(area[0], area[1], a.lat, a.lon)
    if km <= s.risk_geofence_km:
        return None
    return Decision(
        Verdict.FLAG, "geofence",
        f"{km:.1f} km from the usual area (more than {s.risk_geofence_km} km)",
        {"distance_km": round(km, 1), "usual_area": f"{area[0]},{area[1]}",
         "at": f"{a.lat},{a.lon}"},
    )  # fmt: skip


def travel(a: Attempt, past: Past, s: Settings) -> Decision | None:
    """Two located payments farther apart than a person can travel in the time between them."""
    if not s.risk_travel_kmh or a.lat is None or a.lon is None:
        return None
    last = next(iter(past.located), None)
    if last is None or last.lat is None or last.lon is None:
        return None
    km = haversine_km(last.lat, last.lon, a.lat, a.lon)
    hours = max(a.now - last.created_at, 1.0) / 3600
    if km / hours <= s.risk_travel_kmh:
        return None
    return Decision(
        Verdict.FLAG, "travel",
        f"{km:.0f} km from the last payment {hours * 60:.0f} min earlier"
        f" (faster than {s.risk_travel_kmh} km/h)",
        {"distance_km": round(km, 1), "minutes": round(hours * 60, 1),
         "last": f"{last.lat},{last.lon}", "last_ref": last.reference},
    )  # fmt: skip


Rule = Callable[[Attempt, Past, Settings], "Decision | None"]

RULES: tuple[tuple[str, Rule], ...] = (
    ("payment_cap", payment_cap),
    ("daily_cap", daily_cap),
    ("monthly_cap", monthly_cap),
    ("balance", balance),
    ("new_payee_payment_cap", new_payee_payment_cap),
    ("new_payee_daily_cap", new_payee_daily_cap),
    ("velocity_payees", velocity_payees),
    ("velocity_amount", velocity_amount),
    ("geofence", geofence),
    ("travel", travel),
)
RULE_NAMES = frozenset(name for name, _ in RULES) | {"user_rate", "gateway_rate"}
ALWAYS_ON = frozenset({"balance"})  # the ledger refuses an overdraft anyway: say it in words


@dataclass(frozen=True)
class Judgement:
    """Every rule's say on one payment: the refusal, if any, else the flags (none: allowed)."""

    decisions: tuple[Decision, ...]

    @property
    def refusal(self) -> Decision | None:
        """The first refusal."""
        return next((d for d in self.decisions if d.verdict is Verdict.REFUSE), None)

    @property
    def flags(self) -> tuple[Decision, ...]:
        """Every flag."""
        return tuple(d for d in self.decisions if d.verdict is Verdict.FLAG)

    @property
    def verdict(self) -> Verdict:
        """Refuse if any rule refused, flag if any flagged, else allow."""
        if self.refusal is not None:
            return Verdict.REFUSE
        return Verdict.FLAG if self.flags else Verdict.ALLOW

    def summary(self) -> str:
        """What is stored with the transaction: every decision, one line each joined by '; '."""
        if not self.decisions:
            return "allow"
        return "; ".join(d.line() for d in self.decisions)[:1000]

    def code(self) -> str:
        """The reason code of the state change: the refusal's, or `flagged:<rule>,<rule>`."""
        if self.refusal is not None:
            return self.refusal.code
        return "flagged:" + ",".join(d.code for d in self.flags) if self.flags else "allow"


def judge(a: Attempt, past: Past, s: Settings) -> Judgement:
    """Run every rule not switched off, in order; stop at the first refusal."""
    off = s.rules_off
    found: list[Decision] = []
    for name, rule in RULES:
        if name in off and name not in ALWAYS_ON:
            continue
        decision = rule(a, past, s)
        if decision is None or decision.verdict is Verdict.ALLOW:
            continue
        found.append(decision)
        if decision.verdict is Verdict.REFUSE:
            break
    return Judgement(tuple(found))
