"""A payer's history for the risk rules (`Transactions.payment_history`) made from its newest
payments: the rule MongoDB and the memory store apply to the rows they read in one query, and
SQLite to a payment that carries a location (its other payments take one index read a part,
storage/sqlite/transactions.py). Where the rows may not hold every payment a part needs (as many
rows as the limit, the oldest still inside the part's period), that part is read on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from storage.models import RecentPayment, TransactionState

# the states in which a payment's money counts against its payer (app/services/ledger.py)
COMMITTED_STATES = frozenset(
    {TransactionState.PENDING, TransactionState.PROCESSING, TransactionState.SUCCESS,
     TransactionState.FLAGGED}
)  # fmt: skip


@dataclass(frozen=True)
class HistoryAsk:
    """What the risk rules read of a payer's history for one payment (app/services/risk.py
    `past_of` says why each part is asked)."""

    since: float  # the look-back's start: payments created at or after it
    limit: int  # the newest payments read from it (every state counts toward the limit)
    payee: str
    # committed to `payee` since then (a new payee's 24 hours); None: not asked
    payee_since: float | None = None
    # the payees of committed payments since then (the velocity window); None: not asked
    window_since: float | None = None
    payees_limit: int = 0  # all those payees, or at least this many of them if there are more
    located: bool = False  # the located payments too (the payment being judged has a location)


@dataclass(frozen=True)
class PaymentHistory:
    """A payer's history as the risk rules read it; see `HistoryAsk` for each part."""

    # the amounts of the committed payments among the newest `limit`, newest first
    amounts: tuple[int, ...]
    # the committed payments among them that carry a location, newest first; () unless asked
    located: tuple[RecentPayment, ...] = ()
    paid_to_payee: int | None = None
    payees: frozenset[str] | None = None


class Sums(Protocol):
    """The reads a part falls back on."""

    def debited_since(self, user_id: str, since: float, payee: str | None = None) -> int: ...

    def payees_paid_since(self, payer_id: str, since: float, limit: int) -> set[str]: ...


def from_rows(
    payer_id: str, rows: Sequence[RecentPayment], ask: HistoryAsk, reads: Sums
) -> PaymentHistory:
    """The history `ask` asks for, from the payer's newest `ask.limit` payments since
    `ask.since` (newest first, every state)."""
    live = [t for t in rows if t.state in COMMITTED_STATES]
    oldest = rows[-1].created_at if len(rows) == ask.limit and rows else None

    def complete_since(start: float) -> bool:  # the rows hold every payment since `start`
        return oldest is None or oldest < start

    paid = None
    if ask.payee_since is not None:
        since = ask.payee_since
        if complete_since(since):
            paid = sum(t.amount for t in live if t.payee == ask.payee and t.created_at >= since)
        else:
            paid = reads.debited_since(payer_id, since, ask.payee)
    payees = None
    if ask.window_since is not None:
        window = ask.window_since
        found = {t.payee for t in live if t.payee is not None and t.created_at >= window}
        if not complete_since(window) and len(found) < ask.payees_limit:
            found = reads.payees_paid_since(payer_id, window, ask.payees_limit)
        payees = frozenset(found)
    located: tuple[RecentPayment, ...] = ()
    if ask.located:
        located = tuple(t for t in live if t.lat is not None and t.lon is not None)
    return PaymentHistory(tuple(t.amount for t in live), located, paid, payees)
