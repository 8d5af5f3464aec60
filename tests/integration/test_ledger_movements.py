"""Every ledger movement on the real stores: one balanced entry with exactly its postings.

Runs on SQLite and on MongoDB (the `svc` fixture). Each movement is posted in its own unit of work
for a transaction inserted in the state the use case would hold it in; the ledger stays whole
(the sum over all accounts is zero) and a debit the balance does not cover changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from app.bootstrap import Services
from app.services import admin, ledger, payments
from storage.errors import InsufficientFunds, NotFound
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
)

ASHA, RAVI = "+919876543210", "+919812345678"
VPA = "ravi@okbank"
AMOUNT = 25_000
Movement = Callable[..., None]


class Books:
    """Two users (Asha with Rs 1,000 in cash-in), and transactions made to order."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.asha = admin.register_user(svc, ASHA, "Asha", "1234")
        self.ravi = admin.register_user(svc, RAVI, "Ravi", "1234")
        payments.credit_wallet(svc, ASHA, 100_000, "opening cash-in", actor="test")
        self.count = 0

    def txn(
        self,
        kind: TransactionKind = TransactionKind.TRANSFER,
        state: TransactionState = TransactionState.PENDING,
        amount: int = AMOUNT,
    ) -> Transaction:
        self.count += 1
        now = self.svc.clock.now()
        payee: dict[str, Any] = {"payee_id": self.ravi.id, "payee": RAVI}
        if kind is TransactionKind.PAYOUT:
            payee = {"payee": VPA}
        payer: dict[str, Any] = {"payer_id": self.asha.id, "payer_phone": ASHA}
        if kind in (TransactionKind.CASH_IN, TransactionKind.TOP_UP):
            payer = {}
        txn = Transaction(
            f"MOVE{self.count:06d}", kind, amount, state, now, now, **payer, **payee
        )  # fmt: skip
        self.svc.store.atomic(lambda uow: uow.insert_transaction(txn, "made for a test"))
        return txn

    def post(self, movement: Movement, txn: Transaction, **kw: Any) -> tuple[Posting, ...]:
        """Post one movement; the new entry's postings, after checking it is one balanced entry."""
        before = self.entries(txn)
        now = self.svc.clock.now()
        self.svc.store.atomic(lambda uow: movement(uow, txn, now, **kw))
        after = self.entries(txn)
        assert len(after) == len(before) + 1
        entry = after[-1]
        assert entry.reference == txn.reference and entry.created_at == now
        assert sum(p.amount for p in entry.postings) == 0
        assert self.total() == 0
        return entry.postings

    def entries(self, txn: Transaction) -> list[Any]:
        return self.svc.store.read(lambda uow: uow.entries(txn.reference))

    def balance(self, account: str) -> int:
        return self.svc.store.read(lambda uow: uow.balance(account))

    def total(self) -> int:
        return self.svc.store.read(lambda uow: uow.total_balance())


@pytest.fixture
def books(svc: Services) -> Books:
    return Books(svc)


def test_transfer_payer_to_payee(books: Books) -> None:
    a, r = books.asha.account, books.ravi.account
    assert books.post(ledger.transfer, books.txn()) == (Posting(a, -AMOUNT), Posting(r, AMOUNT))
    assert (books.balance(a), books.balance(r)) == (100_000 - AMOUNT, AMOUNT)


def test_cash_in_credits_the_wallet_against_cash_in(books: Books) -> None:
    txn = books.txn(TransactionKind.CASH_IN)
    postings = books.post(ledger.cash_in, txn)
    assert postings == (Posting(CASH_IN_ACCOUNT, -AMOUNT), Posting(books.ravi.account, AMOUNT))
    assert books.balance(CASH_IN_ACCOUNT) == -100_000 - AMOUNT


def test_hold_then_release_to_the_payee(books: Books) -> None:
    a, r = books.asha.account, books.ravi.account
    txn = books.txn()
    assert books.post(ledger.hold, txn) == (Posting(a, -AMOUNT), Posting(HELD_ACCOUNT, AMOUNT))
    assert books.balance(HELD_ACCOUNT) == AMOUNT
    flagged = replace(txn, state=TransactionState.FLAGGED)
    released = books.post(ledger.release, flagged)
    assert released == (Posting(HELD_ACCOUNT, -AMOUNT), Posting(r, AMOUNT))
    assert books.balance(HELD_ACCOUNT) == 0


def test_release_of_a_held_payout_goes_in_flight(books: Books) -> None:
    txn = books.txn(TransactionKind.PAYOUT)
    books.post(ledger.hold, txn)
    released = books.post(ledger.release, replace(txn, state=TransactionState.FLAGGED))
    assert released == (
        Posting(HELD_ACCOUNT, -AMOUNT),
        Posting(PAYOUTS_IN_FLIGHT_ACCOUNT, AMOUNT),
    )


def test_refund_of_a_held_payment_comes_from_held(books: Books) -> None:
    txn = books.txn()
    books.post(ledger.hold, txn)
    refunded = books.post(ledger.refund, replace(txn, state=TransactionState.FLAGGED))
    assert refunded == (Posting(HELD_ACCOUNT, -AMOUNT), Posting(books.asha.account, AMOUNT))
    assert books.balance(books.asha.account) == 100_000


def test_payout_in_flight_then_settled(books: Books) -> None:
    txn = books.txn(TransactionKind.PAYOUT)
    debited = books.post(ledger.payout_in_flight, txn)
    assert debited == (
        Posting(books.asha.account, -AMOUNT),
        Posting(PAYOUTS_IN_FLIGHT_ACCOUNT, AMOUNT),
    )
    settled = books.post(ledger.payout_settled, replace(txn, state=TransactionState.PROCESSING))
    assert settled == (
        Posting(PAYOUTS_IN_FLIGHT_ACCOUNT, -AMOUNT),
        Posting(PAYOUTS_SETTLED_ACCOUNT, AMOUNT),
    )
    assert books.balance(PAYOUTS_SETTLED_ACCOUNT) == AMOUNT


@pytest.mark.parametrize("state", [TransactionState.PENDING, TransactionState.PROCESSING])
def test_refund_of_a_failed_payout_comes_from_in_flight(
    books: Books, state: TransactionState
) -> None:
    txn = books.txn(TransactionKind.PAYOUT)
    books.post(ledger.payout_in_flight, txn)
    refunded = books.post(ledger.refund, replace(txn, state=state))
    assert refunded == (
        Posting(PAYOUTS_IN_FLIGHT_ACCOUNT, -AMOUNT),
        Posting(books.asha.account, AMOUNT),
    )
    assert books.balance(PAYOUTS_IN_FLIGHT_ACCOUNT) == 0


def test_refund_of_a_reversed_payout_comes_from_settled(books: Books) -> None:
    txn = books.txn(TransactionKind.PAYOUT)
    books.post(ledger.payout_in_flight, txn)
    books.post(ledger.payout_settled, txn)
    refunded = books.post(ledger.refund, replace(txn, state=TransactionState.SUCCESS))
    assert refunded == (
        Posting(PAYOUTS_SETTLED_ACCOUNT, -AMOUNT),
        Posting(books.asha.account, AMOUNT),
    )
    assert books.balance(PAYOUTS_SETTLED_ACCOUNT) == 0


def test_reversal_payee_back_to_payer(books: Books) -> None:
    a, r = books.asha.account, books.ravi.account
    txn = books.txn()
    books.post(ledger.transfer, txn)
    reversed_ = books.post(ledger.reversal, replace(txn, state=TransactionState.SUCCESS))
    assert reversed_ == (Posting(r, -AMOUNT), Posting(a, AMOUNT))
    assert (books.balance(a), books.balance(r)) == (100_000, 0)


def test_top_up_credits_what_the_gateway_says_was_paid(books: Books) -> None:
    r = books.ravi.account
    txn = books.txn(TransactionKind.TOP_UP)
    assert books.post(ledger.top_up, txn) == (
        Posting(GATEWAY_IN_ACCOUNT, -AMOUNT),
        Posting(r, AMOUNT),
    )
    other = books.txn(TransactionKind.TOP_UP, TransactionState.PROCESSING)
    assert books.post(ledger.top_up, other, paid=AMOUNT - 1) == (
        Posting(GATEWAY_IN_ACCOUNT, -(AMOUNT - 1)),
        Posting(r, AMOUNT - 1),
    )
    assert books.balance(GATEWAY_IN_ACCOUNT) == -(2 * AMOUNT - 1)


def test_refund_with_no_money_waiting_is_refused_before_posting(books: Books) -> None:
    txn = books.txn()  # a PENDING transfer: none of its money waits anywhere
    with pytest.raises(ValueError, match="no money of it waits"):
        books.svc.store.atomic(lambda uow: ledger.refund(uow, txn, 1.0))
    assert books.entries(txn) == []


def _id(value: object) -> str:
    if isinstance(value, TransactionKind):
        return value.value
    if isinstance(value, tuple):
        return "+".join(a.split(":")[-1] for a in value) or "-"
    return getattr(value, "__name__", str(value))


@pytest.mark.parametrize(
    ("movement", "kind", "opened"),
    [
        (ledger.transfer, TransactionKind.TRANSFER, ()),
        (ledger.hold, TransactionKind.TRANSFER, ()),
        (ledger.payout_in_flight, TransactionKind.PAYOUT, ()),
        (ledger.release, TransactionKind.TRANSFER, (HELD_ACCOUNT,)),  # nothing is held
        (ledger.payout_settled, TransactionKind.PAYOUT, (PAYOUTS_IN_FLIGHT_ACCOUNT,)),
        (ledger.reversal, TransactionKind.TRANSFER, ()),  # the payee has nothing
    ],
    ids=_id,
)
def test_an_over_debit_raises_and_changes_nothing(
    books: Books, movement: Movement, kind: TransactionKind, opened: tuple[str, ...]
) -> None:
    for account in opened:
        books.svc.store.atomic(lambda uow, a=account: ledger.ensure_system_account(uow, a))
    accounts = [books.asha.account, books.ravi.account, CASH_IN_ACCOUNT, *opened]
    before = [books.balance(a) for a in accounts]
    txn = books.txn(kind, amount=100_001)  # one paisa more than Asha has
    with pytest.raises(InsufficientFunds):
        books.svc.store.atomic(lambda uow: movement(uow, txn, 1.0))
    assert books.entries(txn) == []
    assert [books.balance(a) for a in accounts] == before
    assert books.total() == 0
    for system in {HELD_ACCOUNT, PAYOUTS_IN_FLIGHT_ACCOUNT, PAYOUTS_SETTLED_ACCOUNT} - set(opened):
        with pytest.raises(NotFound):  # an account opened in the undone unit of work is gone
            books.balance(system)


def test_a_movement_from_a_system_account_never_opened_raises_not_found(books: Books) -> None:
    txn = books.txn()
    with pytest.raises(NotFound):  # as before: only the account credited is opened on demand
        books.svc.store.atomic(lambda uow: ledger.release(uow, txn, 1.0))
    assert books.entries(txn) == []


def test_move_on_the_store_appends_an_event_and_refuses_what_the_table_forbids(
    books: Books,
) -> None:
    txn = books.txn()
    store = books.svc.store
    store.atomic(lambda uow: ledger.move(uow, txn, TransactionState.SUCCESS, "done", 2.0))
    with pytest.raises(ledger.TransitionRefused):
        store.atomic(lambda uow: ledger.move(uow, txn, TransactionState.PENDING, "back", 3.0))
    events = store.read(lambda uow: uow.events(txn.reference))
    assert [(e.state, e.reason) for e in events] == [
        (TransactionState.PENDING, "made for a test"),
        (TransactionState.SUCCESS, "done"),
    ]
