"""Running spending totals per payer over SQLite: the `spending` table, one row per payer."""

from __future__ import annotations

from functools import partial

from storage.contract import Spending
from storage.sqlite.base import SqliteBase
from storage.sqlite.transactions import committed_since
from storage.totals import UNKNOWN_ROW, Row, brought_to, without


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
        row = self._row(payer_id)
        summed = partial(committed_since, self._c, payer_id)
        current = brought_to(row, day_start, month_start, summed)
        if current != row:
            self._write(payer_id, current)
        return current

    def spent(self, payer_id: str, day_start: float, month_start: float) -> tuple[int, int]:
        """The payer's committed paise since `day_start` and since `month_start`."""
        _, day, _, month = self._current(payer_id, day_start, month_start)
        return day, month

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
