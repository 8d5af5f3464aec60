"""Transactions in MongoDB: one document each, its history an array inside it; the queries."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING

from storage.contract.transactions import Transactions, opened
from storage.errors import NotFound, StateChanged
from storage.history import COMMITTED_STATES, HistoryAsk, PaymentHistory, from_rows
from storage.models import (
    RecentPayment,
    Transaction,
    TransactionEvent,
    TransactionGroup,
    TransactionState,
)
from storage.mongo import documents as docs
from storage.mongo.base import MongoBase

LIVE_STATES = sorted(s.value for s in COMMITTED_STATES)  # money the payer committed
FINAL_STATES = ["SUCCESS", "FAILED"]


RECENT_FIELDS = {"payee": 1, "amount": 1, "created_at": 1, "state": 1, "lat": 1, "lon": 1}


def committed_since(base: MongoBase, payer_id: str, since: float, payee: str | None = None) -> int:
    """Paise a payer committed since `since` (to `payee` only, if given): the sum behind
    `debited_since` and the totals."""
    match: dict[str, Any] = {
        "payer_id": payer_id,
        "created_at": {"$gte": since},
        "state": {"$in": LIVE_STATES},
    }
    if payee is not None:
        match["payee"] = payee
    rows = list(
        base._db.transactions.aggregate(
            [
                {"$match": match},
                {"$group": {"_id": None, "total": {"$sum": "$amount"}}},
            ],
            session=base._s,
        )
    )
    return int(rows[0]["total"]) if rows else 0


class MongoTransactions(MongoBase, Transactions):
    """`transactions`: _id the reference; a state change and its event are one update."""

    def insert_transaction(
        self, txn: Transaction, reason: str, then: tuple[TransactionState, str] | None = None
    ) -> None:
        """Add a transaction and its first event (and a second, `then`: see the contract);
        DuplicateKey if the reference is taken."""
        self._insert("transactions", docs.transaction_doc(*opened(txn, reason, then)))

    def set_state(
        self,
        reference: str,
        state: TransactionState,
        reason: str,
        at: float,
        expected: TransactionState | None = None,
    ) -> None:
        """Move a transaction to `state` and append the event, in one update (conditional on
        `expected`); NotFound for an unknown one, StateChanged if not in `expected`."""
        filter_: dict[str, Any] = {"_id": reference}
        if expected is not None:
            filter_["state"] = expected.value
        result = self._db.transactions.update_one(
            filter_,
            {
                "$set": {"state": state.value, "reason": reason, "updated_at": at},
                "$push": {"events": docs.event_doc(state, reason, at)},
            },
            session=self._s,
        )
        if result.matched_count != 1:
            if expected is not None and self._find("transactions", {"_id": reference}):
                raise StateChanged(f"{reference} is not {expected.value}")
            raise NotFound(f"transactions {filter_}")

    def get_transaction(self, reference: str) -> Transaction | None:
        """The transaction with this reference, or None."""
        d = self._find("transactions", {"_id": reference})
        return docs.transaction(d) if d else None

    def events(self, reference: str) -> list[TransactionEvent]:
        """Every state the transaction went through, oldest first."""
        d = self._db.transactions.find_one({"_id": reference}, {"events": 1}, session=self._s)
        return docs.events(reference, d)

    def debited_since(self, user_id: str, since: float, payee: str | None = None) -> int:
        """Paise a payer committed since `since` (to `payee` only, if given)."""
        return committed_since(self, user_id, since, payee)

    def recent_payments(self, payer_id: str, since: float, limit: int) -> list[RecentPayment]:
        """A payer's newest payments since `since`, only the fields the rules read."""
        found = self._db.transactions.find(
            {"payer_id": payer_id, "created_at": {"$gte": since}},
            RECENT_FIELDS,
            session=self._s,
        ).sort([("created_at", DESCENDING), ("_id", ASCENDING)])
        return [
            RecentPayment(
                d["_id"],
                d.get("payee"),
                d["amount"],
                d["created_at"],
                d["state"],
                d.get("lat"),
                d.get("lon"),
            )
            for d in found.limit(limit)
        ]

    def payment_history(self, payer_id: str, ask: HistoryAsk) -> PaymentHistory:
        """From the payer's newest payments, read in one query (storage/history.py)."""
        return from_rows(payer_id, self.recent_payments(payer_id, ask.since, ask.limit), ask, self)

    def payees_paid_since(self, payer_id: str, since: float, limit: int) -> set[str]:
        """The payees of the payer's committed payments created at or after `since` (at most
        `limit`)."""
        match = {"payer_id": payer_id, "created_at": {"$gte": since}, "state": {"$in": LIVE_STATES}}
        rows = self._db.transactions.aggregate(
            [{"$match": match}, {"$group": {"_id": "$payee"}}, {"$limit": limit}],
            session=self._s,
        )
        return {row["_id"] for row in rows}

    def first_payment_to(self, payer_id: str, payee: str) -> float | None:
        """When the payer first made a payment to `payee` that did not fail, or None."""
        first = self._db.transactions.find_one(
            {"payer_id": payer_id, "payee": payee, "state": {"$ne": "FAILED"}},
            {"created_at": 1},
            sort=[("created_at", ASCENDING)],
            session=self._s,
        )
        return float(first["created_at"]) if first else None

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
        query: dict[str, Any] = {}
        if reference is not None:
            query["_id"] = reference
        if state is not None:
            query["state"] = state.value
        window = {op: value for op, value in (("$gte", since), ("$lt", until)) if value is not None}
        if window:
            query["created_at"] = window
        if phone is not None:
            query["$or"] = [{"payer_phone": phone}, {"payee": phone}]
        order = ASCENDING if oldest_first else DESCENDING
        found = self._db.transactions.find(query, {"events": 0}, session=self._s)
        found = found.sort([("created_at", order), ("_id", ASCENDING)])
        return [docs.transaction(d) for d in found.skip(offset).limit(limit)]

    def transaction_groups(self, since: float, until: float) -> list[TransactionGroup]:
        """Counts and sums of transactions created in [since, until), by state, channel, reason."""
        # a failure's reason up to its first ':' ("insufficient_funds", "rejected by staff")
        why = {
            "$cond": [
                {"$eq": ["$state", "FAILED"]},
                {"$arrayElemAt": [{"$split": ["$reason", ":"]}, 0]},
                "",
            ]
        }
        rows = self._db.transactions.aggregate(
            [
                {"$match": {"created_at": {"$gte": since, "$lt": until}}},
                {
                    "$group": {
                        "_id": {"state": "$state", "channel": "$channel", "why": why},
                        "count": {"$sum": 1},
                        "amount": {"$sum": "$amount"},
                    }
                },
            ],
            session=self._s,
        )
        return [
            TransactionGroup(
                TransactionState(r["_id"]["state"]),
                r["_id"]["channel"],
                r["_id"]["why"],
                int(r["count"]),
                int(r["amount"]),
            )
            for r in rows
        ]

    def settle_seconds(self, since: float, until: float, limit: int) -> list[float]:
        """Seconds from creation to the first final event, newest transactions first."""
        found = self._db.transactions.find(
            {"created_at": {"$gte": since, "$lt": until}, "state": {"$in": FINAL_STATES}},
            {"created_at": 1, "events": 1},
            session=self._s,
        )
        seconds = []
        for d in found.sort([("created_at", DESCENDING), ("_id", ASCENDING)]).limit(limit):
            finals = [e["at"] for e in d.get("events", []) if e["state"] in FINAL_STATES]
            if finals:
                seconds.append(max(0.0, float(min(finals) - d["created_at"])))
        return seconds
