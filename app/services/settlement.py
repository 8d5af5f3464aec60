"""Settlement: money out to UPI ids (payouts) and in through payment links (top-ups).

A payout is three steps, each one unit of work that moves money, records the state change and
queues what comes next (jobs and status SMS) together:

1. `start_payout` (inside the inbound SMS's unit of work): debit the payer into the payouts
   in-flight account, record the transaction PENDING, queue a `payout.create` job.
2. the worker runs `payout.create`: asks the gateway under our reference as idempotency key.
   An unknown outcome (timeout, 5xx) is retried; a retry first fetches the payout by reference,
   so it never pays twice. Accepted -> PROCESSING and status polls are queued.
3. a webhook or a poll moves it on: SUCCESS (in-flight -> settled) or FAILED with the refund
   (in-flight -> payer, or settled -> payer for a reversal). States only move forward, so
   duplicate and out-of-order events change nothing.

A top-up: `request_top_up` records it PENDING and queues `topup.link`; the worker creates the
payment link and SMSes it (PROCESSING); the link's webhook credits the wallet (SUCCESS) or closes
it unpaid (FAILED). Money moves and states change through app/services/ledger.py.
"""

from __future__ import annotations

import logging

from app.bootstrap import Services
from app.request_id import traced
from app.services import ledger
from app.services.common import Outcome, new_reference
from app.worker import Retry
from gateway_clients.base import (
    GatewayEvent,
    GatewayUnavailable,
    PaymentLinksUnsupported,
    Payout,
    PayoutRejected,
    PayoutRequest,
    PayoutStatus,
)
from sms import replies
from sms.numbers import mask_party
from storage.contract import UnitOfWork
from storage.models import (
    Job,
    OutboundSms,
    ProviderEvent,
    Transaction,
    TransactionKind,
    TransactionState,
    User,
    user_account,
)

log = logging.getLogger(__name__)

# which transaction states each gateway status may move a payout on from: narrower than
# ledger.TRANSITIONS (a FLAGGED payout's money is held and waits for staff, not the gateway)
_MOVES: dict[PayoutStatus, tuple[TransactionState, ...]] = {
    PayoutStatus.PROCESSING: (TransactionState.PENDING,),
    PayoutStatus.PROCESSED: (TransactionState.PENDING, TransactionState.PROCESSING),
    PayoutStatus.FAILED: (TransactionState.PENDING, TransactionState.PROCESSING),
    PayoutStatus.REVERSED: (
        TransactionState.PENDING,
        TransactionState.PROCESSING,
        TransactionState.SUCCESS,
    ),
}


def start_payout(
    svc: Services, uow: UnitOfWork, txn: Transaction, payer: User, now: float
) -> Outcome:
    """Debit the payer into the in-flight account and queue the payout (caller's unit of work)."""
    ledger.payout_in_flight(uow, txn, now)
    ledger.move(uow, txn, TransactionState.PENDING, "debited; payout queued", now)
    uow.enqueue_job(
        "payout.create",
        f"payout.create:{txn.reference}",
        traced({"reference": txn.reference}),
        now,
        now,
    )
    balance = uow.balance(payer.account)
    text = replies.payout_started(txn.amount, mask_party(txn.payee or ""), txn.reference, balance)
    return Outcome("payout_queued", text, txn.reference)


def gateway_turn(svc: Services) -> Retry | None:
    """None when this worker may call the gateway now; else wait, without using an attempt.
    One token bucket shared by every worker keeps all of them under the provider's rate."""
    rate, now = svc.settings.gateway_requests_per_second, svc.clock.now()
    bucket = f"gateway:{svc.gateway.name}"
    if svc.store.atomic(lambda uow: uow.take_tokens(bucket, rate, rate, 1, now)):
        return None
    return Retry("gateway rate limit", after=1 / rate, counts=False)


def run_payout_create(svc: Services, job: Job) -> Retry | None:
    """Worker: ask the gateway for the payout, once, under our reference."""
    ref = job.payload["reference"]
    txn = svc.store.read(lambda uow: uow.get_transaction(ref))
    if txn is None or txn.state is not TransactionState.PENDING:
        return None  # already moved on (a webhook, a poll or another worker got there)
    gateway = svc.gateway
    if (wait := gateway_turn(svc)) is not None:
        return wait
    assert txn.payee is not None
    source = f"{gateway.name} create"
    try:
        # a previous attempt may have reached the gateway before it timed out (a revived job
        # starts again at attempt 1 but keeps its last error)
        retrying = job.attempts > 1 or bool(job.last_error)
        payout = gateway.fetch_payout(ref) if retrying else None
        if payout is None:
            payee = gateway.validate_payee(txn.payee)  # before any money leaves: NOT_CHECKED if off
            if payee.valid is False:
                raise PayoutRejected("the UPI id is not valid")
            if payee.name:
                source += f" to {payee.name}"  # the payee's bank's name for it, for support
            request = PayoutRequest(ref, txn.payee, txn.amount, payee_name=payee.name)
            payout = gateway.create_payout(request)
    except PayoutRejected as exc:
        payout = Payout(ref, "", PayoutStatus.FAILED, txn.amount, exc.reason)
    except GatewayUnavailable as exc:
        return Retry(f"gateway outcome unknown: {exc}")
    if payout.reference != ref:  # an answer about another payout tells us nothing of ours
        return Retry(f"gateway answered about {payout.reference or 'no reference'}")
    apply_payout(svc, payout, source=source)
    return None


def run_payout_poll(svc: Services, job: Job) -> Retry | None:
    """Worker: one status check (NPCI: first after 90 s, at most 3 in 2 hours)."""
    ref, check = job.payload["reference"], int(job.payload["check"])
    txn = svc.store.read(lambda uow: uow.get_transaction(ref))
    if txn is None or txn.state not in (TransactionState.PENDING, TransactionState.PROCESSING):
        return None
    if (wait := gateway_turn(svc)) is not None:
        return wait
    try:
        payout = svc.gateway.fetch_payout(ref)
    except GatewayUnavailable as exc:
        return Retry(f"status check failed: {exc}")
    if payout is not None and payout.reference != ref:
        return Retry(f"status check answered about {payout.reference or 'no reference'}")
    if payout is not None and payout.status is not PayoutStatus.PROCESSING:
        apply_payout(svc, payout, source=f"{svc.gateway.name} status check {check}")
        return None
    schedule = svc.settings.poll_schedule
    if check < len(schedule):
        since = float(job.payload.get("since", txn.created_at))
        at = since + schedule[check]
        svc.store.atomic(lambda uow: _queue_poll(uow, ref, check + 1, since, at, svc.clock.now()))
    else:
        log.warning(
            "payout %s still processing after %d checks; left to reconciliation", ref, check
        )
    return None


def _queue_poll(uow: UnitOfWork, ref: str, check: int, since: float, at: float, now: float) -> None:
    payload = traced({"reference": ref, "check": check, "since": since})
    uow.enqueue_job("payout.poll", f"payout.poll:{ref}:{check}", payload, at, now)


def apply_payout(svc: Services, payout: Payout, source: str) -> bool:
    """Move a payout's transaction forward to what the gateway says; False if stale."""
    now = svc.clock.now()
    return svc.store.atomic(lambda uow: _apply(svc, uow, payout, source, now))


def _apply(svc: Services, uow: UnitOfWork, payout: Payout, source: str, now: float) -> bool:
    txn = uow.get_transaction(payout.reference)
    if (
        txn is None
        or txn.kind is not TransactionKind.PAYOUT
        or txn.state not in _MOVES[payout.status]
    ):
        return False
    assert txn.payer_id is not None and txn.payer_phone is not None
    payer, amount, ref = user_account(txn.payer_id), txn.amount, txn.reference
    payee = mask_party(txn.payee or "")
    detail = f"{source}: {payout.status.value} {payout.provider_id}".strip()
    if payout.status is PayoutStatus.PROCESSING:
        ledger.move(uow, ref, TransactionState.PROCESSING, detail, now)
        # checks count from when the gateway took the payout, which retries may have delayed
        first = svc.settings.poll_schedule[0]
        _queue_poll(uow, ref, 1, now, now + first, now)
        return True
    if payout.status is PayoutStatus.PROCESSED:
        ledger.payout_settled(uow, txn, now)
        ledger.move(
            uow,
            ref,
            TransactionState.SUCCESS,
            detail + (f" utr {payout.utr}" if payout.utr else ""),
            now,
        )
        text = replies.payout_done(amount, payee, ref, uow.balance(payer))
    else:
        ledger.refund(uow, txn, now)  # from payouts in flight, or settled after a reversal
        reason = payout.failure_reason or payout.status.value
        ledger.move(uow, ref, TransactionState.FAILED, f"{detail}; refunded: {reason}"[:300], now)
        text = replies.payout_refunded(amount, payee, ref, uow.balance(payer))
    uow.enqueue_sms(OutboundSms(txn.payer_phone, text, now, ref))
    return True


def handle_gateway_event(svc: Services, event: GatewayEvent) -> str:
    """A verified webhook event, applied once; returns what became of it."""
    now = svc.clock.now()
    provider = svc.gateway.name

    def unit(uow: UnitOfWork) -> str:
        if uow.find_provider_event(provider, event.event_id) is not None:
            return "duplicate"
        if event.kind == "payout":
            payout = Payout(
                event.reference,
                event.provider_id,
                PayoutStatus(event.status),
                event.amount,
                event.failure_reason,
                event.utr,
            )
            outcome = "applied" if _apply(svc, uow, payout, f"{provider} webhook", now) else "stale"
        elif event.kind == "payment_link" and event.status == "paid":
            outcome = _credit_top_up(uow, event, now)
        elif event.kind == "payment_link":  # expired or cancelled: no money came, none moves
            outcome = _close_top_up(uow, event, now)
        else:
            outcome = "ignored"
        uow.insert_provider_event(
            ProviderEvent(
                provider, event.event_id, event.kind, event.reference, event.status, now, outcome
            )
        )
        return outcome

    outcome = svc.store.atomic(unit)
    log.info("gateway event %s %s ref=%s: %s", event.kind, event.status, event.reference, outcome)
    return outcome


def request_top_up(
    svc: Services, uow: UnitOfWork, user: User, amount: int, channel: str, now: float
) -> Outcome:
    """TOP: record a top-up and queue the payment link (the worker creates it and SMSes it)."""
    ref = new_reference()
    uow.insert_transaction(
        Transaction(
            ref,
            TransactionKind.TOP_UP,
            amount,
            TransactionState.PENDING,
            now,
            now,
            payee_id=user.id,
            payee=user.phone,
            channel=channel,
        ),
        "payment link requested",
    )
    uow.enqueue_job("topup.link", f"topup.link:{ref}", traced({"reference": ref}), now, now)
    return Outcome("top_up_requested", replies.top_up_requested(amount, ref), ref)


def run_top_up_link(svc: Services, job: Job) -> Retry | None:
    """Worker: create the payment link and SMS it to the user."""
    ref = job.payload["reference"]
    txn = svc.store.read(lambda uow: uow.get_transaction(ref))
    if txn is None or txn.state is not TransactionState.PENDING or txn.payee is None:
        return None
    if (wait := gateway_turn(svc)) is not None:
        return wait
    expire_by = int(svc.clock.now()) + svc.settings.top_up_link_ttl_seconds
    try:
        link = svc.gateway.create_payment_link(
            ref, txn.amount, txn.payee, f"SMS Pay top-up {ref}", expire_by
        )
    except PaymentLinksUnsupported:
        _refuse_top_up(svc, ref)
        return None
    except GatewayUnavailable as exc:
        return Retry(f"payment link not created: {exc}")
    now = svc.clock.now()

    def unit(uow: UnitOfWork) -> None:
        current = uow.get_transaction(ref)
        if current is None or current.state is not TransactionState.PENDING:
            return
        ledger.move(
            uow, ref, TransactionState.PROCESSING, f"payment link {link.provider_id} sent", now
        )
        uow.enqueue_sms(
            OutboundSms(
                txn.payee or "", replies.top_up_link(txn.amount, link.short_url, ref), now, ref
            )
        )

    svc.store.atomic(unit)
    return None


def _refuse_top_up(svc: Services, ref: str) -> None:
    """This rail makes no payment links: say so at once instead of retrying for hours."""
    now = svc.clock.now()

    def unit(uow: UnitOfWork) -> None:
        txn = uow.get_transaction(ref)
        if txn is None or txn.state is not TransactionState.PENDING or txn.payee is None:
            return
        ledger.move(
            uow, ref, TransactionState.FAILED, "top-ups by link are not available on this rail", now
        )
        uow.enqueue_sms(OutboundSms(txn.payee, replies.TOP_UP_UNAVAILABLE, now, ref))

    svc.store.atomic(unit)


def _close_top_up(uow: UnitOfWork, event: GatewayEvent, now: float) -> str:
    txn = uow.get_transaction(event.reference)
    if txn is None or txn.kind is not TransactionKind.TOP_UP:
        return "unknown reference"
    if txn.state not in (TransactionState.PENDING, TransactionState.PROCESSING):
        return "stale"
    ledger.move(uow, txn, TransactionState.FAILED, f"payment link {event.status}", now)
    return "closed"


def _credit_top_up(uow: UnitOfWork, event: GatewayEvent, now: float) -> str:
    txn = uow.get_transaction(event.reference)
    if txn is None or txn.kind is not TransactionKind.TOP_UP or txn.payee_id is None:
        return "unknown reference"
    if txn.state not in (TransactionState.PENDING, TransactionState.PROCESSING):
        return "stale"
    if event.amount != txn.amount:
        log.error("top-up %s paid %d, expected %d", txn.reference, event.amount, txn.amount)
    account = user_account(txn.payee_id)
    ledger.top_up(uow, txn, now, paid=event.amount)
    ledger.move(uow, txn, TransactionState.SUCCESS, f"payment link paid {event.provider_id}", now)
    text = replies.credited(event.amount, txn.reference, uow.balance(account))
    uow.enqueue_sms(OutboundSms(txn.payee or "", text, now, txn.reference))
    return "credited"
