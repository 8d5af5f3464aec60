"""The storage contract, run against every store: SQLite file, MongoDB-compatible server, memory."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from crypto.replay import ReplayWindow
from storage.contract import Store, UnitOfWork
from storage.errors import (
    DuplicateKey,
    InsufficientFunds,
    NotFound,
    StateChanged,
    UnbalancedEntry,
)
from storage.history import HistoryAsk
from storage.models import (
    Device,
    FrameRecord,
    InboundRecord,
    JobGroup,
    JobStatus,
    OutboundSms,
    Posting,
    RecentPayment,
    TaskerGateway,
    Transaction,
    TransactionKind,
    TransactionState,
    User,
    WorkerBeat,
)
from tests.conftest import EVERY_STORE

pytestmark = EVERY_STORE


@pytest.fixture
def store(svc: Any) -> Store:
    s: Store = svc.store
    return s


def user(uid: str, phone: str) -> User:
    return User(uid, phone, "Name", b"salt", b"hash", 1.0)


def txn(ref: str, payer: str = "u1", amount: int = 100, at: float = 10.0) -> Transaction:
    return Transaction(
        ref, TransactionKind.TRANSFER, amount, TransactionState.PENDING, at, at, payer_id=payer,
        payer_phone="+911111111111", payee="+912222222222",
    )  # fmt: skip


def with_accounts(store: Store, balance: int = 0) -> None:
    def unit(uow: UnitOfWork) -> None:
        uow.create_account("system:cash_in", allow_negative=True)
        uow.create_account("user:a")
        uow.create_account("user:b")
        if balance:
            uow.post_entry(
                "SEED", [Posting("system:cash_in", -balance), Posting("user:a", balance)], 1
            )

    store.atomic(unit)


def test_users_are_unique_by_id_and_phone(store: Store) -> None:
    store.atomic(lambda uow: uow.insert_user(user("u1", "+911111111111")))
    for dup in (user("u1", "+912222222222"), user("u2", "+911111111111")):
        with pytest.raises(DuplicateKey):
            store.atomic(lambda uow, d=dup: uow.insert_user(d))
    found = store.read(lambda uow: uow.get_user_by_phone("+911111111111"))
    assert found == user("u1", "+911111111111")
    store.atomic(lambda uow: uow.set_pin_state("u1", 2, 99.5))
    again = store.read(lambda uow: uow.get_user("u1"))
    assert (again.failed_pin_attempts, again.locked_until) == (2, 99.5)
    assert store.read(lambda uow: uow.get_user("nobody")) is None
    with pytest.raises(NotFound):
        store.atomic(lambda uow: uow.set_pin_state("nobody", 0, None))
    store.atomic(lambda uow: uow.set_usual_area("u1", 12.9716, 77.5946))
    placed = store.read(lambda uow: uow.get_user("u1"))
    assert (placed.area_lat, placed.area_lon) == (12.9716, 77.5946)
    store.atomic(lambda uow: uow.set_usual_area("u1", None, None))
    assert store.read(lambda uow: uow.get_user("u1")).area_lat is None
    with pytest.raises(NotFound):
        store.atomic(lambda uow: uow.set_usual_area("nobody", 1.0, 2.0))


def test_ledger_entries_balance_and_never_overdraw(store: Store) -> None:
    with_accounts(store, balance=500)
    with pytest.raises(UnbalancedEntry):
        store.atomic(
            lambda uow: uow.post_entry("X", [Posting("user:a", -1), Posting("user:b", 2)], 2)
        )
    with pytest.raises(InsufficientFunds):
        store.atomic(
            lambda uow: uow.post_entry("X", [Posting("user:a", -501), Posting("user:b", 501)], 2)
        )
    with pytest.raises(NotFound):
        store.atomic(
            lambda uow: uow.post_entry("X", [Posting("user:a", -1), Posting("nope", 1)], 2)
        )
    after = store.atomic(
        lambda uow: uow.post_entry("T1", [Posting("user:a", -500), Posting("user:b", 500)], 3)
    )
    assert after == {"user:a": 0, "user:b": 500}  # the balances the entry left

    def read(uow: UnitOfWork) -> tuple[int, int, int, int, Any]:
        return (uow.balance("user:a"), uow.balance("user:b"), uow.balance("system:cash_in"),
                uow.total_balance(), uow.entries("T1"))  # fmt: skip

    a, b, cash, total, entries = store.read(read)
    assert (a, b, cash, total) == (0, 500, -500, 0)
    assert [p.amount for p in entries[0].postings] == [-500, 500]
    assert store.read(lambda uow: uow.entries("X")) == []


def test_an_entry_of_several_postings_keeps_their_order_and_names_the_first_refusal(
    store: Store,
) -> None:
    with_accounts(store, balance=500)
    store.atomic(lambda uow: uow.create_account("user:c"))
    three = [Posting("user:b", 100), Posting("user:a", -300), Posting("user:c", 200)]
    after = store.atomic(lambda uow: uow.post_entry("T3", three, 2))
    assert list(after.items()) == [("user:b", 100), ("user:a", 200), ("user:c", 200)]
    twice = [Posting("user:a", -150), Posting("user:b", 100), Posting("user:a", 50)]
    after = store.atomic(lambda uow: uow.post_entry("T2", twice, 3))
    assert after == {"user:a": 100, "user:b": 200}  # an account twice: its last balance
    # the first refused posting names the error, whichever way round; nothing of it stays
    short_then_missing = [Posting("user:a", -101), Posting("nope", 101)]
    missing_then_short = [Posting("nope", 101), Posting("user:a", -101)]
    for postings, error in ((short_then_missing, InsufficientFunds),
                            (missing_then_short, NotFound)):  # fmt: skip
        with pytest.raises(error):
            store.atomic(lambda uow, ps=postings: uow.post_entry("X", ps, 4))

    def read(uow: UnitOfWork) -> tuple[Any, ...]:
        balances = tuple(uow.balance(f"user:{who}") for who in "abc")
        return (*balances, uow.total_balance(), *(uow.entries(r) for r in ("T3", "T2", "X")))

    a, b, c, total, t3, t2, x = store.read(read)
    assert (a, b, c, total, x) == (100, 200, 200, 0, [])
    assert list(t3[0].postings) == three
    assert list(t2[0].postings) == twice


def test_a_failed_unit_of_work_leaves_nothing_behind(store: Store) -> None:
    with_accounts(store, balance=100)

    def unit(uow: UnitOfWork) -> None:
        uow.insert_transaction(txn("REF1"), "created")
        uow.post_entry("REF1", [Posting("user:a", -60), Posting("user:b", 60)], 2)
        uow.post_entry("REF1", [Posting("user:a", -60), Posting("user:b", 60)], 2)  # overdraws

    with pytest.raises(InsufficientFunds):
        store.atomic(unit)
    assert store.read(lambda uow: (uow.balance("user:a"), uow.get_transaction("REF1"))) == (
        100,
        None,
    )


def test_transactions_keep_an_ordered_history(store: Store) -> None:
    store.atomic(lambda uow: uow.insert_transaction(txn("REF1"), "created"))
    store.atomic(lambda uow: uow.set_state("REF1", TransactionState.PROCESSING, "sent", 11.0))
    store.atomic(lambda uow: uow.set_state("REF1", TransactionState.SUCCESS, "settled", 12.0))
    with pytest.raises(DuplicateKey):
        store.atomic(lambda uow: uow.insert_transaction(txn("REF1"), "again"))
    got = store.read(lambda uow: uow.get_transaction("REF1"))
    assert (
        got.state is TransactionState.SUCCESS and got.updated_at == 12.0 and got.reason == "settled"
    )
    events = store.read(lambda uow: uow.events("REF1"))
    assert [(e.state.value, e.reason) for e in events] == [
        ("PENDING", "created"), ("PROCESSING", "sent"), ("SUCCESS", "settled")]  # fmt: skip


def test_a_state_change_can_be_conditional_on_the_state_held(store: Store) -> None:
    P, S, F = TransactionState.PENDING, TransactionState.SUCCESS, TransactionState.FAILED
    store.atomic(lambda uow: uow.insert_transaction(txn("REF1"), "created"))
    store.atomic(lambda uow: uow.set_state("REF1", S, "posted", 11.0, expected=P))
    with pytest.raises(StateChanged):  # no longer PENDING: nothing written
        store.atomic(lambda uow: uow.set_state("REF1", F, "late", 12.0, expected=P))
    with pytest.raises(NotFound):
        store.atomic(lambda uow: uow.set_state("NOPE", F, "x", 12.0, expected=P))
    got = store.read(lambda uow: (uow.get_transaction("REF1"), uow.events("REF1")))
    assert (got[0].state, got[0].reason, got[0].updated_at) == (S, "posted", 11.0)
    assert [(e.state, e.reason) for e in got[1]] == [(P, "created"), (S, "posted")]


@pytest.mark.parametrize("then", [TransactionState.SUCCESS, TransactionState.FAILED])
def test_a_transaction_inserted_already_moved_on_is_what_insert_then_set_state_leave(
    store: Store, then: TransactionState
) -> None:
    """`insert_transaction(..., then=...)`: one write for a payment posted or refused as it is
    accepted; the row, its history, the payer's committed paise and the window of payees the
    risk rules read are the same as after the two steps."""

    def two_steps(uow: UnitOfWork) -> None:
        uow.insert_transaction(txn("R1", "u1", 300, 10.0), "accepted")
        uow.set_state("R1", then, "moved on", 10.0)

    store.atomic(two_steps)
    store.atomic(lambda uow: uow.insert_transaction(txn("R2", "u2", 300, 10.0), "accepted",
                                                    (then, "moved on")))  # fmt: skip

    def seen(ref: str, payer: str) -> tuple[Any, ...]:
        def read(uow: UnitOfWork) -> tuple[Any, ...]:
            got = uow.get_transaction(ref)
            assert got is not None
            events = [(e.state, e.reason, e.at) for e in uow.events(ref)]
            spent = uow.debited_since(payer, 0.0)
            payees = uow.payees_paid_since(payer, 0.0, 10)
            return replace(got, reference="", payer_id=None), events, spent, payees

        return store.read(read)

    first = seen("R1", "u1")
    assert seen("R2", "u2") == first
    assert first[0].state is then and first[0].reason == "moved on"
    assert [e[:2] for e in first[1]] == [(TransactionState.PENDING, "accepted"), (then, "moved on")]


def test_debited_since_counts_live_payments_of_that_payer_only(store: Store) -> None:
    def unit(uow: UnitOfWork) -> None:
        uow.insert_transaction(txn("R1", "u1", 100, 10.0), "c")
        uow.insert_transaction(txn("R2", "u1", 200, 20.0), "c")
        uow.insert_transaction(txn("R3", "u1", 400, 30.0), "c")
        uow.set_state("R3", TransactionState.FAILED, "refused", 30.0)
        uow.insert_transaction(txn("R4", "u2", 800, 30.0), "c")

    store.atomic(unit)
    assert store.read(lambda uow: uow.debited_since("u1", 0)) == 300
    assert store.read(lambda uow: uow.debited_since("u1", 15)) == 200
    listed = store.read(lambda uow: uow.search_transactions(phone="+911111111111", limit=10))
    assert {t.reference for t in listed} == {"R1", "R2", "R3", "R4"}
    assert [t.created_at for t in listed] == [30.0, 30.0, 20.0, 10.0]  # newest first
    assert store.read(lambda uow: uow.search_transactions(phone="+919999999999")) == []
    failed = store.read(lambda uow: uow.search_transactions(state=TransactionState.FAILED))
    assert [t.reference for t in failed] == ["R3"]


def test_a_payers_recent_payments_and_first_payment_to_a_payee(store: Store) -> None:
    located = replace(txn("R2", "u1", 200, 20.0), lat=12.97, lon=77.59, risk="flag geofence")

    def unit(uow: UnitOfWork) -> None:
        uow.insert_transaction(txn("R1", "u1", 100, 10.0), "c")
        uow.insert_transaction(located, "c")
        uow.insert_transaction(replace(txn("R3", "u1", 400, 30.0), payee="+913333333333"), "c")
        uow.set_state("R3", TransactionState.FAILED, "refused", 30.0)
        uow.insert_transaction(txn("R4", "u2", 800, 5.0), "c")

    store.atomic(unit)
    recent = store.read(lambda uow: uow.recent_payments("u1", 15.0, 10))
    assert [t.reference for t in recent] == ["R3", "R2"]  # newest first, every state
    assert recent == [
        RecentPayment("R3", "+913333333333", 400, 30.0, "FAILED", None, None),
        RecentPayment("R2", "+912222222222", 200, 20.0, "PENDING", 12.97, 77.59),  # located
    ]
    assert recent[0].state == TransactionState.FAILED  # the text compares equal to the state
    assert [t.reference for t in store.read(lambda uow: uow.recent_payments("u1", 0, 1))] == ["R3"]
    assert store.read(lambda uow: uow.first_payment_to("u1", "+912222222222")) == 10.0
    assert store.read(lambda uow: uow.first_payment_to("u2", "+912222222222")) == 5.0
    assert store.read(lambda uow: uow.first_payment_to("u1", "+913333333333")) is None  # failed
    # what a payer committed to one payee (the new-payee daily cap's own sum)
    assert store.read(lambda uow: uow.debited_since("u1", 0, "+912222222222")) == 300
    assert store.read(lambda uow: uow.debited_since("u1", 15.0, "+912222222222")) == 200
    assert store.read(lambda uow: uow.debited_since("u1", 0, "+913333333333")) == 0  # failed
    assert store.read(lambda uow: uow.debited_since("u2", 0, "+912222222222")) == 800
    assert store.read(lambda uow: uow.debited_since("u1", 0)) == 300  # every payee
    # the payees of committed payments since a time (the velocity rule's own read)
    assert store.read(lambda uow: uow.payees_paid_since("u1", 0, 5)) == {"+912222222222"}
    assert store.read(lambda uow: uow.payees_paid_since("u1", 25.0, 5)) == set()  # R3 failed
    assert store.read(lambda uow: uow.payees_paid_since("u2", 0, 5)) == {"+912222222222"}


def test_a_payers_history_for_the_risk_rules(store: Store) -> None:
    """`payment_history` gives each part it is asked for, as `from_rows` makes it from the
    newest payments, with a location asked or not (SQLite reads the parts by index then)."""
    ravi, mira, other = "+912222222222", "+913333333333", "+914444444444"

    def unit(uow: UnitOfWork) -> None:
        uow.insert_transaction(txn("H0", "u1", 50, 1.0), "c")  # before the look-back
        uow.insert_transaction(txn("H1", "u1", 100, 10.0), "c")
        uow.insert_transaction(replace(txn("H2", "u1", 200, 20.0), lat=12.97, lon=77.59), "c")
        uow.insert_transaction(replace(txn("H3", "u1", 400, 30.0), payee=mira), "c")
        uow.set_state("H3", TransactionState.FAILED, "refused", 30.0)
        flagged = replace(txn("H4", "u1", 800, 40.0), payee=other, lat=13.0, lon=77.6)
        uow.insert_transaction(flagged, "c", then=(TransactionState.FLAGGED, "held"))
        uow.insert_transaction(txn("H5", "u2", 1600, 45.0), "c")  # another payer

    store.atomic(unit)
    located = [RecentPayment("H4", other, 800, 40.0, "FLAGGED", 13.0, 77.6),
               RecentPayment("H2", ravi, 200, 20.0, "PENDING", 12.97, 77.59)]  # fmt: skip
    for with_location in (False, True):
        ask = HistoryAsk(since=5.0, limit=10, payee=ravi, payee_since=15.0, window_since=25.0,
                         payees_limit=5, located=with_location)  # fmt: skip
        got = store.read(lambda uow, ask=ask: uow.payment_history("u1", ask))
        assert got.amounts == (800, 200, 100)  # committed, newest first; H3 failed
        assert got.paid_to_payee == 200  # to Ravi since 15.0
        assert got.payees == frozenset({other})  # committed since 25.0 (H3 failed)
        assert list(got.located) == (located if with_location else [])
        # a part not asked for is not read
        bare = replace(ask, payee_since=None, window_since=None)
        got = store.read(lambda uow, bare=bare: uow.payment_history("u1", bare))
        assert got.paid_to_payee is None and got.payees is None and got.amounts == (800, 200, 100)
        # the newest `limit` of every state: H4 and the failed H3
        two = replace(ask, limit=2)
        got = store.read(lambda uow, two=two: uow.payment_history("u1", two))
        assert got.amounts == (800,)
        # those two do not reach back to 15.0 or to 5.0: the parts are read on their own
        assert got.paid_to_payee == 200 and got.payees == frozenset({other})
        wide = replace(two, window_since=5.0)
        got = store.read(lambda uow, wide=wide: uow.payment_history("u1", wide))
        assert got.payees == frozenset({ravi, other})


def test_a_payments_standing_answers_as_its_four_reads(store: Store) -> None:
    """`standing` is `spent`, the wallet's `balance`, `first_payment_to` and the payee's user,
    read in one go: with no totals' row yet, with one of this day, and across a new day."""
    with_accounts(store, balance=500)  # the wallets user:a and user:b

    def setup(uow: UnitOfWork) -> None:
        uow.insert_user(user("a", "+911111111111"))
        uow.insert_user(user("b", "+912222222222"))
        uow.insert_transaction(replace(txn("S1", "a", 100, 10.0), payee="+912222222222"), "c")
        uow.insert_transaction(replace(txn("S2", "a", 40, 12.0), payee="+913333333333"), "c")
        # to the first payee again: one before S1 that failed (not a first payment, not spent)
        # and one after it (spent; S1 stays the first)
        failed = (TransactionState.FAILED, "refused")
        uow.insert_transaction(replace(txn("S0", "a", 7, 8.0), payee="+912222222222"), "c", failed)
        uow.insert_transaction(replace(txn("S3", "a", 25, 14.0), payee="+912222222222"), "c")

    store.atomic(setup)

    def standing(payee: str, day: float, month: float) -> tuple[Any, ...]:
        def unit(uow: UnitOfWork) -> tuple[Any, ...]:
            got = uow.standing("a", payee, day, month)  # first: it may write the totals' row
            payee_user = uow.get_user_by_phone(payee)
            reads = (payee_user.id if payee_user else None, *uow.spent("a", day, month),
                     uow.balance("user:a"), uow.first_payment_to("a", payee))  # fmt: skip
            fields = (got.payee_id, got.spent_today, got.spent_month, got.balance, got.first_paid)
            assert fields == reads
            return fields

        return store.atomic(unit)

    assert standing("+912222222222", 11.0, 0.0) == ("b", 65, 165, 500, 10.0)  # no row yet
    assert standing("+912222222222", 11.0, 0.0) == ("b", 65, 165, 500, 10.0)  # the row now
    assert standing("+913333333333", 13.0, 0.0) == (None, 25, 165, 500, 12.0)  # a new day
    assert standing("shop@upi", 13.0, 0.0) == (None, 25, 165, 500, None)  # a UPI id
    with pytest.raises(NotFound):  # no wallet
        store.atomic(lambda uow: uow.standing("nobody", "+912222222222", 0.0, 0.0))


def test_the_payees_of_a_window_stop_at_the_limit(store: Store) -> None:
    payees = ["+912000000001", "+912000000002", "+912000000003"]

    def unit(uow: UnitOfWork) -> None:
        for i, payee in enumerate(payees):
            uow.insert_transaction(replace(txn(f"P{i}", "u1", 100, 10.0 + i), payee=payee), "c")

    store.atomic(unit)
    assert store.read(lambda uow: uow.payees_paid_since("u1", 0, 10)) == set(payees)
    two = store.read(lambda uow: uow.payees_paid_since("u1", 0, 2))
    assert len(two) == 2 and two <= set(payees)
    assert store.read(lambda uow: uow.payees_paid_since("u1", 11.0, 10)) == set(payees[1:])


def test_the_payees_of_a_window_follow_each_payments_state(store: Store) -> None:
    """A payee is in the window while one of its payments in the window holds committed money:
    the newest failing leaves the older one's time; the last failing takes the payee out."""
    payee = "+912000000005"

    def paid(ref: str, at: float) -> Callable[[UnitOfWork], None]:
        return lambda uow: uow.insert_transaction(
            replace(txn(ref, "u1", 100, at), payee=payee), "c"
        )

    def moved(ref: str, state: TransactionState) -> Callable[[UnitOfWork], None]:
        return lambda uow: uow.set_state(ref, state, "test", 40.0)

    def window(since: float) -> set[str]:
        return store.read(lambda uow: uow.payees_paid_since("u1", since, 5))

    store.atomic(paid("A", 10.0))
    store.atomic(paid("B", 20.0))
    assert window(15.0) == {payee}
    store.atomic(moved("B", TransactionState.FLAGGED))  # still committed money
    assert window(15.0) == {payee}
    store.atomic(moved("B", TransactionState.FAILED))
    assert window(15.0) == set() and window(5.0) == {payee}
    store.atomic(moved("A", TransactionState.FAILED))
    assert window(0.0) == set()
    store.atomic(paid("C", 30.0))
    assert window(25.0) == {payee}


def test_devices_windows_and_gateways(store: Store) -> None:
    store.atomic(lambda uow: uow.insert_user(user("u1", "+911111111111")))
    device = Device(7, "u1", "+911111111111", b"wrapped", 1.0)
    store.atomic(lambda uow: uow.insert_device(device))
    with pytest.raises(DuplicateKey):
        store.atomic(lambda uow: uow.insert_device(device))
    window = ReplayWindow().accept(70).accept(3 + 64 + 2)
    store.atomic(lambda uow: uow.save_window(7, window, 5.0))
    got = store.read(lambda uow: uow.get_device(7))
    assert got.window == window and got.last_seen_at == 5.0 and got.active
    big = ReplayWindow(2**32 - 1, 2**64 - 1)  # the whole bitmap survives the round trip
    store.atomic(lambda uow: uow.save_window(7, big, 6.0))
    assert store.read(lambda uow: uow.get_device(7)).window == big
    assert store.atomic(lambda uow: uow.deactivate_devices("u1")) == 1
    assert not store.read(lambda uow: uow.get_device(7)).active

    store.atomic(lambda uow: uow.insert_gateway(TaskerGateway("shop-1", b"secret", 1.0)))
    store.atomic(lambda uow: uow.touch_gateway("shop-1", 9.0))
    assert store.read(lambda uow: uow.get_gateway("shop-1")).last_seen_at == 9.0
    with pytest.raises(DuplicateKey):
        store.atomic(lambda uow: uow.insert_gateway(TaskerGateway("shop-1", b"x", 1.0)))


def test_a_sender_is_its_user_and_device_read_together(store: Store) -> None:
    """`sender` is `get_user_by_phone` and `get_device` in one read: None without a user (the
    device then unread), the device whoever owns it, active or not, its window whole."""
    asha = replace(user("u1", "+911111111111"), failed_pin_attempts=2, area_lat=12.5)
    store.atomic(lambda uow: uow.insert_user(asha))
    store.atomic(lambda uow: uow.insert_user(user("u2", "+912222222222")))
    window = ReplayWindow(2**32 - 1, 2**64 - 1)
    theirs = Device(8, "u2", "+912222222222", b"other", 2.0, window, 4.5)
    store.atomic(lambda uow: uow.insert_device(Device(7, "u1", "+911111111111", b"wrapped", 1.0)))
    store.atomic(lambda uow: uow.insert_device(theirs))

    def both(phone: str, key_id: int) -> Any:
        def unit(uow: UnitOfWork) -> Any:
            got = uow.sender(phone, key_id)
            asked = uow.get_user_by_phone(phone)
            assert got == (None if asked is None else (asked, uow.get_device(key_id)))
            return got

        return store.read(unit)

    assert both("+911111111111", 7) == (asha, store.read(lambda uow: uow.get_device(7)))
    assert both("+911111111111", 8) == (asha, theirs)  # another's device: the caller checks
    assert both("+911111111111", 9) == (asha, None)
    assert both("+913333333333", 7) is None
    store.atomic(lambda uow: uow.deactivate_devices("u1"))
    assert both("+911111111111", 7)[1].active is False


def test_inbound_provider_ids_and_frames_are_unique(store: Store) -> None:
    rec = InboundRecord("twilio", "+911111111111", 1.0, "paid", "ok", provider_message_id="SM1")
    store.atomic(lambda uow: uow.insert_inbound(rec))
    with pytest.raises(DuplicateKey):
        store.atomic(lambda uow: uow.insert_inbound(rec))
    # same id on another route, and any number of records without a provider id, are fine
    store.atomic(lambda uow: uow.insert_inbound(InboundRecord(
        "tasker", "+911111111111", 2.0, "paid", "ok", provider_message_id="SM1")))  # fmt: skip
    for _ in range(2):
        store.atomic(lambda uow: uow.insert_inbound(
            InboundRecord("tasker", "+911111111111", 3.0, "help", "h")))  # fmt: skip
    found = store.read(lambda uow: uow.find_inbound("twilio", "SM1"))
    assert found is not None and found.outcome == "paid"
    store.atomic(lambda uow: uow.count_redelivery(found.id))
    assert store.read(lambda uow: uow.find_inbound("twilio", "SM1")).deliveries == 2
    assert len(store.read(lambda uow: uow.inbound_for("+911111111111"))) == 4
    assert store.read(lambda uow: uow.inbound_outcomes(0.0, 100.0)) == {"paid": 2, "help": 2}
    assert store.read(lambda uow: uow.inbound_outcomes(1.0, 2.0)) == {"paid": 1}  # [since, until)

    frame = FrameRecord(7, 1, "paid", "reply", 1.0, "REF", digest="5f1e")
    store.atomic(lambda uow: uow.insert_frame(frame))
    with pytest.raises(DuplicateKey):
        store.atomic(lambda uow: uow.insert_frame(frame))
    assert store.read(lambda uow: uow.find_frame(7, 1)) == frame
    assert store.read(lambda uow: uow.find_frame(7, 2)) is None


def test_outbox_and_meta(store: Store) -> None:
    store.atomic(lambda uow: uow.enqueue_sms(OutboundSms("+911111111111", "hi", 1.0, "REF")))
    [msg] = store.read(lambda uow: uow.outbox())
    assert (msg.to, msg.body, msg.reference, msg.status) == (
        "+911111111111",
        "hi",
        "REF",
        "pending",
    )
    assert store.atomic(lambda uow: uow.put_meta_if_absent("k", b"first")) == b"first"
    assert store.atomic(lambda uow: uow.put_meta_if_absent("k", b"second")) == b"first"
    store.atomic(lambda uow: uow.set_meta("k", b"third"))
    assert store.read(lambda uow: uow.get_meta("k")) == b"third"


def test_concurrent_units_claiming_one_frame_run_the_work_once(store: Store) -> None:
    """Eight threads race to process the same frame; the unique key lets exactly one win and
    the others, re-run by the backend, see the winner's answer."""
    with_accounts(store, balance=1000)
    answers: list[str] = []
    barrier = threading.Barrier(8)

    def unit(uow: UnitOfWork) -> str:
        seen = uow.find_frame(9, 1)
        if seen is not None:
            return "duplicate:" + seen.reply
        uow.post_entry("PAY", [Posting("user:a", -100), Posting("user:b", 100)], 1)
        uow.insert_frame(FrameRecord(9, 1, "paid", "paid once", 1.0))
        return "paid once"

    def worker() -> None:
        barrier.wait()
        answers.append(store.atomic(unit))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(answers) == ["duplicate:paid once"] * 7 + ["paid once"]
    assert store.read(lambda uow: (uow.balance("user:a"), uow.balance("user:b"))) == (900, 100)


def test_init_is_idempotent_and_ping_answers(store: Store) -> None:
    store.init()
    store.init()
    store.ping()


def test_worker_beats_replace_their_owners_record_and_old_ones_are_forgotten(store: Store) -> None:
    first = WorkerBeat("host-a:11:1", "host-a", 11, 100.0, 100.0)
    store.atomic(lambda uow: uow.beat(first))
    later = WorkerBeat("host-a:11:1", "host-a", 11, 100.0, 160.0, jobs_done=3)
    other = WorkerBeat("host-b:22:1", "host-b", 22, 120.0, 130.0, jobs_done=1, stopped=True)
    store.atomic(lambda uow: (uow.beat(later), uow.beat(other)))
    assert store.read(lambda uow: uow.workers()) == [later, other]  # the most recent beat first
    assert store.atomic(lambda uow: uow.forget_workers(before=150.0)) == 1
    assert store.read(lambda uow: uow.workers()) == [later]
    assert store.atomic(lambda uow: uow.forget_workers(before=150.0)) == 0


def test_job_groups_count_jobs_not_done_by_kind_and_status(store: Store) -> None:
    def queue(uow: UnitOfWork) -> None:
        uow.enqueue_job("payout", "p1", {}, run_after=50.0, now=1.0)
        uow.enqueue_job("payout", "p2", {}, run_after=20.0, now=1.0)
        uow.enqueue_job("payout", "p3", {}, run_after=500.0, now=1.0)
        uow.enqueue_job("poll", "s1", {}, run_after=10.0, now=1.0)
        uow.enqueue_job("poll", "s2", {}, run_after=30.0, now=1.0)

    store.atomic(queue)
    assert store.read(lambda uow: uow.job_groups()) == [
        JobGroup("payout", JobStatus.PENDING, 3, 20.0),
        JobGroup("poll", JobStatus.PENDING, 2, 10.0),
    ]
    done = store.atomic(lambda uow: uow.claim_job("w", 100.0, 60, ["poll"]))
    assert done is not None and done.key == "s1"
    store.atomic(lambda uow: uow.finish_job("s1", "w", 101.0))
    dead = store.atomic(lambda uow: uow.claim_job("w", 102.0, 60, ["poll"]))
    assert dead is not None and dead.key == "s2"
    store.atomic(lambda uow: uow.bury_job("s2", "w", "gave up", 103.0))
    running = store.atomic(lambda uow: uow.claim_job("w", 104.0, 60, ["payout"]))
    assert running is not None and running.key == "p2"
    assert store.read(lambda uow: uow.job_groups()) == [  # the done job is not counted
        JobGroup("payout", JobStatus.PENDING, 2, 50.0),
        JobGroup("payout", JobStatus.RUNNING, 1, 20.0),
        JobGroup("poll", JobStatus.DEAD, 1, 30.0),
    ]


def test_sms_counts_by_status(store: Store) -> None:
    assert store.read(lambda uow: uow.sms_counts()) == {}
    for ref in ("R1", "R2", "R3"):
        store.atomic(lambda uow, r=ref: uow.enqueue_sms(OutboundSms("+911111111111", "hi", 1.0, r)))
    first = store.read(lambda uow: uow.outbox())[0]
    assert first.id is not None
    store.atomic(lambda uow: uow.update_sms(str(first.id), 2.0, status="delivered"))
    assert store.read(lambda uow: uow.sms_counts()) == {"pending": 2, "delivered": 1}


def test_token_buckets_refill_grant_and_give_back(store: Store) -> None:
    def take(want: int, now: float, bucket: str = "b") -> int:
        return store.atomic(lambda uow: uow.take_tokens(bucket, 3, 0.5, want, now))

    assert take(2, 100.0) == 2  # a new bucket is full: 3, 1 left
    assert take(2, 100.0) == 1  # only whole tokens: 1 left, 0 after
    assert take(1, 101.0) == 0  # 0.5 refilled: not a whole token
    assert take(1, 102.0) == 1  # 0.5 + 1.0 = 1.5: one granted, 0.5 left
    assert take(-1, 102.0) == -1  # given back: 1.5
    assert take(5, 110.0) == 3  # refilled only up to the capacity
    assert take(1, 50.0) == 0  # a clock behind takes nothing it has not got
    assert take(4, 100.0, bucket="other") == 3  # buckets are apart


def test_a_unit_refused_by_a_unique_key_runs_again_a_few_times(store: Store) -> None:
    store.atomic(lambda uow: uow.insert_transaction(txn("TAKEN00001"), "created"))
    draws = iter(["TAKEN00001", "TAKEN00001", "FRESH00001"])  # like a reference drawn at random
    runs: list[str] = []

    def unit(uow: UnitOfWork) -> str:
        ref = next(draws)
        runs.append(ref)
        uow.insert_transaction(txn(ref), "created")
        return ref

    assert store.atomic(unit) == "FRESH00001"
    assert runs == ["TAKEN00001", "TAKEN00001", "FRESH00001"]
    assert store.read(lambda uow: uow.get_transaction("FRESH00001")) is not None

    tries: list[int] = []

    def always(uow: UnitOfWork) -> None:
        tries.append(1)
        uow.insert_transaction(txn("TAKEN00001"), "again")

    with pytest.raises(DuplicateKey):  # a key that stays taken: the caller hears of it
        store.atomic(always)
    assert len(tries) == 4  # once, then 3 more
