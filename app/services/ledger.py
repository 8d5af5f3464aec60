"""Every ledger movement, and which state of a transaction may follow which.

A movement is one balanced entry of two postings, debit first, inside the caller's unit of work;
the functions here are the only ones in the service layer that post. Each takes the transaction
it moves money for and posts the amount of that transaction (a top-up: what the link brought in).
The ledger's conditional debit is the last guard: InsufficientFunds undoes the whole unit of work.
System accounts are opened the first time a movement needs them (`ensure_system_account`).

Where the money of a payment waits between steps:

    transfer        payer -> payee                       (SUCCESS)
    cash_in         cash in -> wallet                    (SUCCESS)
    hold            payer -> held                        (FLAGGED, for staff review)
    release         held -> payee, or held -> payouts in flight for a payout (approved)
    refund          held | payouts in flight | payouts settled -> payer     (FAILED)
    reversal        payee -> payer                       (a SUCCESS transfer undone by staff)
    payout_in_flight  payer -> payouts in flight         (payout queued for the gateway)
    payout_settled    payouts in flight -> payouts settled  (the gateway paid it)
    top_up          gateway in -> wallet                 (a payment link was paid)

`TRANSITIONS` is the one table of which state may follow which, and `move` is the one way the
service layer changes a transaction's state: it refuses anything the table does not allow with
`TransitionRefused`. The use cases still check the state they act on first and answer in their
own words ("stale", WrongState); the table is the guard behind them.

A payer's running totals of committed paise (storage/contract/spending.py, read by the daily and
monthly caps) change in the same unit of work as the payments they count: `open_payment` is the
one way a payer's payment is created, and `move` takes a payment out of them when it leaves the
committed states.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Protocol

from app.services.common import ensure_account
from app.services.errors import ServiceError
from storage.contract import Ledger, Spending, Transactions
from storage.errors import NotFound, StateChanged
from storage.history import COMMITTED_STATES
from storage.models import (
    CASH_IN_ACCOUNT,
    GATEWAY_IN_ACCOUNT,
    HELD_ACCOUNT,
    PAYOUTS_IN_FLIGHT_ACCOUNT,
    PAYOUTS_SETTLED_ACCOUNT,
    Posting,
    Transaction,
    TransactionKind,
    TransactionState,
    user_account,
)

_S = TransactionState

# Which states may follow each state. Every state change appends an event to the history.
TRANSITIONS: Mapping[TransactionState, frozenset[TransactionState]] = MappingProxyType(
    {
        _S.PENDING: frozenset(
            {
                _S.PENDING,  # a payout's debit into payouts in flight is recorded: payout queued
                _S.PROCESSING,  # the gateway took the payout, or the payment link was sent
                _S.SUCCESS,  # a transfer or cash-in posted, a link paid, a payout settled at once
                _S.FAILED,  # refused before money moved, a payout failed, a link closed unpaid
                _S.FLAGGED,  # held for staff review
            }
        ),
        _S.PROCESSING: frozenset({_S.SUCCESS, _S.FAILED}),
        _S.FLAGGED: frozenset(
            {
                _S.PENDING,  # an approved payout goes to the gateway
                _S.SUCCESS,  # an approved transfer reached the payee
                _S.FAILED,  # rejected: the money went back to the payer
            }
        ),
        _S.SUCCESS: frozenset({_S.FAILED}),  # reversed by staff, or by the gateway (a payout)
        _S.FAILED: frozenset(),  # final
    }
)

# The states in which a payment's money counts against its payer's caps: all but FAILED.
COMMITTED: frozenset[TransactionState] = COMMITTED_STATES


class Moves(Transactions, Spending, Protocol):
    """The parts of the unit of work that creating and moving payments write."""


# System accounts, and whether each may go below zero: money enters through cash in and gateway
# in (negative by what came in) and leaves through payouts settled.
SYSTEM_ACCOUNTS: Mapping[str, bool] = MappingProxyType(
    {
        CASH_IN_ACCOUNT: True,
        GATEWAY_IN_ACCOUNT: True,
        PAYOUTS_IN_FLIGHT_ACCOUNT: False,
        PAYOUTS_SETTLED_ACCOUNT: False,
        HELD_ACCOUNT: False,
    }
)


class TransitionRefused(ServiceError):
    """A transaction was asked to move to a state that may not follow its current one."""


def allowed(current: TransactionState, to: TransactionState) -> bool:
    """Whether `to` may follow `current`."""
    return to in TRANSITIONS[current]


def open_payment(
    uow: Moves,
    txn: Transaction,
    reason: str,
    day_start: float,
    month_start: float,
    then: tuple[TransactionState, str] | None = None,
) -> None:
    """Insert a payer's new payment (created now) and count it in the payer's running totals of
    the local day and month starting at `day_start` and `month_start`.

    With `then` (a state and its reason) the payment is inserted already moved on to that state,
    as `move` right after would leave it (a transfer posted, a payment refused), in one write;
    TransitionRefused if the table does not allow the step."""
    state = txn.state
    if then is not None:
        if not allowed(state, then[0]):
            raise TransitionRefused(f"a new {state.value} payment may not move to {then[0].value}")
        state = then[0]
    if txn.payer_id is not None and state in COMMITTED:
        uow.add_spent(txn.payer_id, txn.amount, day_start, month_start)  # before: see the contract
    uow.insert_transaction(txn, reason, then)


def move(uow: Moves, txn: Transaction | str, to: TransactionState, reason: str, now: float) -> None:
    """Move a transaction (or the one with this reference) to `to`, recording `reason`.

    Judges the state the unit of work holds now, not the state of a `Transaction` read earlier;
    TransitionRefused if the table does not allow the step, NotFound for an unknown reference.
    A payment leaving the committed states no longer counts in its payer's running totals.

    Given a `Transaction`, the step is judged from its state and written on the condition that
    the transaction is still in it (no read); if it is not, the state held now is read and
    judged as for a reference.
    """
    reference = txn if isinstance(txn, str) else txn.reference
    held = None if isinstance(txn, str) else txn
    while True:
        current = held if held is not None else uow.get_transaction(reference)
        if current is None:
            raise NotFound(f"no transaction {reference}")
        try:
            if not allowed(current.state, to):
                raise TransitionRefused(
                    f"{reference} is {current.state.value}; it may not move to {to.value}"
                )
            uow.set_state(reference, to, reason, now, expected=current.state)
            break
        except (TransitionRefused, StateChanged):
            if held is None:  # judged against the state held now: the answer stands
                raise
            held = None  # the copy may be stale: read the state held now, once
    _after_move(uow, current, to)


def _after_move(uow: Moves, current: Transaction, to: TransactionState) -> None:
    """The running totals once `current` (as it was before the move) moved to `to`."""
    if current.payer_id is not None and current.state in COMMITTED and to not in COMMITTED:
        uow.remove_spent(current.payer_id, current.amount, current.created_at)


def ensure_system_account(uow: Ledger, account: str) -> None:
    """Open a system account (see SYSTEM_ACCOUNTS) if it does not exist yet."""
    ensure_account(uow, account, allow_negative=SYSTEM_ACCOUNTS[account])


def _payer(txn: Transaction) -> str:
    if txn.payer_id is None:
        raise ValueError(f"{txn.reference} has no payer")
    return user_account(txn.payer_id)


def _payee(txn: Transaction) -> str:
    if txn.payee_id is None:
        raise ValueError(f"{txn.reference} has no payee wallet")
    return user_account(txn.payee_id)


def _post(
    uow: Ledger, txn: Transaction, debit: str, credit: str, now: float, amount: int
) -> dict[str, int]:
    return uow.post_entry(txn.reference, [Posting(debit, -amount), Posting(credit, amount)], now)


def transfer(uow: Ledger, txn: Transaction, now: float) -> tuple[int, int]:
    """Wallet to wallet: payer -> payee; returns the payer's and the payee's new balances."""
    payer, payee = _payer(txn), _payee(txn)
    balances = _post(uow, txn, payer, payee, now, txn.amount)
    return balances[payer], balances[payee]


def cash_in(uow: Ledger, txn: Transaction, now: float) -> None:
    """An agent took cash: cash in -> the payee's wallet."""
    ensure_system_account(uow, CASH_IN_ACCOUNT)
    _post(uow, txn, CASH_IN_ACCOUNT, _payee(txn), now, txn.amount)


def hold(uow: Ledger, txn: Transaction, now: float) -> None:
    """Hold a payment for review: payer -> held."""
    ensure_system_account(uow, HELD_ACCOUNT)
    _post(uow, txn, _payer(txn), HELD_ACCOUNT, now, txn.amount)


def release(uow: Ledger, txn: Transaction, now: float) -> None:
    """Let a held payment go on: held -> payouts in flight for a payout, else held -> payee."""
    if txn.kind is TransactionKind.PAYOUT:
        ensure_system_account(uow, PAYOUTS_IN_FLIGHT_ACCOUNT)
        _post(uow, txn, HELD_ACCOUNT, PAYOUTS_IN_FLIGHT_ACCOUNT, now, txn.amount)
    else:
        _post(uow, txn, HELD_ACCOUNT, _payee(txn), now, txn.amount)


def refund_source(txn: Transaction) -> str:
    """Where the money of a transaction in its current state waits to go back to the payer."""
    if txn.state is TransactionState.FLAGGED:
        return HELD_ACCOUNT
    if txn.kind is TransactionKind.PAYOUT:
        if txn.state in (TransactionState.PENDING, TransactionState.PROCESSING):
            return PAYOUTS_IN_FLIGHT_ACCOUNT
        if txn.state is TransactionState.SUCCESS:
            return PAYOUTS_SETTLED_ACCOUNT
    raise ValueError(f"{txn.reference} is {txn.state.value}; no money of it waits for a refund")


def refund(uow: Ledger, txn: Transaction, now: float) -> None:
    """Money back to the payer from where it waits (`txn` as it is before the move to FAILED):
    held (a rejected payment), payouts in flight (a failed payout), payouts settled (a payout
    the gateway reversed after it succeeded)."""
    _post(uow, txn, refund_source(txn), _payer(txn), now, txn.amount)


def reversal(uow: Ledger, txn: Transaction, now: float) -> None:
    """Undo a transfer with a new entry: payee -> payer."""
    _post(uow, txn, _payee(txn), _payer(txn), now, txn.amount)


def payout_in_flight(uow: Ledger, txn: Transaction, now: float) -> None:
    """Debit a payout's payer until the gateway pays: payer -> payouts in flight."""
    ensure_system_account(uow, PAYOUTS_IN_FLIGHT_ACCOUNT)
    _post(uow, txn, _payer(txn), PAYOUTS_IN_FLIGHT_ACCOUNT, now, txn.amount)


def payout_settled(uow: Ledger, txn: Transaction, now: float) -> None:
    """The gateway paid the payout: payouts in flight -> payouts settled."""
    ensure_system_account(uow, PAYOUTS_SETTLED_ACCOUNT)
    _post(uow, txn, PAYOUTS_IN_FLIGHT_ACCOUNT, PAYOUTS_SETTLED_ACCOUNT, now, txn.amount)


def top_up(uow: Ledger, txn: Transaction, now: float, paid: int | None = None) -> None:
    """A payment link was paid: gateway in -> the payee's wallet, by what the gateway says was
    paid (`paid`, if it differs from the transaction's amount)."""
    ensure_system_account(uow, GATEWAY_IN_ACCOUNT)
    amount = txn.amount if paid is None else paid
    _post(uow, txn, GATEWAY_IN_ACCOUNT, _payee(txn), now, amount)
