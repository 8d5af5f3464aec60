"""Transactions with their append-only history, and the queries over them, in memory."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from storage.contract.transactions import opened
from storage.errors import DuplicateKey, NotFound, StateChanged
from storage.history import COMMITTED_STATES, HistoryAsk, PaymentHistory, from_rows
from storage.memory.tables import Part, Tables
from storage.models import (
    RecentPayment,
    Transaction,
    TransactionEvent,
    TransactionGroup,
    TransactionState,
)

FINAL_STATES = (TransactionState.SUCCESS, TransactionState.FAILED)


def committed_since(t: Tables, payer_id: str, since: float, payee: str | None = None) -> int:
    """Paise a payer committed since `since` (to `payee` only, if given): the sum behind
    `debited_since` and the totals."""
    return sum(
        x.amount
        for x in t.transactions.values()
        if x.payer_id == payer_id
        and x.created_at >= since
        and x.state in COMMITTED_STATES
        and (payee is None or x.payee == payee)
    )


class TransactionsPart(Part):
    """`Transactions` of the contract."""

    def insert_transaction(
        self, txn: Transaction, reason: str, then: tuple[TransactionState, str] | None = None
    ) -> None:
        t = self._w()
        if txn.reference in t.transactions:
            raise DuplicateKey(f"transaction {txn.reference}")
        t.transactions[txn.reference], t.events[txn.reference] = opened(txn, reason, then)

    def set_state(
        self,
        reference: str,
        state: TransactionState,
        reason: str,
        at: float,
        expected: TransactionState | None = None,
    ) -> None:
        t = self._w()
        txn = t.transactions.get(reference)
        if txn is None:
            raise NotFound(f"transaction {reference}")
        if expected is not None and txn.state is not expected:
            raise StateChanged(f"{reference} is not {expected.value}")
        t.transactions[reference] = replace(txn, state=state, reason=reason, updated_at=at)
        t.events[reference] += (TransactionEvent(reference, state, reason, at),)

    def get_transaction(self, reference: str) -> Transaction | None:
        return self._t.transactions.get(reference)

    def events(self, reference: str) -> list[TransactionEvent]:
        return list(self._t.events.get(reference, ()))

    def debited_since(self, user_id: str, since: float, payee: str | None = None) -> int:
        return committed_since(self._t, user_id, since, payee)

    def recent_payments(self, payer_id: str, since: float, limit: int) -> list[RecentPayment]:
        found = [
            t
            for t in self._t.transactions.values()
            if t.payer_id == payer_id and t.created_at >= since
        ]
        found.sort(key=lambda t: (-t.created_at, t.reference))
        return [
            RecentPayment(t.reference, t.payee, t.amount, t.created_at, t.state.value, t.lat, t.lon)
            for t in found[:limit]
        ]

    def payment_history(self, payer_id: str, ask: HistoryAsk) -> PaymentHistory:
        """From the payer's newest payments, read in one query (storage/history.py)."""
        return from_rows(payer_id, self.recent_payments(payer_id, ask.since, ask.limit), ask, self)

    def payees_paid_since(self, payer_id: str, since: float, limit: int) -> set[str]:
        found = {
            t.payee
            for t in self._t.transactions.values()
            if t.payer_id == payer_id
            and t.created_at >= since
            and t.state in COMMITTED_STATES
            and t.payee is not None
        }
        return set(sorted(found)[:limit])

    def first_payment_to(self, payer_id: str, payee: str) -> float | None:
        times = [
            t.created_at
            for t in self._t.transactions.values()
            if t.payer_id == payer_id
            and t.payee == payee
            and t.state is not TransactionState.FAILED
        ]
        return min(times, default=None)

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
        def matches(t: Transaction) -> bool:
            return (
                (reference is None or t.reference == reference)
                and (state is None or t.state == state)
                and (since is None or t.created_at >= since)
                and (until is None or t.created_at < until)
                and (phone is None or phone in (t.payer_phone, t.payee))
            )

        sign = 1 if oldest_first else -1  # by creation time either way, then by reference
        found = sorted(
            filter(matches, self._t.transactions.values()),
            key=lambda t: (sign * t.created_at, t.reference),
        )
        return found[offset : offset + limit]

    def transaction_groups(self, since: float, until: float) -> list[TransactionGroup]:
        groups: dict[tuple[TransactionState, str, str], list[int]] = defaultdict(list)
        for t in self._t.transactions.values():
            if since <= t.created_at < until:
                # a failure's reason up to its first ':' ("insufficient_funds", "rejected by staff")
                why = t.reason.split(":", 1)[0] if t.state == TransactionState.FAILED else ""
                groups[(t.state, t.channel, why)].append(t.amount)
        return [
            TransactionGroup(state, channel, why, len(amounts), sum(amounts))
            for (state, channel, why), amounts in sorted(groups.items())
        ]

    def settle_seconds(self, since: float, until: float, limit: int) -> list[float]:
        settled = sorted(
            (
                t
                for t in self._t.transactions.values()
                if since <= t.created_at < until and t.state in FINAL_STATES
            ),
            key=lambda t: (-t.created_at, t.reference),
        )
        seconds = []
        for t in settled[:limit]:
            finals = [e.at for e in self._t.events[t.reference] if e.state in FINAL_STATES]
            if finals:
                seconds.append(max(0.0, float(min(finals) - t.created_at)))
        return seconds
