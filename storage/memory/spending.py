"""Running spending totals per payer, in memory: one immutable row per payer."""

from __future__ import annotations

from functools import partial

from storage.memory.tables import Part
from storage.memory.transactions import committed_since
from storage.totals import UNKNOWN_ROW, Row, brought_to, without


class SpendingPart(Part):
    """`Spending` of the contract; units of work are serialised by the store's lock."""

    def _current(self, payer_id: str, day_start: float, month_start: float) -> Row:
        row = self._t.spending.get(payer_id)
        summed = partial(committed_since, self._t, payer_id)
        current = brought_to(row, day_start, month_start, summed)
        if current != row:
            self._w().spending[payer_id] = current
        return current

    def spent(self, payer_id: str, day_start: float, month_start: float) -> tuple[int, int]:
        _, day, _, month = self._current(payer_id, day_start, month_start)
        return day, month

    def add_spent(self, payer_id: str, amount: int, day_start: float, month_start: float) -> None:
        d0, day, m0, month = self._current(payer_id, day_start, month_start)
        self._w().spending[payer_id] = (d0, day + amount, m0, month + amount)

    def remove_spent(self, payer_id: str, amount: int, created_at: float) -> None:
        row = self._t.spending.get(payer_id)
        self._w().spending[payer_id] = (
            UNKNOWN_ROW if row is None else without(row, amount, created_at)
        )
