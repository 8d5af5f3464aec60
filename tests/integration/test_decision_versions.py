"""SQLite's decision versions (migration 6): every change to what a payment's checks read about
its payer moves the payer's number on, whichever code path writes it, and nothing else does.

A payment decided in a snapshot before the writers' lock is applied only if its payer's number
is still the one it read (app/services/inbound.py), so a write that changed what it read but
left the number alone would let a stale decision through.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from crypto.replay import ReplayWindow
from storage.models import Device, Posting, Transaction, TransactionKind, TransactionState, User
from storage.sqlite import SqliteStore
from storage.sqlite.unit_of_work import SqliteUnitOfWork

Step = Callable[[SqliteUnitOfWork], Any]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "store.sqlite3")
    s.init()

    def setup(uow: SqliteUnitOfWork) -> None:
        for uid, phone in (("a", "+911111111111"), ("b", "+912222222222")):
            uow.insert_user(User(uid, phone, "Name", b"salt", b"hash", 1.0))
            uow.create_account(f"user:{uid}")
        uow.create_account("system:cash_in", allow_negative=True)
        uow.post_entry("SEED", [Posting("system:cash_in", -900), Posting("user:b", 900)], 1.0)

    s.atomic(setup)
    yield s
    s.close()


def payment(ref: str, payer: str, payee_id: str | None, payee: str) -> Transaction:
    return Transaction(
        ref, TransactionKind.TRANSFER, 100, TransactionState.PENDING, 10.0, 10.0,
        payer_id=payer, payer_phone="+910000000000", payee_id=payee_id, payee=payee,
    )  # fmt: skip


def test_each_change_to_what_a_payment_reads_about_its_payer_moves_the_number(
    store: SqliteStore,
) -> None:
    device = Device(7, "a", "+911111111111", b"wrapped", 1.0)
    moves: list[tuple[str, Step]] = [
        ("a wrong PIN", lambda uow: uow.set_pin_state("a", 1, None)),
        ("the usual area", lambda uow: uow.set_usual_area("a", 12.9, 77.6)),
        ("a new device", lambda uow: uow.insert_device(device)),
        ("a frame accepted", lambda uow: uow.save_window(7, ReplayWindow().accept(1), 2.0)),
        ("a new device key", lambda uow: uow.set_device_key(7, b"rewrapped")),
        ("devices disabled", lambda uow: uow.deactivate_devices("a")),
        ("the running totals", lambda uow: uow.add_spent("a", 100, 0.0, 0.0)),
        ("a payment", lambda uow: uow.insert_transaction(payment("P1", "a", "b", "+91222"), "c")),
        ("its state", lambda uow: uow.set_state("P1", TransactionState.FAILED, "refused", 11.0)),
        ("totals taken back", lambda uow: uow.remove_spent("a", 100, 10.0)),
    ]
    to_a = payment("P2", "b", "a", "+911111111111")
    money_in = [Posting("user:b", -5), Posting("user:a", 5)]
    still: list[tuple[str, Step]] = [
        ("a payment to them", lambda uow: uow.insert_transaction(to_a, "c")),
        ("money in", lambda uow: uow.post_entry("P2", money_in, 3.0)),
        ("another user's PIN", lambda uow: uow.set_pin_state("b", 2, None)),
        ("another user's totals", lambda uow: uow.add_spent("b", 100, 0.0, 0.0)),
    ]  # fmt: skip

    def number() -> int | None:
        return store.read(lambda uow: uow.decision_version("a"))

    assert number() == 0  # nothing changed yet
    for what, step in moves:
        before = number()
        store.atomic(step)
        assert number() > (before or 0), what  # on, by one write or more
    for what, step in still:
        before = number()
        store.atomic(step)
        assert number() == before, what


def test_a_number_moved_inside_a_unit_that_fails_moves_back(store: SqliteStore) -> None:
    def fails(uow: SqliteUnitOfWork) -> None:
        uow.set_pin_state("a", 1, None)
        raise ValueError("refused")

    with pytest.raises(ValueError):
        store.atomic(fails)
    assert store.read(lambda uow: uow.decision_version("a")) == 0
