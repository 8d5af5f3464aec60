"""Running totals of what each payer committed today and this month, kept beside the payments.

A payment's risk rules need the payer's committed paise since local midnight and since the first
of the local month. Summing the day's payments on every payment costs more the more a payer pays;
instead one row per payer holds both totals, brought up to date in the unit of work of every
change that moves them (app/services/ledger.py: `open_payment`, `move`). The reference they must
always equal is `Transactions.debited_since`; a missing row (a payer from before the totals, an
imported store) is made from it once.

Every method writes the payer's row, so two units of work that change one payer's totals conflict
(SQLite serialises them; MongoDB retries one): call them inside `store.atomic`, never `read`.
"""

from __future__ import annotations

from typing import Protocol


class Spending(Protocol):
    """Per payer: committed (PENDING, PROCESSING, SUCCESS, FLAGGED) paise of a day and a month."""

    def spent(self, payer_id: str, day_start: float, month_start: float) -> tuple[int, int]:
        """The payer's committed paise created since `day_start` and since `month_start`.

        Equals `debited_since` for both. A missing row, or a row of another day or month, is
        summed from the payments of the period asked (at a period's start: the few made since).
        """
        ...

    def add_spent(self, payer_id: str, amount: int, day_start: float, month_start: float) -> None:
        """Count a committed payment created now; call it BEFORE inserting that payment.

        Brings the row to `day_start` and `month_start` as `spent` does (a sum made here does not
        see the payment yet), then adds `amount` to both totals.
        """
        ...

    def remove_spent(self, payer_id: str, amount: int, created_at: float) -> None:
        """A committed payment created at `created_at` left the committed states (FAILED).

        Subtracts `amount` from each total whose period started at or before `created_at`. With no
        row, marks the payer's totals to be summed again from the payments by the next `spent`.
        """
        ...
