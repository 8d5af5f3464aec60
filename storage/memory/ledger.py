"""The double-entry ledger in memory: accounts with their balances, and balanced entries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from storage.errors import DuplicateKey, InsufficientFunds, NotFound, UnbalancedEntry
from storage.memory.tables import Part
from storage.models import Account, LedgerEntry, Posting


class LedgerPart(Part):
    """`Ledger` of the contract; a failed entry is undone with the rest of its unit of work."""

    def create_account(self, account: str, allow_negative: bool = False) -> None:
        t = self._w()
        if account in t.accounts:
            raise DuplicateKey(f"account {account}")
        t.accounts[account] = Account(account, 0, allow_negative)

    def balance(self, account: str) -> int:
        found = self._t.accounts.get(account)
        if found is None:
            raise NotFound(f"account {account}")
        return found.balance

    def post_entry(self, reference: str, postings: Sequence[Posting], at: float) -> dict[str, int]:
        if len(postings) < 2 or sum(p.amount for p in postings) != 0:
            raise UnbalancedEntry(f"entry for {reference} does not balance")
        t = self._w()
        entry_id = t.next_id("ledger_entries")
        balances: dict[str, int] = {}
        for p in postings:  # one leg after the other, as SQLite and MongoDB apply them
            account = t.accounts.get(p.account)
            if account is None:
                raise NotFound(f"account {p.account}")
            if not account.allow_negative and account.balance + p.amount < 0:
                raise InsufficientFunds(p.account)
            t.accounts[p.account] = replace(account, balance=account.balance + p.amount)
            balances[p.account] = account.balance + p.amount
        t.ledger_entries[entry_id] = LedgerEntry(str(entry_id), reference, tuple(postings), at)
        return balances

    def entries(self, reference: str) -> list[LedgerEntry]:
        found = [e for i, e in sorted(self._t.ledger_entries.items()) if e.reference == reference]
        return found

    def total_balance(self) -> int:
        return sum(a.balance for a in self._t.accounts.values())
