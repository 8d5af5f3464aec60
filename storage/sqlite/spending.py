"""Running spending totals per payer over SQLite: the `spending` table, one row per payer."""

from __future__ import annotations

from functools import partial

from storage.contract import Spending
from storage.contract.spending import Standing
from storage.errors import NotFound
from storage.models import user_account
from storage.sqlite.base import SqliteBase
from storage.sqlite.transactions import committed_since
from storage.totals import UNKNOWN_ROW, Row, brought_to, without

# `standing`: ?1 the payer, ?2 the payee, ?3 the payer's wallet; one row, NULL where none matched
_STANDING = (
    "SELECT (SELECT id FROM users WHERE phone = ?2),"
    " (SELECT balance FROM accounts WHERE id = ?3),"
    " (SELECT created_at FROM transactions WHERE payer_id = ?1 AND payee = ?2"
    " AND state != 'FAILED' ORDER BY created_at LIMIT 1), "
    + ", ".join(
        f"(SELECT {column} FROM spending WHERE payer_id = ?1)"
        for column in ("day_start", "day_amount", "month_start", "month_amount")  # a Row
    )
)


class SqliteSpending(SqliteBase, Spending):
    """`spending` (payer_id primary key); units of work are serialised, so read then write."""

    def _row(self, payer_id: str) -> Row | None:
        row = self._one(
            "SELECT day_start, day_amount, month_start, month_amount FROM spending"
            " WHERE payer_id = ?",
            payer_id,
        )
        return (row[0], row[1], row[2], row[3]) if row else None

    def _write(self, payer_id: str, row: Row) -> None:
        self._c.execute(
            "INSERT INTO spending (payer_id, day_start, day_amount, month_start, month_amount)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (payer_id) DO UPDATE SET"
            " day_start = excluded.day_start, day_amount = excluded.day_amount,"
            " month_start = excluded.month_start, month_amount = excluded.month_amount",
            (payer_id, *row),
        )

    def _current(self, payer_id: str, day_start: float, month_start: float) -> Row:
        return self._brought(payer_id, self._row(payer_id), day_start, month_start)

    def _brought(self, payer_id: str, row: Row | None, day_start: float, month_start: float) -> Row:
        summed = partial(committed_since, self._c, payer_id)
        current = brought_to(row, day_start, month_start, summed)
        if current != row:
            self._write(payer_id, current)
        return current

    def spent(self, payer_id: str, day_start: float, month_start: float) -> tuple[int, int]:
        """The payer's committed paise since `day_start` and since `month_start`."""
        _, day, _, month = self._current(payer_id, day_start, month_start)
        return day, month

    def standing(self, payer_id: str, payee: str, day_start: float, month_start: float) -> Standing:
        """The payee's id, the payer's balance, first payment to the payee and totals' row in
        one statement, each part by its index (tests/integration/test_query_plans.py)."""
        found = self._one(_STANDING, payer_id, payee, user_account(payer_id))
        assert found is not None  # one row, whatever matched
        payee_id, balance, first_paid, d0, day, m0, month = found
        if balance is None:
            raise NotFound(f"account {user_account(payer_id)}")
        row = None if d0 is None else (d0, day, m0, month)
        _, day, _, month = self._brought(payer_id, row, day_start, month_start)
        return Standing(
            payee_id=payee_id,
            spent_today=day,
            spent_month=month,
            balance=int(balance),
            first_paid=None if first_paid is None else float(first_paid),
        )

    def add_spent(self, payer_id: str, amount: int, day_start: float, month_start: float) -> None:
        """Count a committed payment created now (before it is inserted): one conditional
        UPDATE when the row holds this day and month (the caps' read just brought it there),
        else the row is brought to them first."""
        cur = self._c.execute(
            "UPDATE spending SET day_amount = day_amount + ?, month_amount = month_amount + ?"
            " WHERE payer_id = ? AND day_start = ? AND month_start = ?",
            (amount, amount, payer_id, day_start, month_start),
        )
        if cur.rowcount == 1:
            return
        d0, day, m0, month = self._current(payer_id, day_start, month_start)
        self._write(payer_id, (d0, day + amount, m0, month + amount))

    def remove_spent(self, payer_id: str, amount: int, created_at: float) -> None:
        """A committed payment left the committed states: out of the totals it is in."""
        row = self._row(payer_id)
        self._write(payer_id, UNKNOWN_ROW if row is None else without(row, amount, created_at))
