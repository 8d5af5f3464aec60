"""The soak's verdict: what must hold once the backlog has drained, read from the store (one
snapshot), the sandbox's own book, and what the senders saw. Each check returns sentences; none
means it held."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from gateway_clients.base import Payout, PayoutStatus
from sms import replies
from soak.traffic import Answer, Sms
from storage.contract import Store, UnitOfWork
from storage.models import (
    CASH_IN_ACCOUNT,
    GATEWAY_IN_ACCOUNT,
    HELD_ACCOUNT,
    PAYOUTS_IN_FLIGHT_ACCOUNT,
    PAYOUTS_SETTLED_ACCOUNT,
    Account,
    FrameRecord,
    History,
    InboundRecord,
    Job,
    JobStatus,
    LedgerEntry,
    Transaction,
    TransactionKind,
    TransactionState,
    user_account,
)

FINAL = (TransactionState.SUCCESS, TransactionState.FAILED)
# inbound outcomes that valid SMS from registered, provisioned phones must never get
REFUSED_VALID = ("replay", "expired", "bad_tag", "unknown_device", "unknown_sender",
                 "sender_mismatch", "not_understood", "wrong_pin", "wrong_pin_locked", "locked",
                 "plain_text", "help", "undecodable", "status_not_found")  # fmt: skip
R = TypeVar("R")


@dataclass(frozen=True)
class Snapshot:
    """Everything the checks read from the store, in one consistent read."""

    accounts: list[Account]
    histories: list[History]
    entries: list[LedgerEntry]
    frames: list[FrameRecord]
    inbound: list[InboundRecord]
    jobs: list[Job]

    @classmethod
    def read(cls, store: Store) -> Snapshot:
        """Read every record the checks need."""

        def of(uow: UnitOfWork, kind: str, type_: type[R]) -> list[R]:
            return [r for r in uow.dump(kind) if isinstance(r, type_)]

        return store.read(
            lambda uow: cls(
                of(uow, "accounts", Account),
                of(uow, "transactions", History),
                of(uow, "ledger_entries", LedgerEntry),
                of(uow, "frames", FrameRecord),
                of(uow, "inbound_sms", InboundRecord),
                of(uow, "jobs", Job),
            )
        )

    @property
    def transactions(self) -> list[Transaction]:
        """Every transaction as it stands."""
        return [h.transaction for h in self.histories]


def _some(items: Iterable[str], limit: int = 5) -> str:
    shown = list(items)
    more = f" (and {len(shown) - limit} more)" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + more


def every_transaction_final(snap: Snapshot) -> list[str]:
    """SUCCESS or FAILED, nothing PENDING, PROCESSING or FLAGGED; no payout job given up on."""
    problems = []
    open_ = [t for t in snap.transactions if t.state not in FINAL]
    if open_:
        listed = _some(f"{t.reference} {t.kind.value} {t.state.value}" for t in open_)
        problems.append(f"{len(open_)} transactions are not final: {listed}")
    dead = [j for j in snap.jobs if j.status is JobStatus.DEAD and j.kind.startswith("payout.")]
    if dead:
        problems.append(f"{len(dead)} payout jobs are dead: {_some(j.key for j in dead)}")
    return problems


def money_conserved(snap: Snapshot, credited: int) -> list[str]:
    """Wallets + in flight + held + paid out = what was credited; the ledger sums to zero; no
    account that may not go negative is negative; nothing is left in flight or held."""
    balances = {a.id: a.balance for a in snap.accounts}
    wallets = sum(b for account, b in balances.items() if account.startswith("user:"))
    in_flight = balances.get(PAYOUTS_IN_FLIGHT_ACCOUNT, 0)
    held = balances.get(HELD_ACCOUNT, 0)
    paid_out = balances.get(PAYOUTS_SETTLED_ACCOUNT, 0)
    problems = []
    if sum(balances.values()) != 0:
        problems.append(f"the ledger sums to {sum(balances.values())} paise, not 0")
    if wallets + in_flight + held + paid_out != credited:
        problems.append(
            f"money not conserved: wallets {wallets} + in flight {in_flight} + held {held}"
            f" + paid out {paid_out} = {wallets + in_flight + held + paid_out}, credited {credited}"
        )
    if -balances.get(CASH_IN_ACCOUNT, 0) != credited or balances.get(GATEWAY_IN_ACCOUNT, 0):
        problems.append("money came in other than by the soak's own credits")
    negative = [a.id for a in snap.accounts if a.balance < 0 and not a.allow_negative]
    if negative:
        problems.append(f"{len(negative)} accounts are negative: {_some(negative)}")
    if in_flight or held:
        problems.append(f"money left waiting: {in_flight} paise in flight, {held} held")
    return problems


def _expected_net(txn: Transaction) -> tuple[dict[str, int], tuple[int, ...]] | None:
    """What a final transaction's entries must net to per account, and how many there may be."""
    a = txn.amount
    if txn.state is TransactionState.FAILED:  # refused (nothing moved) or debited then refunded
        return {}, (0, 2) if txn.kind is TransactionKind.PAYOUT else (0,)
    if txn.state is not TransactionState.SUCCESS:
        return None
    payer = user_account(txn.payer_id) if txn.payer_id else ""
    payee = user_account(txn.payee_id) if txn.payee_id else ""
    if txn.kind is TransactionKind.TRANSFER:
        return {payer: -a, payee: a}, (1,)
    if txn.kind is TransactionKind.PAYOUT:
        return {payer: -a, PAYOUTS_SETTLED_ACCOUNT: a}, (2,)
    if txn.kind is TransactionKind.CASH_IN:
        return {CASH_IN_ACCOUNT: -a, payee: a}, (1,)
    return None


def ledger_matches_states(snap: Snapshot) -> list[str]:
    """Each transaction's entries move exactly its amount once (SUCCESS) or net to nothing
    (FAILED): an instruction that settled twice would show twice the debit, or extra entries."""
    net: dict[str, Counter[str]] = defaultdict(Counter)
    count: Counter[str] = Counter()
    for entry in snap.entries:
        count[entry.reference] += 1
        for posting in entry.postings:
            net[entry.reference][posting.account] += posting.amount
    wrong = []
    for txn in snap.transactions:
        expected = _expected_net(txn)
        moved = {acc: n for acc, n in net.pop(txn.reference, Counter()).items() if n}
        if expected is None or moved != expected[0] or count[txn.reference] not in expected[1]:
            wrong.append(f"{txn.reference} {txn.kind.value} {txn.state.value} moved {moved}")
    wrong += [f"entries for unknown reference {ref}" for ref in net]
    return [f"{len(wrong)} ledger records disagree with states: {_some(wrong)}"] if wrong else []


GATEWAY_REFUSED = "rate_limited_gateway"  # the forwarding phone's bucket: the SMS was not run


def _gateway_refused(snap: Snapshot) -> set[tuple[int, int]]:
    """The frames a delivery of which the forwarding phone's bucket refused."""
    return {(r.key_id, r.counter) for r in snap.inbound
            if r.outcome.startswith(GATEWAY_REFUSED) and r.key_id is not None
            and r.counter is not None}  # fmt: skip


def _refusal_seen(answer: Answer, refused: set[tuple[int, int]]) -> bool:
    """The sender was answered "try later" (or, past the refusal-reply limit, nothing) for a
    delivery the forwarding phone's bucket refused: that delivery ran nothing."""
    return answer.delivery.sms.frame in refused and answer.reply in (replies.TRY_LATER, "")


def no_refusal_after_run(snap: Snapshot) -> list[str]:
    """A frame that ran is never answered "try later, no money moved" afterwards: a delivery
    the bucket refuses once the frame is stored gets the stored answer."""
    ran = {(f.key_id, f.counter): f.processed_at for f in snap.frames}
    late = [f"{r.key_id}/{r.counter}" for r in snap.inbound
            if r.outcome.startswith(GATEWAY_REFUSED)
            and r.received_at > ran.get((r.key_id or 0, r.counter or 0), float("inf"))]  # fmt: skip
    return [f"{len(late)} SMS refused as busy after they ran: {_some(late)}"] if late else []


def each_instruction_once(snap: Snapshot, sent: list[Sms], answers: list[Answer]) -> list[str]:
    """Every PAY the service answered was processed once: one frame record, one transaction;
    no payment exists that no PAY frame made (a second execution of one instruction). A
    delivery its forwarding phone's bucket refused was not run, so leaves no frame."""
    pays = {s.frame for s in sent if s.kind in ("transfer", "payout")}
    refused = _gateway_refused(snap)
    answered = {a.delivery.sms.frame for a in answers
                if a.status == 200 and not _refusal_seen(a, refused)}  # fmt: skip
    frames = {(f.key_id, f.counter): f for f in snap.frames}
    problems = []
    unprocessed = sorted(pays & answered - frames.keys())
    if unprocessed:
        problems.append(f"{len(unprocessed)} answered PAY SMS left no frame: {unprocessed[:5]}")
    made = Counter(frames[f].reference for f in pays & frames.keys() if frames[f].reference)
    payments = [t for t in snap.transactions if t.kind in (TransactionKind.TRANSFER,
                                                            TransactionKind.PAYOUT)]  # fmt: skip
    orphans = [t.reference for t in payments if made[t.reference] != 1]
    if orphans:
        problems.append(f"{len(orphans)} payments not made by exactly one PAY: {_some(orphans)}")
    if len(payments) != sum(made.values()):
        problems.append(f"{len(payments)} payments for {sum(made.values())} processed PAY SMS")
    return problems


def book_agrees(snap: Snapshot, book: list[Payout]) -> list[str]:
    """The sandbox's book and our payouts, one by one: paid where we say SUCCESS (same amount),
    failed or never made where we refunded, nothing paid that we have no payout for."""
    ours = {t.reference: t for t in snap.transactions if t.kind is TransactionKind.PAYOUT}
    theirs = {p.reference: p for p in book}
    wrong = []
    for ref, txn in ours.items():
        p = theirs.get(ref)
        if txn.state is TransactionState.SUCCESS:
            ok = p is not None and p.status is PayoutStatus.PROCESSED and p.amount == txn.amount
        else:
            ok = p is None or (p.status is PayoutStatus.FAILED and p.amount == txn.amount)
        if not ok:
            wrong.append(f"{ref}: ours {txn.state.value}, sandbox {p.status.value if p else None}")
    wrong += [f"{ref}: sandbox paid, no payout of ours" for ref in theirs.keys() - ours.keys()]
    paid = sum(p.amount for p in book if p.status is PayoutStatus.PROCESSED)
    settled = next((a.balance for a in snap.accounts if a.id == PAYOUTS_SETTLED_ACCOUNT), 0)
    if paid != settled:
        wrong.append(f"sandbox paid {paid} paise, our ledger says {settled}")
    return [f"{len(wrong)} disagreements with the sandbox's book: {_some(wrong)}"] if wrong else []


def senders_saw(snap: Snapshot, answers: list[Answer]) -> list[str]:
    """Every delivery answered 200, every copy of an SMS got the same reply, and no valid SMS
    was refused as a replay, unreadable or not understood."""
    problems = []
    bad = Counter(
        f"no answer ({a.error or 'unknown'})" if a.status is None else f"HTTP {a.status}"
        for a in answers
        if a.status != 200
    )
    if bad:
        problems.append(f"senders saw {dict(bad)}")
    refused = _gateway_refused(snap)
    seen: dict[int, set[str | None]] = defaultdict(set)
    for a in answers:
        if a.status == 200 and not _refusal_seen(a, refused):  # "try later" then run: both true
            seen[a.delivery.sms.id].add(a.reply)
    differing = [i for i, texts in seen.items() if len(texts) > 1]
    if differing:
        example = sorted(map(str, seen[differing[0]]))
        problems.append(f"{len(differing)} SMS got different replies per delivery, e.g. {example}")
    wrongly = Counter(r.outcome for r in snap.inbound if r.outcome.split(":")[0] in REFUSED_VALID)
    if wrongly:
        problems.append(f"valid SMS refused: {dict(wrongly)}")
    return problems


def verdict(
    snap: Snapshot, credited: int, sent: list[Sms], answers: list[Answer], book: list[Payout]
) -> list[str]:
    """Every violation found (empty: the soak passed)."""
    return [
        *every_transaction_final(snap),
        *money_conserved(snap, credited),
        *ledger_matches_states(snap),
        *each_instruction_once(snap, sent, answers),
        *no_refusal_after_run(snap),
        *book_agrees(snap, book),
        *senders_saw(snap, answers),
    ]
