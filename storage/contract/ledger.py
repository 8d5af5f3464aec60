"""The double-entry ledger: accounts in integer paise and balanced entries that move them.

Writes go through app/services/ledger.py, the one place that says which postings a movement makes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from storage.models import LedgerEntry, Posting


class Ledger(Protocol):
    """Accounts and entries; only `allow_negative` (system) accounts ever go below zero."""

    def create_account(self, account: str, allow_negative: bool = False) -> None:
        """Open an account at zero; DuplicateKey if it exists."""
        ...

    def balance(self, account: str) -> int:
        """The account's balance in paise; NotFound for an unknown account."""
        ...

    def post_entry(self, reference: str, postings: Sequence[Posting], at: float) -> dict[str, int]:
        """Apply a balanced entry atomically with conditional debits; return each posted account's
        balance after the entry (read by the same write that changed it: no further read).

        UnbalancedEntry if the postings do not sum to zero (or are fewer than two), NotFound for an
        unknown account, InsufficientFunds if a debit would take a non-negative account below zero;
        on any of these the caller's unit of work must be undone (the backend raises before commit).
        """
        ...

    def entries(self, reference: str) -> list[LedgerEntry]:
        """The entries posted for one transaction, oldest first, postings in the order given."""
        ...

    def total_balance(self) -> int:
        """The sum over every account: zero whenever the ledger is whole."""
        ...
