"""Payments the risk rules held for review: the hold, and the refund of a hold nobody reviewed.

A flagged payment's money moves payer -> held in the unit of work that flags it, so it cannot be
spent twice; the payer's reply says it is under review; an expiry job is queued in the same unit
of work. An admin approves or rejects it (app/services/review.py); if nobody has by
SMSPAY_RISK_FLAG_EXPIRY_SECONDS, the worker refunds it (`run_flag_expiry`). Each step is audited.
Staff may also set the usual area the geofence measures from (`set_usual_area`).
"""

from __future__ import annotations

from app.bootstrap import Services
from app.request_id import traced
from app.services import ledger
from app.services.common import Outcome
from app.services.errors import InvalidInput, UnknownUser
from app.services.staff import audit, check_reason
from sms import replies
from sms.numbers import mask_party, mask_phone
from storage.contract import UnitOfWork
from storage.models import Job, OutboundSms, Transaction, TransactionState, User, user_account

RISK_ACTOR = "risk"  # the audit log's actor for what the rules and their expiry job did
EXPIRY_JOB = "risk.expire"


def hold(uow: UnitOfWork, txn: Transaction, reason: str, now: float) -> None:
    """Debit the payer into the held account and mark the payment FLAGGED (caller's unit of
    work)."""
    assert txn.payer_id is not None
    ledger.hold(uow, txn, now)
    ledger.move(uow, txn, TransactionState.FLAGGED, reason, now)


def hold_flagged(
    svc: Services, uow: UnitOfWork, txn: Transaction, code: str, why: str, now: float
) -> Outcome:
    """Hold a payment the rules flagged: money to held, FLAGGED, expiry queued, audited; the
    reply tells the payer it is under review."""
    reason = f"{code}: {why}"[:300]
    hold(uow, txn, reason, now)
    ref = txn.reference
    expires = now + svc.settings.risk_flag_expiry_seconds
    uow.enqueue_job(EXPIRY_JOB, f"{EXPIRY_JOB}:{ref}", traced({"reference": ref}), expires, now)
    audit(uow, now, RISK_ACTOR, "payment.flag", ref, reason, TransactionState.FLAGGED.value)
    balance = uow.balance(user_account(txn.payer_id or ""))
    text = replies.payment_held(txn.amount, mask_party(txn.payee or ""), ref, balance)
    return Outcome(code.split(":")[0], text, ref)


def set_usual_area(
    svc: Services, actor: str, phone: str, area: tuple[float, float] | None, reason: str
) -> User:
    """Staff set the usual area the geofence measures from (None: learn it from payments
    again); audited."""
    why = check_reason(reason)
    if area is not None and not (abs(area[0]) <= 90 and abs(area[1]) <= 180):
        raise InvalidInput("the usual area is lat,lon in decimal degrees")

    def unit(uow: UnitOfWork) -> User:
        user = uow.get_user_by_phone(phone)
        if user is None:
            raise UnknownUser(f"no user has the number {mask_phone(phone)}")
        lat, lon = area if area is not None else (None, None)
        uow.set_usual_area(user.id, lat, lon)
        outcome = f"{lat},{lon}" if area is not None else "learned from payments"
        audit(uow, svc.clock.now(), actor, "user.usual_area", user.phone, why, outcome)
        updated = uow.get_user(user.id)
        assert updated is not None
        return updated

    return svc.store.atomic(unit)


def run_flag_expiry(svc: Services, job: Job) -> None:
    """Worker: refund a held payment nobody reviewed in time (nothing if it was reviewed)."""
    ref = job.payload["reference"]

    def unit(uow: UnitOfWork) -> None:
        now = svc.clock.now()
        txn = uow.get_transaction(ref)
        if txn is None or txn.state is not TransactionState.FLAGGED or txn.payer_id is None:
            return  # approved or rejected already
        ledger.refund(uow, txn, now)  # held -> payer
        reason = f"flag_expired: not reviewed in {svc.settings.risk_flag_expiry_seconds} s"
        ledger.move(uow, ref, TransactionState.FAILED, reason, now)
        balance = uow.balance(user_account(txn.payer_id))
        text = replies.held_expired(txn.amount, mask_party(txn.payee or ""), ref, balance)
        uow.enqueue_sms(OutboundSms(txn.payer_phone or "", text, now, ref))
        audit(uow, now, RISK_ACTOR, "payment.expire", ref, reason, TransactionState.FAILED.value)

    svc.store.atomic(unit)
