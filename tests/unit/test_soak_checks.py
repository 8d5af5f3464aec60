"""The soak's checks (soak/checks.py) pass a sound store and catch each kind of broken one: the
soak is only as good as what it would notice."""

from __future__ import annotations

import dataclasses
from collections import Counter

from gateway_clients.base import Payout, PayoutStatus
from sms import replies
from sms.device_bundle import DeviceBundle
from soak.checks import Snapshot, verdict
from soak.traffic import ORIGINAL, OTHER_ROUTE, Answer, Delivery, Sms, SoakPhone
from storage.models import (
    CASH_IN_ACCOUNT,
    PAYOUTS_IN_FLIGHT_ACCOUNT,
    PAYOUTS_SETTLED_ACCOUNT,
    Account,
    FrameRecord,
    History,
    InboundRecord,
    LedgerEntry,
    Posting,
    Transaction,
    TransactionKind,
    TransactionState,
)

A, B = "user:a", "user:b"
OK, FAILED = TransactionState.SUCCESS, TransactionState.FAILED
PHONE = SoakPhone(DeviceBundle("+919800000001", 7, bytes(32), "+15005550006"), "2580")


def txn(ref: str, kind: TransactionKind, amount: int, state: TransactionState) -> Transaction:
    payee = "b" if kind is not TransactionKind.PAYOUT else None
    payer = "a" if kind is not TransactionKind.CASH_IN else None
    return Transaction(ref, kind, amount, state, 0.0, 0.0, payer_id=payer, payee_id=payee)


def entry(ref: str, debit: str, credit: str, amount: int) -> LedgerEntry:
    return LedgerEntry(ref, ref, (Posting(debit, -amount), Posting(credit, amount)), 0.0)


def snapshot(txns: list[Transaction], entries: list[LedgerEntry]) -> Snapshot:
    """Accounts from the entries, as the ledger keeps them; one PAY frame per payment."""
    balances: Counter[str] = Counter({A: 0, B: 0})
    for e in entries:
        for p in e.postings:
            balances[p.account] += p.amount
    accounts = [Account(a, n, allow_negative=a == CASH_IN_ACCOUNT) for a, n in balances.items()]
    payments = [t for t in txns if t.kind is not TransactionKind.CASH_IN]
    frames = [FrameRecord(7, i, "paid", "", 0.0, t.reference) for i, t in enumerate(payments, 1)]
    return Snapshot(accounts, [History(t, ()) for t in txns], entries, frames, [], [])


def world() -> tuple[Snapshot, list[Sms], list[Answer], list[Payout]]:
    """Two credits of Rs 10, a transfer, a paid payout and a failed (refunded) one."""
    txns = [
        txn("CASHA", TransactionKind.CASH_IN, 1000, OK),
        dataclasses.replace(txn("CASHB", TransactionKind.CASH_IN, 1000, OK), payee_id="b"),
        txn("XFER1", TransactionKind.TRANSFER, 100, OK),
        txn("PAID1", TransactionKind.PAYOUT, 200, OK),
        txn("BACK1", TransactionKind.PAYOUT, 50, FAILED),
    ]
    txns[0] = dataclasses.replace(txns[0], payee_id="a")
    entries = [
        entry("CASHA", CASH_IN_ACCOUNT, A, 1000),
        entry("CASHB", CASH_IN_ACCOUNT, B, 1000),
        entry("XFER1", A, B, 100),
        entry("PAID1", A, PAYOUTS_IN_FLIGHT_ACCOUNT, 200),
        entry("PAID1", PAYOUTS_IN_FLIGHT_ACCOUNT, PAYOUTS_SETTLED_ACCOUNT, 200),
        entry("BACK1", A, PAYOUTS_IN_FLIGHT_ACCOUNT, 50),
        entry("BACK1", PAYOUTS_IN_FLIGHT_ACCOUNT, A, 50),
    ]
    snap = snapshot(txns, entries)
    sent = [
        Sms(i, PHONE, i, k, "SP1...") for i, k in ((1, "transfer"), (2, "payout"), (3, "payout"))
    ]
    answers = [
        Answer(Delivery(s, "tasker", ORIGINAL), 200, f"reply {s.id}", "", 0.01) for s in sent
    ]
    answers.append(Answer(Delivery(sent[0], "twilio", OTHER_ROUTE), 200, "reply 1", "", 0.01))
    book = [Payout("PAID1", "p1", PayoutStatus.PROCESSED, 200),
            Payout("BACK1", "p2", PayoutStatus.FAILED, 50)]  # fmt: skip
    return snap, sent, answers, book


def test_a_sound_store_passes() -> None:
    snap, sent, answers, book = world()
    assert verdict(snap, 2000, sent, answers, book) == []


def test_an_instruction_settled_twice_is_caught() -> None:
    snap, sent, answers, book = world()
    twice = snapshot(snap.transactions, [*snap.entries, entry("XFER1", A, B, 100)])
    found = verdict(twice, 2000, sent, answers, book)
    assert any("ledger records disagree" in v and "XFER1" in v for v in found), found


def test_a_second_payment_from_one_sms_is_caught() -> None:
    snap, sent, answers, book = world()
    extra = txn("XFER2", TransactionKind.TRANSFER, 100, OK)
    more = dataclasses.replace(
        snap,
        histories=[*snap.histories, History(extra, ())],
        entries=[*snap.entries, entry("XFER2", A, B, 100)],
    )
    found = verdict(more, 2000, sent, answers, book)
    assert any("not made by exactly one PAY" in v and "XFER2" in v for v in found), found


def test_money_that_appears_or_vanishes_is_caught() -> None:
    snap, sent, answers, book = world()
    assert any("not conserved" in v for v in verdict(snap, 2500, sent, answers, book))
    negative = dataclasses.replace(snap, accounts=[*snap.accounts, Account("user:c", -5)])
    assert any("negative" in v for v in verdict(negative, 2000, sent, answers, book))


def test_an_open_transaction_is_caught() -> None:
    snap, sent, answers, book = world()
    pending = txn("WAIT1", TransactionKind.PAYOUT, 10, TransactionState.PROCESSING)
    more = dataclasses.replace(snap, histories=[*snap.histories, History(pending, ())])
    assert any("not final" in v and "WAIT1" in v for v in verdict(more, 2000, sent, answers, book))


def test_a_book_that_disagrees_is_caught() -> None:
    snap, sent, answers, _ = world()
    for book in (
        [Payout("PAID1", "p1", PayoutStatus.FAILED, 200)],  # we say paid, the sandbox did not pay
        [Payout("PAID1", "p1", PayoutStatus.PROCESSED, 200),
         Payout("BACK1", "p2", PayoutStatus.PROCESSED, 50)],  # we refunded what was paid
        [Payout("PAID1", "p1", PayoutStatus.PROCESSED, 200),
         Payout("ZZZZ1", "p3", PayoutStatus.PROCESSED, 70)],  # paid with no payout of ours
    ):  # fmt: skip
        found = verdict(snap, 2000, sent, answers, book)
        assert any("sandbox's book" in v for v in found), (book, found)


def test_what_senders_saw_is_checked() -> None:
    snap, sent, answers, book = world()
    differing = [*answers, Answer(Delivery(sent[1], "twilio", OTHER_ROUTE), 200, "other", "", 0)]
    assert any("different replies" in v for v in verdict(snap, 2000, sent, differing, book))
    failing = [*answers, Answer(Delivery(sent[1], "twilio", OTHER_ROUTE), 500, None, "", 0)]
    assert any("HTTP 500" in v for v in verdict(snap, 2000, sent, failing, book))
    silent = [*answers, Answer(Delivery(sent[1], "twilio", OTHER_ROUTE), None, None, "Timeout", 0)]
    assert any("no answer (Timeout)" in v for v in verdict(snap, 2000, sent, silent, book))


def busy(counter: int, at: float) -> InboundRecord:
    """A delivery of PHONE's frame `counter` the forwarding phone's bucket refused."""
    return InboundRecord(
        "tasker", PHONE.device.phone, at, "rate_limited_gateway", replies.TRY_LATER,
        gateway_id="shop-1", key_id=7, counter=counter,
    )  # fmt: skip


def test_deliveries_the_forwarding_phones_bucket_refused_are_judged_by_what_ran() -> None:
    """A "try later" that came before the SMS ran (its retry ran it) is no violation, and such a
    PAY never run leaves no frame; a "try later" after the frame ran is the violation."""
    snap, sent, answers, book = world()
    never_run = Sms(4, PHONE, 4, "transfer", "SP1...")
    tried = [
        *answers,
        Answer(Delivery(never_run, "tasker", ORIGINAL), 200, replies.TRY_LATER, "", 0),
        Answer(Delivery(sent[0], "tasker", ORIGINAL), 200, replies.TRY_LATER, "", 0),
        Answer(Delivery(sent[1], "tasker", ORIGINAL), 200, "", "", 0),  # the refusal silenced
    ]
    before = dataclasses.replace(snap, inbound=[busy(4, 0.0), busy(1, -1.0), busy(2, -1.0)])
    assert verdict(before, 2000, [*sent, never_run], tried, book) == []
    unrecorded = verdict(snap, 2000, [*sent, never_run], tried, book)
    assert any("left no frame" in v for v in unrecorded), unrecorded
    assert any("different replies" in v for v in unrecorded), unrecorded
    after = dataclasses.replace(snap, inbound=[busy(4, 0.0), busy(1, 5.0), busy(2, -1.0)])
    found = verdict(after, 2000, [*sent, never_run], tried, book)
    assert found == ["1 SMS refused as busy after they ran: 7/1"], found
