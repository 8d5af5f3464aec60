"""The running-totals rule every backend applies to a payer's spending row (contract/spending.py).

A row is (day_start, day_amount, month_start, month_amount): the payer's committed paise created
at or after each start, kept equal to that sum by every payment counted or taken out. Asked about
another period than the row holds (the next day, the next month; or an earlier one, from a clock
behind the one that wrote the row), or with no row, the store sums the payments of that period
(`debited_since`) and keeps the result. At a period's start that sum reads the few payments made
since, once per payer and period. Restarting at 0 instead would be wrong whenever payments of the
new period already exist (a row written for an earlier period by a clock behind), and no cheaper.
"""

from __future__ import annotations

from collections.abc import Callable

Row = tuple[float, int, float, int]  # day_start, day_amount, month_start, month_amount
UNKNOWN = float("inf")  # a start no period reaches: the next `spent` sums the payments again
UNKNOWN_ROW: Row = (UNKNOWN, 0, UNKNOWN, 0)


def brought_to(
    row: Row | None, day_start: float, month_start: float, summed: Callable[[float], int]
) -> Row:
    """The row for the periods starting at `day_start` and `month_start`."""

    def period(start: float | None, amount: int, asked: float) -> int:
        return amount if start == asked else summed(asked)

    day = period(row[0] if row else None, row[1] if row else 0, day_start)
    month = period(row[2] if row else None, row[3] if row else 0, month_start)
    return day_start, day, month_start, month


def without(row: Row, amount: int, created_at: float) -> Row:
    """The row once a payment created at `created_at` no longer counts."""
    day_start, day, month_start, month = row
    return (
        day_start,
        day - amount if created_at >= day_start else day,
        month_start,
        month - amount if created_at >= month_start else month,
    )
