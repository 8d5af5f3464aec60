"""What the in-memory store adds to the contract suite (tests/integration/test_store_contract.py,
which runs on it too): all-or-nothing by copy and swap, snapshots, one writer at a time, records
never shared, and no way for configuration to select it."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from storage.contract import UnitOfWork
from storage.memory import MemoryStore
from storage.models import InboundRecord, OutboundSms, Posting, User

ROOT = Path(__file__).resolve().parents[2]


def funded(balance: int = 1_000) -> MemoryStore:
    store = MemoryStore()

    def unit(uow: UnitOfWork) -> None:
        uow.create_account("system:cash_in", allow_negative=True)
        uow.create_account("user:a")
        uow.create_account("user:b")
        uow.post_entry("SEED", [Posting("system:cash_in", -balance), Posting("user:a", balance)], 1)

    store.atomic(unit)
    return store


def test_a_unit_that_raises_leaves_no_write_and_no_id_behind() -> None:
    store = funded()

    def unit(uow: UnitOfWork) -> None:
        uow.post_entry("T", [Posting("user:a", -10), Posting("user:b", 10)], 2)
        uow.insert_inbound(InboundRecord("tasker", "+911111111111", 2.0, "paid", "ok"))
        uow.enqueue_sms(OutboundSms("+911111111111", "hi", 2.0, "T"))
        uow.set_meta("k", b"v")
        raise RuntimeError("the caller changed its mind")

    with pytest.raises(RuntimeError):
        store.atomic(unit)

    def state(uow: UnitOfWork) -> tuple[object, ...]:
        return (
            uow.balance("user:a"),
            uow.entries("T"),
            uow.outbox(),
            uow.jobs(),
            uow.inbound_for("+911111111111"),
            uow.get_meta("k"),
        )

    assert store.read(state) == (1_000, [], [], [], [], None)
    store.atomic(lambda uow: uow.enqueue_sms(OutboundSms("+911111111111", "hi", 3.0)))
    assert [m.id for m in store.read(lambda uow: uow.outbox())] == ["1"]  # ids as if never tried


def test_a_read_is_a_snapshot_while_a_unit_commits() -> None:
    store = funded()
    looked, committed = threading.Event(), threading.Event()

    def read(uow: UnitOfWork) -> tuple[int, int]:
        before = uow.balance("user:a")
        looked.set()
        assert committed.wait(10)
        return before, uow.balance("user:a")

    seen: list[tuple[int, int]] = []
    reader = threading.Thread(target=lambda: seen.append(store.read(read)))
    reader.start()
    assert looked.wait(10)
    move = [Posting("user:a", -400), Posting("user:b", 400)]
    store.atomic(lambda uow: uow.post_entry("T", move, 2))
    committed.set()
    reader.join(10)
    assert seen == [(1_000, 1_000)]
    assert store.read(lambda uow: uow.balance("user:a")) == 600


def test_a_read_writes_nothing_and_units_do_not_nest() -> None:
    store = funded()
    with pytest.raises(RuntimeError, match="store.read is for queries"):
        store.read(lambda uow: uow.set_meta("k", b"v"))
    assert store.read(lambda uow: uow.get_meta("k")) is None
    with pytest.raises(RuntimeError, match="do not nest"):
        store.atomic(lambda uow: store.atomic(lambda inner: inner.set_meta("k", b"v")))
    store.atomic(lambda uow: uow.set_meta("k", b"v"))  # the store is usable after both


def test_units_of_work_from_many_threads_run_one_at_a_time() -> None:
    store = funded(balance=800)
    start = threading.Barrier(8)
    one_paisa = [Posting("user:a", -1), Posting("user:b", 1)]

    def spend() -> None:
        start.wait()
        for _ in range(50):  # read, then write: lost updates would show in the balances
            store.atomic(lambda uow: uow.post_entry("T", one_paisa, 2))

    threads = [threading.Thread(target=spend) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert store.read(lambda uow: (uow.balance("user:a"), uow.balance("user:b"))) == (400, 400)
    assert len(store.read(lambda uow: uow.entries("T"))) == 400


def test_records_come_out_frozen_and_payloads_are_never_shared() -> None:
    store = MemoryStore()
    payload = {"reference": "REF", "steps": [1]}
    store.atomic(lambda uow: uow.enqueue_job("test", "k", payload, 1.0, 1.0))
    payload["steps"].append(2)  # the caller's dict changes after the unit of work
    [job] = store.read(lambda uow: uow.jobs())
    job.payload["steps"].append(3)  # and so does the copy it got back
    assert store.read(lambda uow: uow.jobs())[0].payload == {"reference": "REF", "steps": [1]}
    store.atomic(lambda uow: uow.insert_user(User("u1", "+911111111111", "A", b"s", b"h", 1.0)))
    user = store.read(lambda uow: uow.get_user("u1"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        user.name = "B"  # type: ignore[misc, union-attr]


def test_no_configuration_selects_the_memory_store() -> None:
    """Only tests pass it in: nothing under app/ (settings, bootstrap, CLI) names it."""
    sources = {p.relative_to(ROOT).as_posix(): p.read_text() for p in (ROOT / "app").rglob("*.py")}
    named = [
        name for name, text in sources.items() if "storage.memory" in text or "MemoryStore" in text
    ]
    assert named == []
