"""Transactions, their append-only histories, and the queries over them (support and KPIs)."""

from __future__ import annotations

import sqlite3
from typing import Any

from storage.contract import Transactions
from storage.errors import NotFound, StateChanged
from storage.history import COMMITTED_STATES, HistoryAsk, PaymentHistory, from_rows
from storage.models import (
    RecentPayment,
    Transaction,
    TransactionEvent,
    TransactionGroup,
    TransactionState,
)
from storage.sqlite.base import SqliteBase, insert, transaction_of

FINAL_STATES = ("SUCCESS", "FAILED")
_COMMITTED = ", ".join(sorted(f"'{state.value}'" for state in COMMITTED_STATES))
PAYEE_SEPARATOR = "\x1f"  # ASCII's unit separator: in no E.164 number and no UPI id
# The parts of a payer's history the risk rules read (`payment_history` without a location),
# each a scalar subquery of one statement, each by its index: the committed amounts among the
# payer's newest payments since a time, newest first (group_concat takes the rows in the order
# the subquery gives them); what the payer committed to one payee since a time; the payees of
# `payees_paid` since a time.
NEWEST_AMOUNTS = (
    "SELECT group_concat(amount) FROM (SELECT amount, state FROM transactions"
    " WHERE payer_id = :payer AND created_at >= :since"
    " ORDER BY created_at DESC, rowid DESC LIMIT :limit)"
    f" WHERE state IN ({_COMMITTED})"
)
# what the payer committed to the payee since `payee_since`: the pair's running total
# (`payees_paid`, migration 6) when their first committed payment is that recent, as it is for
# a new payee, the only one asked; else the sum of the payments since then
PAID_TO_PAYEE = (
    "SELECT COALESCE((SELECT CASE WHEN first_at >= :payee_since THEN amount END"
    " FROM payees_paid WHERE payer_id = :payer AND payee = :payee),"
    " (SELECT COALESCE(SUM(amount), 0) FROM transactions WHERE payer_id = :payer"
    f" AND payee = :payee AND created_at >= :payee_since AND state IN ({_COMMITTED})))"
)
WINDOW_PAYEES = (
    f"SELECT group_concat(payee, char({ord(PAYEE_SEPARATOR)})) FROM (SELECT payee FROM payees_paid"
    " WHERE payer_id = :payer AND last_at >= :window_since LIMIT :payees_limit)"
)
HISTORY_READS = {
    (paid, window): "SELECT "
    + ", ".join(f"({part})" for part, asked in
                ((NEWEST_AMOUNTS, True), (PAID_TO_PAYEE, paid), (WINDOW_PAYEES, window)) if asked)
    for paid in (False, True) for window in (False, True)
}  # fmt: skip


def insert_transaction_row(
    conn: sqlite3.Connection, txn: Transaction, moved: tuple[TransactionState, str] | None = None
) -> None:
    """Write a transactions row (no event): as it is, or moved on at its creation to the state
    and reason `moved` gives; DuplicateKey if the reference is taken."""
    state, reason, updated_at = (txn.state, txn.reason, txn.updated_at) if moved is None else (
        moved[0], moved[1], txn.created_at)  # fmt: skip
    insert(
        conn,
        "INSERT INTO transactions (reference, kind, amount, state, created_at, updated_at,"
        " payer_id, payer_phone, payee_id, payee, reason, note, channel, lat, lon, risk)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        txn.reference, txn.kind.value, txn.amount, state.value, txn.created_at,
        updated_at, txn.payer_id, txn.payer_phone, txn.payee_id, txn.payee, reason,
        txn.note, txn.channel, txn.lat, txn.lon, txn.risk,
    )  # fmt: skip


def committed_since(
    conn: sqlite3.Connection, payer_id: str, since: float, payee: str | None = None
) -> int:
    """Paise a payer committed since `since` (to `payee` only, if given): the sum behind
    `debited_since` and the totals."""
    to_payee = "" if payee is None else " AND payee = ?"
    row = conn.execute(
        "SELECT COALESCE(SUM(amount), 0) FROM transactions WHERE payer_id = ?"
        + to_payee
        + f" AND created_at >= ? AND state IN ({_COMMITTED})",
        (payer_id, since) if payee is None else (payer_id, payee, since),
    ).fetchone()
    return int(row[0])


def insert_event(
    conn: sqlite3.Connection, reference: str, state: TransactionState, reason: str, at: float
) -> None:
    """Append one state to a transaction's history."""
    conn.execute(
        "INSERT INTO transaction_events (reference, state, reason, at) VALUES (?, ?, ?, ?)",
        (reference, state.value, reason, at),
    )


class SqliteTransactions(SqliteBase, Transactions):
    """transactions and transaction_events; every state change appends an event."""

    def insert_transaction(
        self, txn: Transaction, reason: str, then: tuple[TransactionState, str] | None = None
    ) -> None:
        """Add a transaction and its first event (and a second, `then`: see the contract);
        DuplicateKey if the reference is taken."""
        if then is None:
            insert_transaction_row(self._c, txn)
            insert_event(self._c, txn.reference, txn.state, reason, txn.created_at)
            return
        state, moved = then
        at = txn.created_at
        insert_transaction_row(self._c, txn, then)  # no dataclasses.replace: it runs __init__
        self._c.execute(
            "INSERT INTO transaction_events (reference, state, reason, at)"
            " VALUES (?, ?, ?, ?), (?, ?, ?, ?)",
            (txn.reference, txn.state.value, reason, at, txn.reference, state.value, moved, at),
        )

    def set_state(
        self,
        reference: str,
        state: TransactionState,
        reason: str,
        at: float,
        expected: TransactionState | None = None,
    ) -> None:
        """Move a transaction to `state` (conditional on `expected`) and append the event;
        NotFound for an unknown one, StateChanged if not in `expected`."""
        if expected is None:
            self._update(
                "UPDATE transactions SET state = ?, reason = ?, updated_at = ? WHERE reference = ?",
                state.value, reason, at, reference,
            )  # fmt: skip
        else:
            cur = self._c.execute(
                "UPDATE transactions SET state = ?, reason = ?, updated_at = ?"
                " WHERE reference = ? AND state = ?",
                (state.value, reason, at, reference, expected.value),
            )
            if cur.rowcount == 1:
                insert_event(self._c, reference, state, reason, at)
                return
            if self._one("SELECT 1 FROM transactions WHERE reference = ?", reference) is None:
                raise NotFound(f"transaction {reference}")
            raise StateChanged(f"{reference} is not {expected.value}")
        insert_event(self._c, reference, state, reason, at)

    def get_transaction(self, reference: str) -> Transaction | None:
        """The transaction with this reference, or None."""
        row = self._one("SELECT * FROM transactions WHERE reference = ?", reference)
        return transaction_of(row) if row else None

    def events(self, reference: str) -> list[TransactionEvent]:
        """Every state the transaction went through, oldest first."""
        rows = self._c.execute(
            "SELECT reference, state, reason, at FROM transaction_events WHERE reference = ?"
            " ORDER BY id",
            (reference,),
        )
        return [TransactionEvent(r[0], TransactionState(r[1]), r[2], r[3]) for r in rows]

    def debited_since(self, user_id: str, since: float, payee: str | None = None) -> int:
        """Paise a payer committed since `since` (PENDING, PROCESSING, SUCCESS, FLAGGED)."""
        return committed_since(self._c, user_id, since, payee)

    def recent_payments(self, payer_id: str, since: float, limit: int) -> list[RecentPayment]:
        """A payer's newest payments since `since`, as light tuples, newest first."""
        cur = self._c.cursor()
        cur.row_factory = None  # plain tuples: no sqlite3.Row, no dict, no Enum per row
        rows = cur.execute(
            "SELECT reference, payee, amount, created_at, state, lat, lon FROM transactions"
            " WHERE payer_id = ? AND created_at >= ? ORDER BY created_at DESC, reference LIMIT ?",
            (payer_id, since, limit),
        )
        return list(map(RecentPayment._make, rows))

    def payment_history(self, payer_id: str, ask: HistoryAsk) -> PaymentHistory:
        """A payment with a location reads the newest payments whole (storage/history.py); any
        other reads only what its rules use, each part by an index: the newest amounts (in the
        payer index's own order, so no sort), the new payee's sum (the pair's running total in
        `payees_paid`, PAID_TO_PAYEE) and the window's payees (`payees_paid`); the rules loop
        over none of the rows.

        The parts asked are one statement (HISTORY_READS), each a scalar subquery, and the
        rows of each come back joined in one text: one step of one statement (SQLite lets the
        GIL go for each step, which under load wakes a waiting thread) where there were three
        statements and a step a row. 100 rows 98-110 -> 69-76 us for the amounts alone; the
        three parts for a payer of 12 payments 43 -> 26-27 us (`timeit`)."""
        if ask.located:
            rows = self.recent_payments(payer_id, ask.since, ask.limit)
            return from_rows(payer_id, rows, ask, self)
        paid_asked, window_asked = ask.payee_since is not None, ask.window_since is not None
        cur = self._c.cursor()
        cur.row_factory = None  # plain tuples
        row = cur.execute(
            HISTORY_READS[paid_asked, window_asked],
            {"payer": payer_id, "since": ask.since, "limit": ask.limit, "payee": ask.payee,
             "payee_since": ask.payee_since, "window_since": ask.window_since,
             "payees_limit": ask.payees_limit},
        ).fetchone()  # fmt: skip
        parts = iter(row)
        joined = next(parts)
        amounts = tuple(map(int, joined.split(","))) if joined else ()
        paid = int(next(parts)) if paid_asked else None
        payees = None
        if window_asked:
            names = next(parts)
            payees = frozenset(names.split(PAYEE_SEPARATOR)) if names else frozenset()
        return PaymentHistory(amounts, (), paid, payees)

    def payees_paid_since(self, payer_id: str, since: float, limit: int) -> set[str]:
        """The payees of the payer's committed payments created at or after `since` (at most
        `limit`): from `payees_paid` (migration 5), one index entry per payee, however many
        payments the payer made."""
        rows = self._c.execute(
            "SELECT payee FROM payees_paid WHERE payer_id = ? AND last_at >= ? LIMIT ?",
            (payer_id, since, limit),
        )
        return {row[0] for row in rows}

    def first_payment_to(self, payer_id: str, payee: str) -> float | None:
        """When the payer first made a payment to `payee` that did not fail, or None."""
        # in the order of transactions_payer_payee: stops at the first payment that did not fail
        row = self._one(
            "SELECT created_at FROM transactions WHERE payer_id = ? AND payee = ?"
            " AND state != 'FAILED' ORDER BY created_at LIMIT 1",
            payer_id, payee,
        )  # fmt: skip
        return float(row[0]) if row else None

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
        """Transactions matching every given filter, by creation time then reference."""
        sql, args = "SELECT * FROM transactions WHERE 1 = 1", list[Any]()
        for clause, value in (
            ("reference = ?", reference),
            ("state = ?", state.value if state else None),
            ("created_at >= ?", since),
            ("created_at < ?", until),
        ):
            if value is not None:
                sql += f" AND {clause}"
                args.append(value)
        if phone is not None:
            sql += " AND (payer_phone = ? OR payee = ?)"
            args += [phone, phone]
        order = "ASC" if oldest_first else "DESC"
        sql += f" ORDER BY created_at {order}, reference LIMIT ? OFFSET ?"
        return [transaction_of(r) for r in self._c.execute(sql, (*args, limit, offset))]

    def transaction_groups(self, since: float, until: float) -> list[TransactionGroup]:
        """Counts and sums of transactions created in [since, until), by state, channel, reason."""
        # a failure's reason up to its first ':' ("insufficient_funds", "rejected by staff")
        rows = self._c.execute(
            "SELECT state, channel, CASE WHEN state = 'FAILED'"
            " THEN substr(reason, 1, instr(reason || ':', ':') - 1) ELSE '' END AS why,"
            " COUNT(*), COALESCE(SUM(amount), 0) FROM transactions"
            " WHERE created_at >= ? AND created_at < ? GROUP BY state, channel, why",
            (since, until),
        )
        return [TransactionGroup(TransactionState(r[0]), r[1], r[2], r[3], r[4]) for r in rows]

    def settle_seconds(self, since: float, until: float, limit: int) -> list[float]:
        """Seconds from creation to SUCCESS or FAILED, for at most `limit` transactions."""
        rows = self._c.execute(
            "SELECT MIN(e.at) - t.created_at FROM transactions t"
            " JOIN transaction_events e ON e.reference = t.reference"
            " WHERE t.created_at >= ? AND t.created_at < ? AND t.state IN (?, ?)"
            " AND e.state IN (?, ?) GROUP BY t.reference ORDER BY t.created_at DESC LIMIT ?",
            (since, until, *FINAL_STATES, *FINAL_STATES, limit),
        )
        return [max(0.0, float(r[0])) for r in rows]
