"""The double-entry ledger over SQLite: accounts, entries and their postings."""

from __future__ import annotations

from collections.abc import Sequence

from storage.contract import Ledger
from storage.errors import InsufficientFunds, NotFound, UnbalancedEntry
from storage.models import LedgerEntry, Posting
from storage.sqlite.base import SqliteBase


class SqliteLedger(SqliteBase, Ledger):
    """Balances live on the accounts rows; a CHECK keeps non-system accounts at zero or above."""

    def create_account(self, account: str, allow_negative: bool = False) -> None:
        """Open an account at zero; DuplicateKey if it exists."""
        self._insert(
            "INSERT INTO accounts (id, allow_negative) VALUES (?, ?)", account, allow_negative
        )

    def balance(self, account: str) -> int:
        """The account's balance in paise; NotFound for an unknown account."""
        row = self._one("SELECT balance FROM accounts WHERE id = ?", account)
        if row is None:
            raise NotFound(f"account {account}")
        return int(row[0])

    def post_entry(self, reference: str, postings: Sequence[Posting], at: float) -> dict[str, int]:
        """Apply a balanced entry; each debit is conditional on the balance it leaves, which the
        update returns."""
        if len(postings) < 2 or sum(p.amount for p in postings) != 0:
            raise UnbalancedEntry(f"entry for {reference} does not balance")
        entry_id = self._insert(
            "INSERT INTO ledger_entries (reference, created_at) VALUES (?, ?)", reference, at
        )
        balances: dict[str, int] = {}
        for p in postings:
            row = self._c.execute(
                "UPDATE accounts SET balance = balance + ? WHERE id = ?"
                " AND (allow_negative OR balance + ? >= 0) RETURNING balance",
                (p.amount, p.account, p.amount),
            ).fetchone()
            if row is None:
                if self._one("SELECT 1 FROM accounts WHERE id = ?", p.account) is None:
                    raise NotFound(f"account {p.account}")
                raise InsufficientFunds(p.account)
            balances[p.account] = int(row[0])
        # the postings in one INSERT, in the order given (a refusal above undoes the unit of
        # work, so none is written then): one statement inside the writers' lock, not one each
        self._c.execute(
            "INSERT INTO postings VALUES " + ", ".join(["(?, ?, ?)"] * len(postings)),
            [v for p in postings for v in (entry_id, p.account, p.amount)],
        )
        return balances

    def entries(self, reference: str) -> list[LedgerEntry]:
        """The entries posted for one transaction, oldest first, postings in the order given."""
        rows = self._c.execute(
            "SELECT e.id, e.created_at, p.account, p.amount FROM ledger_entries e"
            " JOIN postings p ON p.entry_id = e.id WHERE e.reference = ? ORDER BY e.id, p.rowid",
            (reference,),
        ).fetchall()
        by_id: dict[int, tuple[float, list[Posting]]] = {}
        for r in rows:
            by_id.setdefault(r["id"], (r["created_at"], []))[1].append(
                Posting(r["account"], r["amount"])
            )
        return [LedgerEntry(str(i), reference, tuple(ps), at) for i, (at, ps) in by_id.items()]

    def total_balance(self) -> int:
        """The sum over every account: zero whenever the ledger is whole."""
        return int(self._one("SELECT COALESCE(SUM(balance), 0) FROM accounts")[0])  # type: ignore[index]
