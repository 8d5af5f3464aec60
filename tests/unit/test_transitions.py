"""The one table of allowed state transitions, `ledger.move`, and that nothing goes around them."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from app.services import ledger, settlement
from app.services.ledger import TRANSITIONS, TransitionRefused, move
from gateway_clients.base import PayoutStatus
from storage.errors import NotFound, StateChanged
from storage.memory.store import MemoryStore
from storage.models import Transaction, TransactionKind, TransactionState

ROOT = Path(__file__).resolve().parents[2]
P, R, S, F, H = (
    TransactionState.PENDING,
    TransactionState.PROCESSING,
    TransactionState.SUCCESS,
    TransactionState.FAILED,
    TransactionState.FLAGGED,
)

# Every allowed transition, once, with the use case that makes it.
ALLOWED = [
    (P, P),  # a payout's debit into payouts in flight is recorded (start_payout)
    (P, R),  # the gateway took the payout; a payment link was sent
    (P, S),  # a transfer or cash-in posted; a link paid; a payout settled at once
    (P, F),  # a payment refused; a payout failed; a link closed or unavailable
    (P, H),  # held for review (review.hold)
    (R, S),  # a payout settled; a link paid
    (R, F),  # a payout failed or reversed; a link closed
    (H, P),  # an approved payout goes to the gateway
    (H, S),  # an approved transfer
    (H, F),  # a rejected payment
    (S, F),  # a transfer reversed by staff; a payout reversed by the gateway
]
FORBIDDEN = [
    (S, P),
    (S, R),
    (S, H),
    (S, S),
    (R, P),
    (R, R),
    (R, H),
    (H, R),
    (H, H),
    *[(F, to) for to in TransactionState],
]


def test_the_table_holds_exactly_the_listed_transitions() -> None:
    assert len(ALLOWED) == len(set(ALLOWED))
    table = {(frm, to) for frm, tos in TRANSITIONS.items() for to in tos}
    assert table == set(ALLOWED)
    assert set(TRANSITIONS) == set(TransactionState)  # every state has a row
    assert TRANSITIONS[F] == frozenset()  # FAILED is final


def test_forbidden_transitions_are_not_in_the_table() -> None:
    for frm, to in FORBIDDEN:
        assert not ledger.allowed(frm, to), (frm, to)
    every = {(frm, to) for frm in TransactionState for to in TransactionState}
    assert every - set(ALLOWED) >= set(FORBIDDEN)


class FakeTransactions:
    """Just enough of the Transactions part of a unit of work for `move`."""

    def __init__(self, state: TransactionState) -> None:
        self.txn = Transaction("REF0000001", TransactionKind.TRANSFER, 100, state, 1.0, 1.0)
        self.calls: list[tuple[str, TransactionState, str, float]] = []
        self.reads = 0

    def get_transaction(self, reference: str) -> Transaction | None:
        self.reads += 1
        return self.txn if reference == self.txn.reference else None

    def set_state(
        self,
        reference: str,
        state: TransactionState,
        reason: str,
        at: float,
        expected: TransactionState | None = None,
    ) -> None:
        if reference != self.txn.reference:
            raise NotFound(reference)
        if expected is not None and expected is not self.txn.state:
            raise StateChanged(reference)
        self.calls.append((reference, state, reason, at))


@pytest.mark.parametrize(("frm", "to"), ALLOWED, ids=lambda s: s.value)
def test_move_makes_an_allowed_transition(frm: TransactionState, to: TransactionState) -> None:
    uow = FakeTransactions(frm)
    move(uow, "REF0000001", to, "because", 5.0)
    assert uow.calls == [("REF0000001", to, "because", 5.0)]


@pytest.mark.parametrize(("frm", "to"), FORBIDDEN, ids=lambda s: s.value)
def test_move_refuses_a_forbidden_transition(frm: TransactionState, to: TransactionState) -> None:
    uow = FakeTransactions(frm)
    with pytest.raises(TransitionRefused, match=f"is {frm.value}; it may not move to {to.value}"):
        move(uow, uow.txn, to, "because", 5.0)
    assert uow.calls == []


def test_move_judges_the_state_held_now_not_a_stale_copy() -> None:
    uow = FakeTransactions(S)
    stale = Transaction("REF0000001", TransactionKind.TRANSFER, 100, P, 1.0, 1.0)
    with pytest.raises(TransitionRefused):
        move(uow, stale, P, "again", 5.0)
    assert uow.calls == []


def test_move_of_a_current_transaction_writes_without_reading_it_again() -> None:
    uow = FakeTransactions(P)
    move(uow, uow.txn, S, "posted", 5.0)
    assert (uow.calls, uow.reads) == ([("REF0000001", S, "posted", 5.0)], 0)


def test_move_of_a_stale_copy_whose_step_looks_allowed_judges_the_state_held_now() -> None:
    uow = FakeTransactions(F)  # held now: FAILED; the copy says PENDING, from which SUCCESS is fine
    stale = Transaction("REF0000001", TransactionKind.TRANSFER, 100, P, 1.0, 1.0)
    with pytest.raises(TransitionRefused, match="is FAILED"):
        move(uow, stale, S, "posted", 5.0)
    assert (uow.calls, uow.reads) == ([], 1)


def test_move_of_an_unknown_reference_is_not_found() -> None:
    uow = FakeTransactions(P)
    with pytest.raises(NotFound):
        move(uow, "NOSUCHREF1", S, "x", 5.0)
    assert uow.calls == []


def test_settlements_payout_moves_stay_inside_the_table() -> None:
    target = {
        PayoutStatus.PROCESSING: R,
        PayoutStatus.PROCESSED: S,
        PayoutStatus.FAILED: F,
        PayoutStatus.REVERSED: F,
    }
    assert set(settlement._MOVES) == set(target)
    for status, froms in settlement._MOVES.items():
        for frm in froms:
            assert ledger.allowed(frm, target[status]), (status, frm)


def _direct_writes(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.func.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("post_entry", "set_state")
    ]


def test_only_the_ledger_module_posts_entries_or_changes_states() -> None:
    sources = sorted((ROOT / "app").rglob("*.py"))
    assert ROOT / "app" / "services" / "payments.py" in sources
    ledger_module = ROOT / "app" / "services" / "ledger.py"
    found = [hit for path in sources if path != ledger_module for hit in _direct_writes(path)]
    assert found == []
    assert len(_direct_writes(ledger_module)) == 2  # the one post and the one state change


def test_a_payment_opened_already_moved_on_is_judged_by_the_table_and_counted_as_it_ends() -> None:
    """`open_payment(..., then=)`: a step the table allows is written with the payment (its
    history holds both events), and only a payment that ends committed counts in its payer's
    totals; a step the table refuses writes nothing at all."""
    store = MemoryStore()

    def payment(ref: str, state: TransactionState = P) -> Transaction:
        return Transaction(ref, TransactionKind.TRANSFER, 100, state, 10.0, 10.0, payer_id="u1")

    def open_as(txn: Transaction, then: tuple[TransactionState, str]) -> None:
        store.atomic(lambda uow: ledger.open_payment(uow, txn, "accepted", 0.0, 0.0, then))

    def seen(ref: str) -> tuple[Transaction | None, list[TransactionState], int]:
        def read(uow: Any) -> tuple[Transaction | None, list[TransactionState], int]:
            events = [e.state for e in uow.events(ref)] if uow.get_transaction(ref) else []
            return uow.get_transaction(ref), events, uow.spent("u1", 0.0, 0.0)[0]

        return store.atomic(read)

    open_as(payment("REFUSED001"), (F, "over_daily_limit"))
    txn, events, spent = seen("REFUSED001")
    assert txn is not None
    assert (txn.state, txn.reason, events, spent) == (F, "over_daily_limit", [P, F], 0)
    open_as(payment("POSTED0001"), (S, "ledger entry posted"))
    assert seen("POSTED0001")[1:] == ([P, S], 100)
    with pytest.raises(TransitionRefused, match="a new FAILED payment may not move to SUCCESS"):
        open_as(payment("FINAL00001", F), (S, "posted"))
    assert seen("FINAL00001") == (None, [], 100)
