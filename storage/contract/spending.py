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

from dataclasses import dataclass
from typing import Protocol

from sms.numbers import is_e164
from storage.contract.ledger import Ledger
from storage.contract.transactions import Transactions
from storage.contract.users import Users
from storage.models import user_account


@dataclass(frozen=True)
class Standing:
    """What a payment's checks read about its payer and payee, in one go (`Spending.standing`)."""

    payee_id: str | None  # the user registered on the payee's number; None: none (or a UPI id)
    spent_today: int  # as `spent`
    spent_month: int
    balance: int  # the payer's wallet
    first_paid: float | None  # as `first_payment_to`


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

    def standing(self, payer_id: str, payee: str, day_start: float, month_start: float) -> Standing:
        """`spent`, the payer's wallet balance, `first_payment_to(payer_id, payee)` and the user
        registered on `payee`, read together (SQLite: one statement inside the writers' lock,
        instead of four; MongoDB: one aggregation, instead of four round trips). Brings the
        totals' row to the periods as `spent` does; NotFound if the payer has no wallet."""
        ...


class StandingSources(Users, Ledger, Transactions, Spending, Protocol):
    """The parts `standing_of` reads."""


def standing_of(
    uow: StandingSources, payer_id: str, payee: str, day_start: float, month_start: float
) -> Standing:
    """`Spending.standing` made of the four reads it stands for (the memory store). A user's
    number is E.164 (register_user checks it), so another payee (a UPI id) names no user: not
    looked up."""
    payee_user = uow.get_user_by_phone(payee) if is_e164(payee) else None
    day, month = uow.spent(payer_id, day_start, month_start)
    return Standing(
        payee_id=payee_user.id if payee_user else None,
        spent_today=day,
        spent_month=month,
        balance=uow.balance(user_account(payer_id)),
        first_paid=uow.first_payment_to(payer_id, payee),
    )
