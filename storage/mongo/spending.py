"""Running spending totals per payer in MongoDB: `spending`, one document per payer (_id)."""

from __future__ import annotations

from functools import partial
from typing import Any

from sms.numbers import is_e164
from storage.contract.spending import Spending, Standing
from storage.errors import NotFound
from storage.models import user_account
from storage.mongo.base import MongoBase
from storage.mongo.transactions import committed_since
from storage.totals import UNKNOWN_ROW, Row, brought_to, without


class MongoSpending(MongoBase, Spending):
    """Read and replaced inside the caller's transaction: a concurrent unit of work that writes
    the same payer's document conflicts with this one, and the store runs one of them again."""

    def _row(self, payer_id: str) -> Row | None:
        return _row_of(self._find("spending", {"_id": payer_id}))

    def _write(self, payer_id: str, row: Row) -> None:
        day_start, day, month_start, month = row
        self._db.spending.replace_one(
            {"_id": payer_id},
            {"day_start": day_start, "day_amount": day, "month_start": month_start,
             "month_amount": month},
            upsert=True,
            session=self._s,
        )  # fmt: skip

    def _current(self, payer_id: str, day_start: float, month_start: float) -> Row:
        return self._brought(payer_id, self._row(payer_id), day_start, month_start)

    def _brought(self, payer_id: str, row: Row | None, day_start: float, month_start: float) -> Row:
        """The payer's row (None: there is none) brought to these periods, written if changed."""
        current = brought_to(row, day_start, month_start, partial(committed_since, self, payer_id))
        if current != row:
            self._write(payer_id, current)
        return current

    def spent(self, payer_id: str, day_start: float, month_start: float) -> tuple[int, int]:
        """The payer's committed paise since `day_start` and since `month_start`."""
        _, day, _, month = self._current(payer_id, day_start, month_start)
        return day, month

    def add_spent(self, payer_id: str, amount: int, day_start: float, month_start: float) -> None:
        """Count a committed payment created now (before it is inserted).

        One conditional `$inc` when the row already holds these periods (as after `spent`, which
        a payment reads first); otherwise the row is brought to them and written, as before.
        """
        counted = self._db.spending.update_one(
            {"_id": payer_id, "day_start": day_start, "month_start": month_start},
            {"$inc": {"day_amount": amount, "month_amount": amount}},
            session=self._s,
        )
        if counted.matched_count == 1:
            return
        d0, day, m0, month = self._current(payer_id, day_start, month_start)
        self._write(payer_id, (d0, day + amount, m0, month + amount))

    def remove_spent(self, payer_id: str, amount: int, created_at: float) -> None:
        """A committed payment left the committed states: out of the totals it is in."""
        row = self._row(payer_id)
        # with no document, one is written all the same: a unit of work making it from the
        # transactions at this moment conflicts with this one instead of missing the change
        self._write(payer_id, UNKNOWN_ROW if row is None else without(row, amount, created_at))

    def standing(self, payer_id: str, payee: str, day_start: float, month_start: float) -> Standing:
        """The payer's wallet, with its totals' row, its first payment to `payee` and the user
        registered on `payee` joined by `$lookup`: one round trip where four were (`$lookup`
        runs inside a transaction on unsharded collections). A row of other periods is brought
        to these as `spent` does (more trips, once a day per payer). A payee that is not an E.164
        number (a UPI id) names no user (register_user checks users' numbers): not looked up."""
        account = user_account(payer_id)
        first_paid: list[dict[str, Any]] = [
            {"$match": {"payer_id": payer_id, "payee": payee, "state": {"$ne": "FAILED"}}},
            {"$sort": {"created_at": 1}},
            {"$limit": 1},
            {"$project": {"created_at": 1}},
        ]
        joins: list[tuple[str, list[dict[str, Any]]]] = [
            ("spending", [{"$match": {"_id": payer_id}}]),
            ("transactions", first_paid),
        ]
        if is_e164(payee):
            joins.append(("users", [{"$match": {"phone": payee}}, {"$project": {"_id": 1}}]))
        pipeline: list[dict[str, Any]] = [
            {"$match": {"_id": account}},
            {"$project": {"balance": 1}},
            *({"$lookup": {"from": name, "pipeline": p, "as": name}} for name, p in joins),
        ]
        found = list(self._db.accounts.aggregate(pipeline, session=self._s))
        if not found:
            raise NotFound(f"account {account}")
        d = found[0]
        row = _row_of(d["spending"][0]) if d["spending"] else None
        current = self._brought(payer_id, row, day_start, month_start)
        payee_user, first = d.get("users") or [], d["transactions"]
        return Standing(
            payee_id=payee_user[0]["_id"] if payee_user else None,
            spent_today=current[1],
            spent_month=current[3],
            balance=int(d["balance"]),
            first_paid=float(first[0]["created_at"]) if first else None,
        )


def _row_of(d: dict[str, Any] | None) -> Row | None:
    """A `spending` document as a Row (None: none)."""
    if d is None:
        return None
    return d["day_start"], d["day_amount"], d["month_start"], d["month_amount"]
