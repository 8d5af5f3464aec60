"""Transactions (payments and credits) with their append-only history, and the queries over them."""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from storage.history import HistoryAsk, PaymentHistory
from storage.models import (
    RecentPayment,
    Transaction,
    TransactionEvent,
    TransactionGroup,
    TransactionState,
)


class Transactions(Protocol):
    """A transaction's reference is unique; every state change appends one event."""

    def insert_transaction(
        self, txn: Transaction, reason: str, then: tuple[TransactionState, str] | None = None
    ) -> None:
        """Add a transaction and its first event; DuplicateKey if the reference is taken.

        With `then` (a state and its reason), the transaction is written already moved on to
        that state at `txn.created_at`, its history holding both events: what `set_state` right
        after the insert would leave, in one write. The store does not judge the step
        (app/services/ledger.py does).
        """
        ...

    def set_state(
        self,
        reference: str,
        state: TransactionState,
        reason: str,
        at: float,
        expected: TransactionState | None = None,
    ) -> None:
        """Move a transaction to `state` and append the event; NotFound for an unknown reference.

        With `expected`, the change is conditional: StateChanged (and nothing written) unless the
        transaction is in that state now. The store does not judge transitions:
        app/services/ledger.py holds the allowed ones.
        """
        ...

    def get_transaction(self, reference: str) -> Transaction | None:
        """The transaction with this reference, or None."""
        ...

    def events(self, reference: str) -> list[TransactionEvent]:
        """Every state the transaction went through, oldest first."""
        ...

    def debited_since(self, user_id: str, since: float, payee: str | None = None) -> int:
        """Paise a payer committed since `since` (PENDING, PROCESSING, SUCCESS, FLAGGED), to
        `payee` only when one is given.

        A sum over the payer's payments: the reference the running totals (`Spending`) equal.
        """
        ...

    def recent_payments(self, payer_id: str, since: float, limit: int) -> list[RecentPayment]:
        """At most `limit` of a payer's payments created at or after `since`, in every state,
        newest first (then by reference): only what the risk rules read."""
        ...

    def payment_history(self, payer_id: str, ask: HistoryAsk) -> PaymentHistory:
        """What the risk rules read of the payer's history for one payment (`HistoryAsk` says
        what each part is): as `storage.history.from_rows` makes it from `recent_payments`,
        by whatever reads cost the store least. Ties in `created_at` at the limit's edge may
        be cut in the store's own order, and past `payees_limit` the window's payees may be
        any `payees_limit` of them or more (tests/integration/test_payment_history.py)."""
        ...

    def payees_paid_since(self, payer_id: str, since: float, limit: int) -> set[str]:
        """The payees of the payer's committed payments (PENDING, PROCESSING, SUCCESS, FLAGGED)
        created at or after `since`: all of them, or `limit` of them if there are more."""
        ...

    def first_payment_to(self, payer_id: str, payee: str) -> float | None:
        """When the payer first made a payment to `payee` that did not fail, or None."""
        ...

    def search_transactions(
        self,
        phone: str | None = None,
        state: TransactionState | None = None,
        since: float | None = None,
        until: float | None = None,
        reference: str | None = None,
        oldest_first: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Transaction]:
        """Transactions matching every given filter, by creation time then reference.

        `phone` matches payer or payee; [since, until) bounds the creation time. The one query
        behind the CLI, the API, the console and reconciliation.
        """
        ...

    def transaction_groups(self, since: float, until: float) -> list[TransactionGroup]:
        """Counts and sums of transactions created in [since, until), by state, channel, reason."""
        ...

    def settle_seconds(self, since: float, until: float, limit: int) -> list[float]:
        """Seconds from creation to SUCCESS or FAILED, for at most `limit` transactions."""
        ...


def opened(
    txn: Transaction, reason: str, then: tuple[TransactionState, str] | None = None
) -> tuple[Transaction, tuple[TransactionEvent, ...]]:
    """A new transaction as `insert_transaction` stores it, and its history: the first event,
    and with `then` the step to that state at its creation (see `insert_transaction`)."""
    first = TransactionEvent(txn.reference, txn.state, reason, txn.created_at)
    if then is None:
        return txn, (first,)
    moved = replace(txn, state=then[0], reason=then[1], updated_at=txn.created_at)
    return moved, (first, TransactionEvent(txn.reference, *then, txn.created_at))
