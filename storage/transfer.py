"""Move a whole installation between backends: a JSON-lines export file, its checks and its import.

The file is a header line (format, version, records per kind, sum of all balances), then one line
per record, `{"kind": ..., "record": {...}}`, kinds in the order of `KINDS`. A record's shape is its
dataclass in storage/models.py, field by field: bytes in base64, enums as their
value. Every backend dumps and loads those dataclasses; this module defines the file around them.

Secrets stay wrapped exactly as stored. The master key is not in the file: the target must run
with the same master key (SMSPAY_MASTER_KEY, or the same DATA_DIR/master.key).
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import groupby, islice
from typing import IO

from storage.contract import Store, UnitOfWork
from storage.errors import StoreError
from storage.models import (
    BACKEND_META,
    KINDS,
    RECORDS,
    Account,
    ApiToken,
    AuditEntry,
    Device,
    FrameRecord,
    History,
    InboundRecord,
    Job,
    LedgerEntry,
    MetaValue,
    OutboundSms,
    Record,
    StaffMember,
    TaskerGateway,
    User,
)
from storage.record_json import from_json, to_json

SMS_SEND_JOB = "sms.send"  # the job every backend's enqueue_sms writes, keyed by the message id
FORMAT, VERSION = "smspay-export", 1
BATCH = 500  # records per unit of work on import
SECRETS_NOTE = "secrets are wrapped under the source's master key, which is not in this file"


class TransferError(StoreError):
    """An export that is not consistent, a file that cannot be imported, or a failed import."""


class TargetNotEmpty(TransferError):
    """Import goes only into an empty store."""


@dataclass(frozen=True)
class Summary:
    """Records per kind and the sum of all balances, of a store or of an export file."""

    counts: dict[str, int]
    total_balance: int

    @property
    def records(self) -> int:
        """How many records in all."""
        return sum(self.counts.values())


@dataclass(frozen=True)
class Expected:
    """What a checked export file holds: its header, each account's balance, the meta values."""

    summary: Summary
    balances: dict[str, int]
    meta: dict[str, bytes] = field(repr=False)


# the file


def header_line(summary: Summary) -> str:
    """The first line of an export file."""
    head = {"format": FORMAT, "version": VERSION, "counts": summary.counts}
    head |= {"total_balance": summary.total_balance, "secrets": SECRETS_NOTE}
    return json.dumps(head) + "\n"


def record_line(kind: str, record: Record) -> str:
    """One record's line."""
    return json.dumps({"kind": kind, "record": to_json(record)}, separators=(",", ":")) + "\n"


def _header(line: str) -> Summary:
    try:
        head = json.loads(line)
    except json.JSONDecodeError:
        head = None
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise TransferError(f"line 1: not an {FORMAT} file (no header line)")
    if head.get("version") != VERSION:
        raise TransferError(f"line 1: {FORMAT} version {head.get('version')!r} is not supported")
    counts, total = head.get("counts"), head.get("total_balance")
    if (
        not isinstance(counts, dict)
        or set(counts) != set(KINDS)
        or not all(type(n) is int for n in counts.values())
        or type(total) is not int
    ):
        raise TransferError("line 1: the header's counts or total_balance are malformed")
    return Summary({k: counts[k] for k in KINDS}, total)


def _record(number: int, line: str) -> tuple[str, Record]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TransferError(f"line {number}: not valid JSON ({exc.msg})") from None
    if not (isinstance(obj, dict) and set(obj) == {"kind", "record"} and obj["kind"] in KINDS):
        raise TransferError(f'line {number}: expected {{"kind": one of {KINDS}, "record": ...}}')
    kind: str = obj["kind"]
    try:
        record: Record = from_json(RECORDS[kind], obj["record"], kind)
    except ValueError as exc:
        raise TransferError(f"line {number}: {exc}") from None
    return kind, record


def read_export(lines: Iterable[str]) -> tuple[Summary, Iterator[tuple[str, Record]]]:
    """The header of an export file and its records, read lazily (errors name the line)."""
    numbered = enumerate(lines, 1)
    first = next(numbered, None)
    if first is None:
        raise TransferError("the file is empty")
    return _header(first[1]), (_record(n, line) for n, line in numbered)


# export


def export_records(uow: UnitOfWork) -> Iterator[tuple[str, Record]]:
    """Every record of the store, kind by kind in `KINDS` order (backend bookkeeping left out)."""
    for kind in KINDS:
        for record in uow.dump(kind):
            if not (isinstance(record, MetaValue) and record.key in BACKEND_META):
                yield kind, record


def summarize(uow: UnitOfWork) -> Summary:
    """Records per kind (as exported) and the sum of all balances."""
    meta = len(export_meta(uow))
    counts = {kind: meta if kind == "meta" else uow.count(kind) for kind in KINDS}
    return Summary(counts, uow.total_balance())


def export_meta(uow: UnitOfWork) -> dict[str, bytes]:
    """The meta values that travel with an export."""
    records = uow.dump("meta")
    return {
        r.key: r.value for r in records if isinstance(r, MetaValue) and r.key not in BACKEND_META
    }


def write_export(store: Store, out: IO[str]) -> Summary:
    """Write the header and every record in one read of the store; returns the header."""

    def unit(uow: UnitOfWork) -> Summary:
        summary = summarize(uow)
        out.write(header_line(summary))
        counts, total = dict.fromkeys(KINDS, 0), 0
        for kind, record in export_records(uow):
            out.write(record_line(kind, record))
            counts[kind] += 1
            total += record.balance if isinstance(record, Account) else 0
        if Summary(counts, total) != summary:  # a read that is no snapshot saw writes
            raise TransferError(
                "the store changed during the export; stop the web and worker processes"
                " and export again"
            )
        return summary

    return store.read(unit)


# import


class _Constraints:
    """What the target would refuse half-way through an import, found before writing anything."""

    def __init__(self) -> None:
        self.seen: dict[str, set[object]] = defaultdict(set)

    def problem(self, r: Record) -> str | None:
        """Why the record cannot be loaded after the ones before it, or None."""
        unique: list[tuple[str, object]] = []
        refers: list[tuple[str, object]] = []
        if isinstance(r, MetaValue):
            if r.key in BACKEND_META:
                return f"meta {r.key!r} belongs to the backend and is never exported"
            unique = [("meta", r.key)]
        elif isinstance(r, User):
            unique = [("user", r.id), ("phone", r.phone)]
        elif isinstance(r, Account):
            if r.balance < 0 and not r.allow_negative:
                return f"account {r.id} has a negative balance"
            unique = [("account", r.id)]
        elif isinstance(r, Device):
            unique, refers = [("device", r.key_id)], [("user", r.user_id)]
        elif isinstance(r, TaskerGateway):
            unique = [("gateway", r.id)]
        elif isinstance(r, History):
            if r.transaction.amount <= 0:
                return f"transaction {r.transaction.reference} has no positive amount"
            unique = [("transaction", r.transaction.reference)]
        elif isinstance(r, LedgerEntry):
            if len(r.postings) < 2 or sum(p.amount for p in r.postings) != 0:
                return f"the ledger entry of {r.reference} does not balance"
            refers = [("account", p.account) for p in r.postings]
        elif isinstance(r, InboundRecord) and r.provider_message_id is not None:
            unique = [("message", (r.route, r.provider_message_id))]
        elif isinstance(r, FrameRecord):
            unique = [("frame", (r.key_id, r.counter))]
        elif isinstance(r, StaffMember):
            unique = [("staff", r.id), ("staff name", r.name)]
        elif isinstance(r, ApiToken):
            unique, refers = [("token", r.token_hash)], [("staff", r.staff_id)]
        elif isinstance(r, AuditEntry):
            unique = [("audit entry", r.id)]
        for name, key in refers:
            if key not in self.seen[name]:
                return f"refers to {name} {key!r}, which no earlier line holds"
        for name, key in unique:
            if key in self.seen[name]:
                return f"{name} {key!r} appears twice"
            self.seen[name].add(key)
        return None


def scan(lines: Iterable[str], check: Callable[[Record], None] | None = None) -> Expected:
    """Read a whole export file and refuse it unless every line is sound and the header matches.

    Writes nothing. `check` may raise TransferError for a record (e.g. a secret that does not
    unwrap under the target's master key).
    """
    header, records = read_export(lines)
    counts, balances, rules, last = dict.fromkeys(KINDS, 0), {}, _Constraints(), 0
    meta: dict[str, bytes] = {}
    for number, (kind, record) in enumerate(records, 2):
        if KINDS.index(kind) < last:
            raise TransferError(f"line {number}: {kind} after {KINDS[last]}; kinds go {KINDS}")
        last = KINDS.index(kind)
        problem = rules.problem(record)
        try:
            if problem:
                raise TransferError(problem)
            if check is not None:
                check(record)
        except TransferError as exc:
            raise TransferError(f"line {number}: {exc}") from None
        counts[kind] += 1
        if isinstance(record, Account):
            balances[record.id] = record.balance
        elif isinstance(record, MetaValue):
            meta[record.key] = record.value
    wrong = [f"{n} {k} (the header says {header.counts[k]})" for k, n in counts.items()
             if n != header.counts[k]]  # fmt: skip
    if wrong:
        raise TransferError("the file is incomplete or edited: it holds " + ", ".join(wrong))
    if sum(balances.values()) != header.total_balance:
        raise TransferError(
            f"the file's balances sum to {sum(balances.values())} paise,"
            f" the header says {header.total_balance}"
        )
    return Expected(header, balances, meta)


def ensure_empty(store: Store) -> None:
    """Refuse a target that holds anything but meta values (db init writes some)."""
    counts = store.read(lambda uow: {kind: uow.count(kind) for kind in KINDS if kind != "meta"})
    held = [f"{n} {kind}" for kind, n in counts.items() if n]
    if held:
        raise TargetNotEmpty(
            f"the target store is not empty ({', '.join(held)}); import only into a new store"
        )


def _load(store: Store, kind: str, batch: list[Record]) -> None:
    store.atomic(lambda uow: uow.load(kind, batch))


def _new_sms_ids(store: Store, file_ids: list[str]) -> dict[str, str]:
    """The id each outbox SMS of the file got in the target (both keep the file's order)."""
    target = store.read(lambda uow: [m.id for m in uow.outbox(limit=len(file_ids) or 1)])
    return {old: new for old, new in zip(file_ids, target, strict=False) if new is not None}


def _follow_sms(record: Record, new_ids: dict[str, str]) -> Record:
    """An `sms.send` job names its message by id, which the target made anew: follow it.

    Without this a message still waiting in the outbox would never be sent after a move to a
    backend that makes other ids (SQLite counts, MongoDB makes ObjectIds).
    """
    if not isinstance(record, Job) or record.kind != SMS_SEND_JOB:
        return record
    new = new_ids.get(str(record.payload.get("id")))
    if new is None:
        return record
    key = f"{SMS_SEND_JOB}:{new}"
    return dataclasses.replace(record, id=key, key=key, payload={**record.payload, "id": new})


def import_records(
    store: Store,
    records: Iterable[tuple[str, Record]],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Load records in file order, `BATCH` per unit of work; returns how many were loaded."""
    done = 0
    sms_ids: list[str] = []  # the file's outbox ids, in order
    new_sms_ids: dict[str, str] | None = None
    try:
        for kind, group in groupby(records, key=lambda item: item[0]):
            while batch := [record for _, record in islice(group, BATCH)]:
                if kind == "outbox_sms":
                    sms_ids += [str(r.id) for r in batch if isinstance(r, OutboundSms)]
                elif kind == "jobs":
                    if new_sms_ids is None:  # outbox_sms come before jobs in the file
                        new_sms_ids = _new_sms_ids(store, sms_ids)
                    batch = [_follow_sms(r, new_sms_ids) for r in batch]
                _load(store, kind, batch)
                done += len(batch)
                if progress is not None:
                    progress(len(batch))
    except TransferError:
        raise
    except StoreError as exc:
        raise TransferError(
            f"the import stopped after {done} records ({exc}); the target now holds part of the"
            " file: empty it (remove the SQLite file, or drop the MongoDB database and run"
            " db init) and import again"
        ) from exc
    return done


def verify(store: Store, expected: Expected) -> list[str]:
    """Differences between the store and the file: records per kind, total, each balance.

    Meta values are compared one by one: each in the file must be in the store as it is, and the
    store may hold more (db init writes a PIN key of its own when the source had none yet).
    """

    def read(uow: UnitOfWork) -> tuple[Summary, dict[str, int], dict[str, bytes]]:
        accounts = uow.dump("accounts")
        balances = {a.id: a.balance for a in accounts if isinstance(a, Account)}
        return summarize(uow), balances, export_meta(uow)

    found, balances, meta = store.read(read)
    want = expected.summary
    problems = [
        f"meta {key!r} differs"
        for key in sorted(expected.meta)
        if meta.get(key) != expected.meta[key]
    ]
    problems += [
        f"{kind}: {n} in the file, {found.counts[kind]} in the store"
        for kind, n in want.counts.items()
        if found.counts[kind] != n and kind != "meta"
    ]
    if found.total_balance != want.total_balance:
        problems.append(
            f"total balance: {want.total_balance} paise in the file,"
            f" {found.total_balance} in the store"
        )
    accounts = sorted(expected.balances.keys() | balances.keys())
    wrong = [a for a in accounts if expected.balances.get(a) != balances.get(a)]
    problems += [
        f"account {a}: {expected.balances.get(a)} paise in the file, {balances.get(a)} in the store"
        for a in wrong[:10]
    ]
    if len(wrong) > 10:
        problems.append(f"... and {len(wrong) - 10} more accounts differ")
    return problems
