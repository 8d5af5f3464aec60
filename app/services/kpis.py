"""The dashboard's numbers: today and the last 7 local days, and the health of the phones.

Volume is how many transactions were created; amount is what the successful ones moved; the
success rate is over those that reached a final state. Time to final state comes from each
transaction's history (its first SUCCESS or FAILED event), over the newest SETTLE_SAMPLE of them.
A Tasker phone or a device that has gone quiet, and a device whose replay window shows missing
counters (SMS that never arrived), is how a phone that silently stopped forwarding shows up.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from app.bootstrap import Services
from app.services.holds import RISK_ACTOR
from app.services.inbound import BURNED_KEY_ACTION
from app.services.workers import WorkerHealth, read_health
from crypto.replay import WINDOW_SIZE, ReplayWindow
from sms.numbers import mask_phone
from storage.contract import UnitOfWork
from storage.models import AuditEntry, TransactionGroup, TransactionState

DAYS = 7
SETTLE_SAMPLE = 10_000
DEVICES_SHOWN = 20
RISK_AUDIT_READ = 5_000  # newest risk audit entries read for flags by rule and burned keys
# Why a payment failed, by whose doing (the reason's code, up to its first ':')
USER_MISTAKES = frozenset({"insufficient_funds", "self_payment", "payee_not_registered"})
PIN_MISTAKES = frozenset({"wrong_pin", "wrong_pin_locked", "locked"})  # inbound outcomes
RULE_REFUSALS = frozenset(
    {"over_payment_limit", "over_daily_limit", "over_monthly_limit", "over_new_payee_limit",
     "over_new_payee_daily_limit", "flag_expired", "rejected by staff", "reversed by staff"}
)  # fmt: skip


@dataclass(frozen=True)
class PeriodKpis:
    """Transactions created in one period."""

    label: str
    since: float
    until: float
    count: int = 0
    amount: int = 0
    succeeded: int = 0
    failed: int = 0
    success_rate: float | None = None
    failures: dict[str, int] = field(default_factory=dict)
    channels: dict[str, int] = field(default_factory=dict)
    median_seconds: float | None = None
    p95_seconds: float | None = None
    user_mistakes: int = 0  # refused for the user's own mistake, wrong PINs included
    refused_by_rules: int = 0  # caps, and holds rejected or expired
    system_failures: int = 0  # everything else that failed: the service's own
    service_success_rate: float | None = None  # successes over successes and system failures
    rate_limited: int = 0  # instructions refused by a token bucket
    flags: dict[str, int] = field(default_factory=dict)  # payments held, by rule


@dataclass(frozen=True)
class GatewayHealth:
    """A Tasker phone and when it last forwarded an SMS."""

    id: str
    last_seen_at: float | None
    silent: bool


@dataclass(frozen=True)
class DeviceHealth:
    """A user's phone with missing counters in its window, or that has gone quiet."""

    key_id: int
    phone: str  # masked
    highest_counter: int
    gaps: int
    last_seen_at: float | None
    silent: bool


@dataclass(frozen=True)
class Kpis:
    """Everything on the dashboard."""

    generated_at: float
    today: PeriodKpis
    week: PeriodKpis
    days: list[PeriodKpis]
    gateways: list[GatewayHealth]
    devices: list[DeviceHealth]
    devices_active: int
    devices_with_gaps: int
    devices_silent: int
    workers: list[WorkerHealth] = field(default_factory=list)  # heard from in the last day
    burned_keys: list[AuditEntry] = field(default_factory=list)  # newest first


def counter_gaps(window: ReplayWindow) -> int:
    """Counters below the highest, inside the 64-wide window, that never arrived."""
    span = min(WINDOW_SIZE, window.highest)  # counters start at 1
    return sum(1 for i in range(span) if not window.bitmap >> i & 1)


def percentile(values: list[float], p: float) -> float | None:
    """The nearest-rank percentile (p in 0..100), or None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def _period(label: str, since: float, until: float, groups: list[TransactionGroup]) -> PeriodKpis:
    failures: Counter[str] = Counter()
    channels: Counter[str] = Counter()
    count = amount = succeeded = failed = 0
    for g in groups:
        count += g.count
        channels[g.channel.split(":")[0] or "other"] += g.count
        if g.state is TransactionState.SUCCESS:
            succeeded += g.count
            amount += g.amount
        elif g.state is TransactionState.FAILED:
            failed += g.count
            failures[g.reason or "unknown"] += g.count
    finished = succeeded + failed
    return PeriodKpis(
        label, since, until, count, amount, succeeded, failed,
        succeeded / finished if finished else None,
        dict(failures.most_common()), dict(channels.most_common()),
    )  # fmt: skip


def _with_times(p: PeriodKpis, seconds: list[float]) -> PeriodKpis:
    return replace(p, median_seconds=percentile(seconds, 50), p95_seconds=percentile(seconds, 95))


def _with_risk(p: PeriodKpis, outcomes: dict[str, int], risk: list[AuditEntry]) -> PeriodKpis:
    """Split the failures by whose doing, and add what the risk controls did in the period."""
    mistakes = sum(n for r, n in p.failures.items() if r in USER_MISTAKES)
    mistakes += sum(n for o, n in outcomes.items() if o in PIN_MISTAKES)
    by_rules = sum(n for r, n in p.failures.items() if r in RULE_REFUSALS)
    system = sum(n for r, n in p.failures.items() if r not in USER_MISTAKES | RULE_REFUSALS)
    flags: Counter[str] = Counter()
    for a in risk:
        if a.action == "payment.flag" and p.since <= a.at < p.until:
            rules = a.reason.split(":")[1] if a.reason.startswith("flagged:") else "other"
            flags.update(rules.split(","))
    judged = p.succeeded + system
    return replace(
        p, user_mistakes=mistakes, refused_by_rules=by_rules, system_failures=system,
        service_success_rate=p.succeeded / judged if judged else None,
        rate_limited=sum(n for o, n in outcomes.items() if o.startswith("rate_limited")),
        flags=dict(flags.most_common()),
    )  # fmt: skip


def dashboard(svc: Services) -> Kpis:
    """Today's and the last 7 days' KPIs, and the phones that need a look."""
    now = svc.clock.now()
    settings = svc.settings
    today = datetime.fromtimestamp(now, svc.tz).date()
    starts = [_start(svc, today - timedelta(days=DAYS - 1 - i)) for i in range(DAYS + 1)]

    def read(uow: UnitOfWork) -> Kpis:
        days, all_groups = [], []
        for i in range(DAYS):
            groups = uow.transaction_groups(starts[i], starts[i + 1])
            all_groups += groups
            label = datetime.fromtimestamp(starts[i], svc.tz).strftime("%a %d %b")
            days.append(_period(label, starts[i], starts[i + 1], groups))
        week = _period("last 7 days", starts[0], starts[-1], _merge(all_groups))
        week = _with_times(week, uow.settle_seconds(starts[0], starts[-1], SETTLE_SAMPLE))
        day = _with_times(days[-1], uow.settle_seconds(starts[-2], starts[-1], SETTLE_SAMPLE))
        risk = uow.audit_entries(RISK_AUDIT_READ, 0, actor=RISK_ACTOR)
        week = _with_risk(week, uow.inbound_outcomes(starts[0], starts[-1]), risk)
        day = _with_risk(day, uow.inbound_outcomes(starts[-2], starts[-1]), risk)
        burned = [a for a in risk if a.action == BURNED_KEY_ACTION and a.at >= starts[0]]
        tasker_quiet = settings.kpi_tasker_silent_minutes * 60
        gateways = [
            GatewayHealth(g.id, g.last_seen_at,
                          g.last_seen_at is None or now - g.last_seen_at > tasker_quiet)
            for g in uow.gateways()
        ]  # fmt: skip
        device_quiet = settings.kpi_device_silent_hours * 3600
        devices = [
            DeviceHealth(d.key_id, mask_phone(d.phone), d.window.highest, counter_gaps(d.window),
                         d.last_seen_at,
                         d.last_seen_at is not None and now - d.last_seen_at > device_quiet)
            for d in uow.devices() if d.active
        ]  # fmt: skip
        flagged = [d for d in devices if d.gaps or d.silent]
        flagged.sort(key=lambda d: (not d.silent, -d.gaps, d.key_id))
        return Kpis(
            now, day, week, days, gateways,
            flagged[:DEVICES_SHOWN], len(devices), sum(1 for d in devices if d.gaps),
            sum(1 for d in devices if d.silent), read_health(svc, uow), burned,
        )  # fmt: skip

    return svc.store.read(read)


def _start(svc: Services, day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=svc.tz).timestamp()


def _merge(groups: list[TransactionGroup]) -> list[TransactionGroup]:
    totals: dict[tuple[TransactionState, str, str], tuple[int, int]] = {}
    for g in groups:
        count, amount = totals.get((g.state, g.channel, g.reason), (0, 0))
        totals[(g.state, g.channel, g.reason)] = (count + g.count, amount + g.amount)
    return [TransactionGroup(s, c, r, n, a) for (s, c, r), (n, a) in totals.items()]
