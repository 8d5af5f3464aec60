"""What admins do to money and users: review FLAGGED payments, unlock, reverse, credit.

Each action is one unit of work: it checks the state it acts on, posts one balanced ledger entry
(app/services/ledger.py), moves the transaction on, queues the status SMS to the users it affects
and writes its audit entry, all or nothing. A held payment leaves FLAGGED once (approved: SUCCESS,
or PENDING for a payout on its way to the gateway; rejected: FAILED) and a reversal moves SUCCESS
to FAILED, so an action taken twice, or by two admins at once, happens once.
"""

from __future__ import annotations

from app.bootstrap import Services
from app.request_id import traced
from app.services import ledger, payments
from app.services.common import new_reference, start_of_day, start_of_month
from app.services.errors import InvalidInput, ServiceError, UnknownUser
from app.services.holds import hold
from app.services.staff import audit, check_reason, require_admin
from app.services.support import UnknownTransaction
from sms import replies
from sms.numbers import mask_party, mask_phone
from storage.contract import UnitOfWork
from storage.models import (
    OutboundSms,
    StaffMember,
    Transaction,
    TransactionKind,
    TransactionState,
    User,
    user_account,
)


class WrongState(ServiceError):
    """The transaction or user is not in a state that allows the action."""


def hold_payment(
    svc: Services, payer_phone: str, payee_phone: str, amount: int, reason: str
) -> Transaction:
    """A wallet-to-wallet payment held for review by hand (the risk rules hold through
    app/services/holds.py)."""

    def unit(uow: UnitOfWork) -> Transaction:
        now = svc.clock.now()
        payer, payee = uow.get_user_by_phone(payer_phone), uow.get_user_by_phone(payee_phone)
        if payer is None or payee is None:
            raise UnknownUser("payer and payee must be registered")
        txn = Transaction(
            new_reference(), TransactionKind.TRANSFER, amount, TransactionState.PENDING,
            now, now,
            payer_id=payer.id, payer_phone=payer.phone, payee_id=payee.id, payee=payee.phone,
            channel="risk",
        )  # fmt: skip
        day_start, month_start = start_of_day(now, svc.tz), start_of_month(now, svc.tz)
        ledger.open_payment(uow, txn, "instruction accepted", day_start, month_start)
        hold(uow, txn, reason, now)
        held = uow.get_transaction(txn.reference)
        assert held is not None
        return held

    return svc.store.atomic(unit)


def _transaction(uow: UnitOfWork, reference: str) -> Transaction:
    txn = uow.get_transaction(reference.strip().upper())
    if txn is None:
        raise UnknownTransaction(f"no transaction {reference.strip().upper()}")
    return txn


def _flagged(uow: UnitOfWork, reference: str) -> Transaction:
    txn = _transaction(uow, reference)
    if txn.state is not TransactionState.FLAGGED:
        raise WrongState(f"{txn.reference} is {txn.state.value}, not FLAGGED")
    if txn.payer_id is None or txn.payer_phone is None:
        raise WrongState(f"{txn.reference} has no payer to hold money for")
    return txn


def _done(uow: UnitOfWork, reference: str) -> Transaction:
    final = uow.get_transaction(reference)
    assert final is not None
    return final


def approve(svc: Services, staff: StaffMember, reference: str, reason: str) -> Transaction:
    """Let a held payment go on: to the payee's wallet, or out to the gateway for a payout."""
    require_admin(staff)
    why = check_reason(reason)

    def unit(uow: UnitOfWork) -> Transaction:
        now = svc.clock.now()
        txn = _flagged(uow, reference)
        ref, amount, payer = txn.reference, txn.amount, user_account(txn.payer_id or "")
        note = f"approved by staff:{staff.name}: {why}"[:300]
        if txn.kind is TransactionKind.PAYOUT:
            ledger.release(uow, txn, now)  # held -> payouts in flight
            ledger.move(uow, ref, TransactionState.PENDING, note + "; payout queued", now)
            uow.enqueue_job(
                "payout.create", f"payout.create:{ref}", traced({"reference": ref}), now, now
            )
        elif txn.kind is TransactionKind.TRANSFER and txn.payee_id is not None:
            payee_account = user_account(txn.payee_id)
            ledger.release(uow, txn, now)  # held -> payee
            ledger.move(uow, ref, TransactionState.SUCCESS, note, now)
            payee_phone = txn.payee or ""
            uow.enqueue_sms(OutboundSms(payee_phone, replies.received(
                amount, mask_phone(txn.payer_phone or ""), ref, uow.balance(payee_account)),
                now, ref))  # fmt: skip
            uow.enqueue_sms(OutboundSms(txn.payer_phone or "", replies.paid(
                amount, mask_phone(payee_phone), ref, uow.balance(payer)), now, ref))  # fmt: skip
        else:
            raise WrongState(f"{ref} is a {txn.kind.value}; only payments can be approved")
        audit(uow, now, staff.name, "payment.approve", ref, why, _done(uow, ref).state.value)
        return _done(uow, ref)

    return svc.store.atomic(unit)


def reject(svc: Services, staff: StaffMember, reference: str, reason: str) -> Transaction:
    """Refuse a held payment: the money goes back to the payer."""
    require_admin(staff)
    why = check_reason(reason)

    def unit(uow: UnitOfWork) -> Transaction:
        now = svc.clock.now()
        txn = _flagged(uow, reference)
        ref, amount, payer = txn.reference, txn.amount, user_account(txn.payer_id or "")
        ledger.refund(uow, txn, now)  # held -> payer
        ledger.move(
            uow, ref, TransactionState.FAILED, f"rejected by staff:{staff.name}: {why}"[:300], now
        )
        text = replies.payment_rejected(
            amount, mask_party(txn.payee or ""), ref, uow.balance(payer)
        )
        uow.enqueue_sms(OutboundSms(txn.payer_phone or "", text, now, ref))
        audit(uow, now, staff.name, "payment.reject", ref, why, TransactionState.FAILED.value)
        return _done(uow, ref)

    return svc.store.atomic(unit)


def reverse(svc: Services, staff: StaffMember, reference: str, reason: str) -> Transaction:
    """Undo a successful wallet-to-wallet payment with a new entry, payee back to payer,
    if the payee's balance still covers it."""
    require_admin(staff)
    why = check_reason(reason)

    def unit(uow: UnitOfWork) -> Transaction:
        now = svc.clock.now()
        txn = _transaction(uow, reference)
        ref, amount = txn.reference, txn.amount
        if txn.kind is not TransactionKind.TRANSFER or txn.payer_id is None or txn.payee_id is None:
            raise WrongState(f"{ref} is a {txn.kind.value}; only wallet payments can be reversed")
        if txn.state is not TransactionState.SUCCESS:
            raise WrongState(f"{ref} is {txn.state.value}; only SUCCESS can be reversed")
        payer, payee = user_account(txn.payer_id), user_account(txn.payee_id)
        if uow.balance(payee) < amount:
            raise WrongState(f"the payee's balance no longer covers {ref}; nothing was moved")
        ledger.reversal(uow, txn, now)
        ledger.move(
            uow, ref, TransactionState.FAILED, f"reversed by staff:{staff.name}: {why}"[:300], now
        )
        payer_phone, payee_phone = txn.payer_phone or "", txn.payee or ""
        uow.enqueue_sms(OutboundSms(payer_phone, replies.reversed_to_payer(
            amount, mask_phone(payee_phone), ref, uow.balance(payer)), now, ref))  # fmt: skip
        uow.enqueue_sms(OutboundSms(payee_phone, replies.reversed_from_payee(
            amount, mask_phone(payer_phone), ref, uow.balance(payee)), now, ref))  # fmt: skip
        audit(uow, now, staff.name, "payment.reverse", ref, why, TransactionState.FAILED.value)
        return _done(uow, ref)

    return svc.store.atomic(unit)


def unlock(svc: Services, staff: StaffMember, phone: str, reason: str) -> User:
    """Clear a user's PIN lockout and wrong-PIN count, and tell them by SMS."""
    require_admin(staff)
    why = check_reason(reason)

    def unit(uow: UnitOfWork) -> User:
        now = svc.clock.now()
        user = uow.get_user_by_phone(phone)
        if user is None:
            raise UnknownUser(f"no user has the number {mask_phone(phone)}")
        if user.locked_until is None and not user.failed_pin_attempts:
            raise WrongState(f"{mask_phone(phone)} is not locked")
        uow.set_pin_state(user.id, 0, None)
        uow.enqueue_sms(OutboundSms(user.phone, replies.UNLOCKED, now))
        audit(uow, now, staff.name, "user.unlock", user.phone, why, "unlocked")
        unlocked = uow.get_user(user.id)
        assert unlocked is not None
        return unlocked

    return svc.store.atomic(unit)


def credit(svc: Services, staff: StaffMember, phone: str, amount: int, reason: str) -> Transaction:
    """Credit a wallet (a goodwill credit, a correction) with the reason in the audit log."""
    require_admin(staff)
    why = check_reason(reason)
    if amount <= 0:
        raise InvalidInput("the amount must be positive")

    def unit(uow: UnitOfWork) -> Transaction:
        now = svc.clock.now()
        txn = payments.credit_wallet_in(svc, uow, phone, amount, why, f"staff:{staff.name}")
        audit(uow, now, staff.name, "wallet.credit", phone, why,
              f"{txn.reference} {amount} paise")  # fmt: skip
        return txn

    return svc.store.atomic(unit)
