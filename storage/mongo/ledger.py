"""The double-entry ledger in MongoDB: `accounts` with their balances, `ledger_entries`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import ReturnDocument

from storage.contract.ledger import Ledger
from storage.errors import InsufficientFunds, NotFound, UnbalancedEntry
from storage.models import Account, LedgerEntry, Posting
from storage.mongo import documents as docs
from storage.mongo.base import MongoBase


class MongoLedger(MongoBase, Ledger):
    """Balances change by `$inc`; a debit is conditional on the balance it needs."""

    def create_account(self, account: str, allow_negative: bool = False) -> None:
        """Open an account at zero; DuplicateKey if it exists."""
        self._insert("accounts", docs.account_doc(Account(account, 0, allow_negative)))

    def balance(self, account: str) -> int:
        """The account's balance in paise; NotFound for an unknown account."""
        d = self._find("accounts", {"_id": account})
        if d is None:
            raise NotFound(f"account {account}")
        return int(d["balance"])

    def post_entry(self, reference: str, postings: Sequence[Posting], at: float) -> dict[str, int]:
        """Apply a balanced entry: one conditional update per posting, each returning the balance
        it leaves, then the entry itself."""
        if len(postings) < 2 or sum(p.amount for p in postings) != 0:
            raise UnbalancedEntry(f"entry for {reference} does not balance")
        balances: dict[str, int] = {}
        for p in postings:
            cond: dict[str, Any] = {"_id": p.account}
            if p.amount < 0:  # the filter is the check: no read, no race with another debit
                cond["$or"] = [{"allow_negative": True}, {"balance": {"$gte": -p.amount}}]
            after = self._db.accounts.find_one_and_update(
                cond,
                {"$inc": {"balance": p.amount}},
                projection={"balance": 1},
                return_document=ReturnDocument.AFTER,
                session=self._s,
            )
            if after is None:
                if self._find("accounts", {"_id": p.account}) is None:
                    raise NotFound(f"account {p.account}")
                raise InsufficientFunds(p.account)
            balances[p.account] = int(after["balance"])
        self._insert("ledger_entries", docs.entry_doc(reference, postings, at))
        return balances

    def entries(self, reference: str) -> list[LedgerEntry]:
        """The entries posted for one transaction, oldest first."""
        found = self._db.ledger_entries.find({"reference": reference}, session=self._s)
        return [docs.entry(d) for d in found.sort("_id")]

    def total_balance(self) -> int:
        """The sum over every account: zero whenever the ledger is whole."""
        rows = list(
            self._db.accounts.aggregate(
                [{"$group": {"_id": None, "total": {"$sum": "$balance"}}}], session=self._s
            )
        )
        return int(rows[0]["total"]) if rows else 0
