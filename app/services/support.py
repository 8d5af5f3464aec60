"""What support staff look up: transactions by reference, phone, state and day; one transaction
with its whole timeline; one user with balance, devices, lock and limits; the flagged queue and
the audit log. Everything here only reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Generic, TypeVar

from app.bootstrap import Services
from app.services.common import start_of_day
from app.services.errors import ServiceError, UnknownUser
from app.services.kpis import counter_gaps
from sms.instructions import format_rupees
from sms.numbers import mask_phone
from storage.contract import UnitOfWork
from storage.models import (
    AuditEntry,
    Device,
    InboundRecord,
    Job,
    LedgerEntry,
    OutboundSms,
    ProviderEvent,
    Transaction,
    TransactionEvent,
    TransactionState,
    User,
)

T = TypeVar("T")
RECENT = 20  # transactions on a user's page


class UnknownTransaction(ServiceError):
    """No transaction has that reference."""


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of results; `has_next` says whether another follows."""

    items: list[T]
    page: int
    per_page: int
    has_next: bool


@dataclass(frozen=True)
class TxQuery:
    """A transaction search: every field optional; days are local and inclusive."""

    reference: str | None = None
    phone: str | None = None
    state: TransactionState | None = None
    since: date | None = None
    until: date | None = None
    page: int = 1
    per_page: int = 20


@dataclass(frozen=True)
class TimelineItem:
    """One line of a transaction's timeline, oldest first."""

    at: float
    kind: str  # state, sms_in, sms_out, ledger, job, webhook, staff
    title: str
    detail: str = ""
    status: str = ""


@dataclass(frozen=True)
class TransactionView:
    """A transaction and everything that happened to it."""

    transaction: Transaction
    events: list[TransactionEvent]
    entries: list[LedgerEntry]
    inbound: list[InboundRecord]
    outbound: list[OutboundSms]
    provider_events: list[ProviderEvent]
    jobs: list[Job]
    audit: list[AuditEntry]
    timeline: list[TimelineItem]


@dataclass(frozen=True)
class DeviceView:
    """A phone's device key record and the counters missing in its replay window."""

    device: Device
    gaps: int


@dataclass(frozen=True)
class Limits:
    """A user's payment limits and what is left of today's."""

    per_payment: int
    per_day: int
    spent_today: int
    left_today: int


@dataclass(frozen=True)
class UserView:
    """A user as support sees them."""

    user: User
    balance: int
    locked: bool
    devices: list[DeviceView]
    limits: Limits
    recent: list[Transaction]


def _day_start(svc: Services, day: date) -> float:
    return datetime.combine(day, time(), svc.tz).timestamp()


def _page(items: list[T], page: int, per_page: int) -> Page[T]:
    return Page(items[:per_page], page, per_page, len(items) > per_page)


def search(svc: Services, q: TxQuery) -> Page[Transaction]:
    """Transactions matching every given field, newest first."""
    since = _day_start(svc, q.since) if q.since else None
    until = None
    if q.until:
        until = _day_start(svc, q.until + timedelta(days=1)) if q.until < date.max else None
    offset = (q.page - 1) * q.per_page
    rows = svc.store.read(
        lambda uow: uow.search_transactions(
            phone=q.phone,
            state=q.state,
            since=since,
            until=until,
            reference=q.reference,
            limit=q.per_page + 1,
            offset=offset,
        )
    )
    return _page(rows, q.page, q.per_page)


def flagged_queue(svc: Services, page: int = 1, per_page: int = 20) -> Page[Transaction]:
    """FLAGGED payments waiting for an admin, oldest first."""
    rows = svc.store.read(
        lambda uow: uow.search_transactions(
            state=TransactionState.FLAGGED,
            oldest_first=True,
            limit=per_page + 1,
            offset=(page - 1) * per_page,
        )  # fmt: skip
    )
    return _page(rows, page, per_page)


def audit_log(
    svc: Services,
    page: int = 1,
    per_page: int = 50,
    actor: str | None = None,
    target: str | None = None,
) -> Page[AuditEntry]:
    """Audit entries, newest first."""
    rows = svc.store.read(
        lambda uow: uow.audit_entries(per_page + 1, (page - 1) * per_page, actor, target)
    )
    return _page(rows, page, per_page)


def transaction_view(svc: Services, reference: str) -> TransactionView:
    """One transaction with its states, SMS, ledger postings, jobs, gateway events and staff
    actions, merged into one timeline."""
    ref = reference.strip().upper()

    def read(uow: UnitOfWork) -> TransactionView:
        txn = uow.get_transaction(ref)
        if txn is None:
            raise UnknownTransaction(f"no transaction {ref}")
        parts = (
            uow.events(ref), uow.entries(ref), uow.inbound_for_reference(ref),
            uow.outbound_for_reference(ref), uow.provider_events_for(ref),
            uow.jobs_for_reference(ref), uow.audit_entries(200, 0, target=ref),
        )  # fmt: skip
        return TransactionView(txn, *parts, timeline=timeline(*parts, txn=txn))

    return svc.store.read(read)


def timeline(
    events: list[TransactionEvent],
    entries: list[LedgerEntry],
    inbound: list[InboundRecord],
    outbound: list[OutboundSms],
    provider_events: list[ProviderEvent],
    jobs: list[Job],
    audit: list[AuditEntry],
    txn: Transaction | None = None,
) -> list[TimelineItem]:
    """Everything that happened to a transaction, oldest first."""
    items = [TimelineItem(e.at, "state", e.state.value, e.reason, e.state.value) for e in events]
    if txn is not None and txn.risk:  # what the risk rules decided, when the payment came in
        where = f" at {txn.lat},{txn.lon}" if txn.lat is not None else ""
        lines = txn.risk.split("; ")
        verdict = next((v for v in ("refuse", "flag") if any(x.startswith(v) for x in lines)), "")
        items.append(
            TimelineItem(
                txn.created_at,
                "risk",
                f"Risk rules: {verdict or 'allow'}{where}",
                txn.risk,
                verdict or "allow",
            )
        )
    items += [
        TimelineItem(
            m.received_at,
            "sms_in",
            f"SMS in from {m.sender} via {m.route}"
            + (f" (gateway {m.gateway_id})" if m.gateway_id else ""),
            f"{m.outcome}; delivered {m.deliveries}x; reply: {m.reply}",
            m.outcome,
        )
        for m in inbound
    ]
    items += [TimelineItem(m.created_at, "sms_out", f"SMS out to {m.to}", m.body, m.status)
              for m in outbound]  # fmt: skip
    items += [
        TimelineItem(
            e.created_at,
            "ledger",
            f"Ledger entry #{e.id}",
            ", ".join(
                f"{p.account} {'+' if p.amount > 0 else '-'}{format_rupees(abs(p.amount))}"
                for p in e.postings
            ),  # fmt: skip
        )
        for e in entries
    ]
    items += [
        TimelineItem(
            j.created_at,
            "job",
            f"Gateway call {j.kind}",
            f"attempts {j.attempts}" + (f"; {j.last_error}" if j.last_error else ""),
            j.status.value,
        )  # fmt: skip
        for j in jobs
    ]
    items += [
        TimelineItem(
            p.received_at,
            "webhook",
            f"{p.provider} webhook: {p.kind} {p.status}",
            p.outcome,
            p.status,
        )  # fmt: skip
        for p in provider_events
    ]
    items += [
        TimelineItem(a.at, "staff", f"{a.action} by {a.actor}", a.reason, a.outcome) for a in audit
    ]
    order = {"sms_in": 0, "risk": 1, "state": 2, "ledger": 3, "job": 4, "webhook": 5,
             "sms_out": 6, "staff": 7}  # fmt: skip
    return sorted(items, key=lambda i: (i.at, order[i.kind]))


def user_view(svc: Services, phone: str | None = None, user_id: str | None = None) -> UserView:
    """A user's balance, devices, lock, limits and recent transactions, by phone or id."""
    now = svc.clock.now()
    settings = svc.settings

    def read(uow: UnitOfWork) -> UserView:
        user = uow.get_user_by_phone(phone) if phone else uow.get_user(user_id or "")
        if user is None:
            who = mask_phone(phone) if phone else "that id"
            raise UnknownUser(f"no user has {who}")
        spent = uow.debited_since(user.id, start_of_day(now, svc.tz))
        limits = Limits(
            settings.limit_per_payment_paise,
            settings.limit_per_day_paise,
            spent,
            max(0, settings.limit_per_day_paise - spent),
        )
        devices = [DeviceView(d, counter_gaps(d.window)) for d in uow.devices_of(user.id)]
        return UserView(
            user,
            uow.balance(user.account),
            user.locked_until is not None and user.locked_until > now,
            devices,
            limits,
            uow.search_transactions(phone=user.phone, limit=RECENT),
        )

    return svc.store.read(read)
