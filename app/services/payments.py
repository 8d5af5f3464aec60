"""Payments by SMS (wallet to wallet; to a UPI id through settlement) and cash-in credits.

A payment is checked (payee, limits, balance) before anything is posted; a refusal is recorded as
a FAILED transaction with its reason and moves nothing. The ledger's conditional debit stays as
the last guard: if it ever finds the balance short, the whole unit of work is undone.
"""

from __future__ import annotations

from app.bootstrap import Services
from app.services import errors, holds, ledger, risk, settlement
from app.services.common import Outcome, new_reference, start_of_day, start_of_month
from sms import replies
from sms.instructions import MAX_AMOUNT_PAISE, Pay
from sms.numbers import is_vpa, mask_party, mask_phone
from storage.contract import UnitOfWork
from storage.models import (
    OutboundSms,
    Transaction,
    TransactionKind,
    TransactionState,
    User,
)


def pay(
    svc: Services, uow: UnitOfWork, payer: User, instr: Pay, channel: str, now: float
) -> Outcome:
    """Pay `instr.amount` from the payer's wallet to a registered payee's wallet or a UPI id.

    User mistakes (unknown payee, self payment) are refused first; then the risk rules
    (app/services/risk.py) refuse (caps) or flag; then the balance is checked. A flagged payment
    is held for review (app/services/holds.py) instead of completing.
    """
    settings = svc.settings
    ref = new_reference()
    payout = is_vpa(instr.payee)
    day_start, month_start = start_of_day(now, svc.tz), start_of_month(now, svc.tz)
    standing = uow.standing(payer.id, instr.payee, day_start, month_start)
    payee_id = None if payout else standing.payee_id
    lat, lon = (
        (float(instr.location[0]), float(instr.location[1])) if instr.location else (None, None)
    )
    mistake: tuple[str, str] | None = None
    if not payout and payee_id is None:
        mistake = ("payee_not_registered", replies.PAYEE_NOT_REGISTERED)
    elif payee_id == payer.id:
        mistake = ("self_payment", replies.SELF_PAYMENT)
    judgement = None
    if mistake is None:
        located = lat is not None
        past = risk.past_of(uow, payer, standing, instr.payee, now, settings, located)
        judgement = risk.judge(
            risk.Attempt(instr.payee, instr.amount, now, lat, lon), past, settings
        )
    txn = Transaction(
        reference=ref,
        kind=TransactionKind.PAYOUT if payout else TransactionKind.TRANSFER,
        amount=instr.amount,
        state=TransactionState.PENDING,
        created_at=now,
        updated_at=now,
        payer_id=payer.id,
        payer_phone=payer.phone,
        payee_id=payee_id,
        payee=instr.payee,
        note=instr.note,
        channel=channel,
        lat=lat,
        lon=lon,
        risk=judgement.summary() if judgement else "",
    )

    def open_as(then: tuple[TransactionState, str] | None = None) -> None:
        ledger.open_payment(uow, txn, "instruction accepted", day_start, month_start, then)

    def refuse(code: str, reason: str) -> Outcome:
        open_as((TransactionState.FAILED, code))  # accepted, then refused: nothing moved,
        balance = standing.balance  # so the balance read before it stands
        text = replies.payment_failed(instr.amount, mask_party(instr.payee), reason, ref, balance)
        return Outcome(f"refused:{code}", text, ref)

    if mistake is not None:
        return refuse(*mistake)
    assert judgement is not None
    # the `balance` rule (always on) refused an overdraft with the balance read in `past_of`;
    # the ledger's conditional debit stays the last guard
    if (refusal := judgement.refusal) is not None:
        return refuse(refusal.code, refusal.reply)
    if judgement.flags:
        why = "; ".join(d.reason for d in judgement.flags)
        open_as()
        return holds.hold_flagged(svc, uow, txn, judgement.code(), why, now)
    if payout:
        open_as()
        return settlement.start_payout(svc, uow, txn, payer, now)
    assert payee_id is not None

    # inserted as posted, then posted: if the ledger's conditional debit refuses, the unit of
    # work raises and nothing of it stays; the balances the posting left (no reads) are quoted
    open_as((TransactionState.SUCCESS, "ledger entry posted"))
    payer_balance, payee_balance = ledger.transfer(uow, txn, now)
    uow.enqueue_sms(
        OutboundSms(
            to=instr.payee,
            body=replies.received(instr.amount, mask_phone(payer.phone), ref, payee_balance),
            created_at=now,
            reference=ref,
        )
    )
    text = replies.paid(instr.amount, mask_phone(instr.payee), ref, payer_balance)
    return Outcome("paid", text, ref)


def credit_wallet(svc: Services, phone: str, amount: int, reason: str, actor: str) -> Transaction:
    """Cash-in: an agent took cash and credits the wallet (against the cash-in account)."""
    return svc.store.atomic(lambda uow: credit_wallet_in(svc, uow, phone, amount, reason, actor))


def credit_wallet_in(
    svc: Services, uow: UnitOfWork, phone: str, amount: int, reason: str, actor: str
) -> Transaction:
    """`credit_wallet` inside the caller's unit of work (a staff credit audits in the same one)."""
    if not 0 < amount <= MAX_AMOUNT_PAISE:
        raise errors.InvalidInput("the amount must be positive")
    if not reason.strip():
        raise errors.InvalidInput("a credit needs a reason")
    now = svc.clock.now()
    user = uow.get_user_by_phone(phone)
    if user is None:
        raise errors.UnknownUser(f"no user has the number {mask_phone(phone)}")
    ref = new_reference()
    txn = Transaction(
        reference=ref,
        kind=TransactionKind.CASH_IN,
        amount=amount,
        state=TransactionState.PENDING,
        created_at=now,
        updated_at=now,
        payee_id=user.id,
        payee=user.phone,
        note=reason.strip()[:200],
        channel=actor,
    )
    uow.insert_transaction(txn, f"credit by {actor}")
    ledger.cash_in(uow, txn, now)
    ledger.move(uow, ref, TransactionState.SUCCESS, "ledger entry posted", now)
    balance = uow.balance(user.account)
    uow.enqueue_sms(OutboundSms(user.phone, replies.credited(amount, ref, balance), now, ref))
    final = uow.get_transaction(ref)
    assert final is not None
    return final
