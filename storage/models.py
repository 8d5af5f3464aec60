"""The records of the storage contract: plain dataclasses in and out of every backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from crypto.replay import ReplayWindow


class TransactionState(StrEnum):
    """Life of a transaction: PENDING -> PROCESSING -> SUCCESS | FAILED; FLAGGED holds the money
    until staff approve or reject. Which state may follow which: app/services/ledger.py."""

    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    FLAGGED = "FLAGGED"


class TransactionKind(StrEnum):
    """What a transaction does."""

    TRANSFER = "transfer"  # wallet to wallet, inside the service
    CASH_IN = "cash_in"  # an agent took cash and credited the wallet
    PAYOUT = "payout"  # wallet to a UPI id outside the service, through a gateway
    TOP_UP = "top_up"  # a payment link paid through a gateway credits the wallet


# System accounts. Money enters through cash_in and gateway_in (which go negative by what came
# in) and leaves through payouts_settled, so the sum over all accounts is always zero.
CASH_IN_ACCOUNT = "system:cash_in"
GATEWAY_IN_ACCOUNT = "system:gateway_in"
PAYOUTS_IN_FLIGHT_ACCOUNT = "system:payouts_in_flight"
PAYOUTS_SETTLED_ACCOUNT = "system:payouts_settled"


def user_account(user_id: str) -> str:
    """Ledger account id of a user's wallet."""
    return f"user:{user_id}"


@dataclass(frozen=True)
class User:
    """A registered payer or payee. The PIN is kept only as a keyed hash."""

    id: str
    phone: str
    name: str
    pin_salt: bytes = field(repr=False)
    pin_hash: bytes = field(repr=False)
    created_at: float
    failed_pin_attempts: int = 0
    locked_until: float | None = None
    area_lat: float | None = None  # the usual area staff set for the geofence (else: learned)
    area_lon: float | None = None

    @property
    def account(self) -> str:
        """This user's wallet account in the ledger."""
        return user_account(self.id)


@dataclass(frozen=True)
class Device:
    """A phone's encryption key (wrapped under the master key) and its replay window."""

    key_id: int
    user_id: str
    phone: str
    wrapped_key: bytes = field(repr=False)
    created_at: float
    window: ReplayWindow = ReplayWindow()
    last_seen_at: float | None = None
    active: bool = True


@dataclass(frozen=True)
class TaskerGateway:
    """An Android phone that forwards SMS; its HMAC secret is stored wrapped."""

    id: str
    wrapped_secret: bytes = field(repr=False)
    created_at: float
    last_seen_at: float | None = None


@dataclass(frozen=True)
class Posting:
    """One leg of a ledger entry: a signed amount in paise on one account."""

    account: str
    amount: int


@dataclass(frozen=True)
class LedgerEntry:
    """A balanced set of postings for one transaction."""

    id: str
    reference: str
    postings: tuple[Posting, ...]
    created_at: float


@dataclass(frozen=True)
class Transaction:
    """A payment or a credit, with its current state."""

    reference: str
    kind: TransactionKind
    amount: int
    state: TransactionState
    created_at: float
    updated_at: float
    payer_id: str | None = None
    payer_phone: str | None = None
    payee_id: str | None = None
    payee: str | None = None  # E.164 number or UPI id, as the payer wrote it
    reason: str = ""
    note: str = ""
    channel: str = ""
    lat: float | None = None  # where the payer said they were, if the instruction carried it
    lon: float | None = None
    risk: str = ""  # what the risk rules decided and why (app/services/risk.py), one line


class RecentPayment(NamedTuple):
    """What the risk rules read of one of a payer's recent payments: a plain tuple, light to build.

    `state` is the state's text ("FAILED", ...), which compares equal to TransactionState's members.
    """

    reference: str
    payee: str | None
    amount: int
    created_at: float
    state: str
    lat: float | None
    lon: float | None


@dataclass(frozen=True)
class TransactionEvent:
    """One state change in a transaction's append-only history."""

    reference: str
    state: TransactionState
    reason: str
    at: float


@dataclass(frozen=True)
class InboundRecord:
    """Every inbound SMS that passed webhook authentication, with what became of it."""

    route: str
    sender: str
    received_at: float
    outcome: str
    reply: str
    id: str | None = None
    provider_message_id: str | None = None
    gateway_id: str | None = None
    key_id: int | None = None
    counter: int | None = None
    reference: str | None = None
    deliveries: int = 1


@dataclass(frozen=True)
class FrameRecord:
    """One processed SP1 frame (device key, counter): the exactly-once guard and its answer."""

    key_id: int
    counter: int
    outcome: str
    reply: str
    processed_at: float
    reference: str | None = None
    digest: str = ""  # of the ciphertext: the same counter with another one is a reused nonce


@dataclass(frozen=True)
class OutboundSms:
    """A status SMS in the outbox, written in the unit of work of the change it reports.

    pending -> sending (a worker or a Tasker phone has it) -> sent (the provider took it)
    -> delivered | undelivered | failed (what the provider later said).
    """

    to: str
    body: str
    created_at: float
    reference: str | None = None
    id: str | None = None
    status: str = "pending"
    channel: str = ""
    provider_id: str = ""
    error: str = ""
    updated_at: float | None = None
    lease_gateway: str | None = None
    lease_until: float | None = None
    attempts: int = 0


SMS_FINAL = ("delivered", "undelivered", "failed")


class JobStatus(StrEnum):
    """A job in the durable outbox: waiting, leased to a worker, finished, or given up on."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    DEAD = "dead"


@dataclass(frozen=True)
class Job:
    """Slow work (a payout, a status poll, an SMS) written in the same unit of work as the state
    change that needs it, and run later by a worker that holds a lease on it."""

    id: str
    kind: str
    key: str  # unique: enqueueing the same work twice keeps one job
    payload: dict[str, Any]
    status: JobStatus
    attempts: int
    run_after: float
    created_at: float
    updated_at: float
    lease_owner: str | None = None
    lease_until: float | None = None
    last_error: str = ""


@dataclass(frozen=True)
class ProviderEvent:
    """A gateway webhook event, recorded once per provider event id."""

    provider: str
    event_id: str
    kind: str
    reference: str
    status: str
    received_at: float
    outcome: str = ""


@dataclass(frozen=True)
class JobGroup:
    """Jobs not yet done that share kind and status, for metrics: how many, the earliest due."""

    kind: str
    status: JobStatus
    count: int
    oldest_run_after: float


@dataclass(frozen=True)
class WorkerBeat:
    """A worker process's latest heartbeat: who it is, since when it runs, what it has done."""

    owner: str  # the worker's lease owner id, unique per process
    host: str
    pid: int
    started_at: float
    beat_at: float
    jobs_done: int = 0
    stopped: bool = False  # True: it stopped on a signal and said so; not quiet, gone


# Support staff and admins (app/services/staff.py): accounts, API tokens, the audit log.


class StaffRole(StrEnum):
    """What a staff member may do: support reads; admin also acts on money and users."""

    SUPPORT = "support"
    ADMIN = "admin"


HELD_ACCOUNT = "system:held"  # money of FLAGGED payments, until an admin approves or rejects


@dataclass(frozen=True)
class StaffMember:
    """A support agent or admin. The console password is kept only as a slow (scrypt) hash."""

    id: str
    name: str
    role: StaffRole
    created_at: float
    password_hash: str = field(default="", repr=False)


@dataclass(frozen=True)
class ApiToken:
    """An API bearer token, kept only as the SHA-256 of the token; `prefix` names it to people."""

    token_hash: str
    prefix: str
    staff_id: str
    created_at: float
    revoked_at: float | None = None


@dataclass(frozen=True)
class AuditEntry:
    """One staff action, append-only: who, what, on what, when, why, and what became of it."""

    id: str  # sorts by time: milliseconds, then random hex
    at: float
    actor: str  # a staff member's name, or "cli:<os user>"
    action: str  # e.g. "payment.approve"
    target: str  # a transaction reference, a phone number, a staff name
    reason: str
    outcome: str = ""


@dataclass(frozen=True)
class TransactionGroup:
    """Transactions created in a time range that share state, channel and reason (for KPIs)."""

    state: TransactionState
    channel: str
    reason: str
    count: int
    amount: int


# Export records (storage/transfer.py): every kind of record a store holds, in the order of the
# export file and of the import (records before those that refer to them). A record's shape is its
# dataclass, field by field; both backends dump and load these, so the shape is defined here once.

BACKEND_META = frozenset({"schema_version"})  # each backend keeps its own; never exported


@dataclass(frozen=True)
class MetaValue:
    """A small named value, e.g. the wrapped PIN key."""

    key: str
    value: bytes = field(repr=False)


@dataclass(frozen=True)
class Account:
    """A ledger account with its balance in paise."""

    id: str
    balance: int
    allow_negative: bool = False


@dataclass(frozen=True)
class History:
    """A transaction with every state it went through, oldest first."""

    transaction: Transaction
    events: tuple[TransactionEvent, ...]

    def __post_init__(self) -> None:
        if any(e.reference != self.transaction.reference for e in self.events):
            raise ValueError("an event names another transaction")


Record = (
    MetaValue | User | Account | Device | TaskerGateway | History | LedgerEntry | InboundRecord
    | FrameRecord | OutboundSms | Job | ProviderEvent | StaffMember | ApiToken | AuditEntry
)  # fmt: skip
RECORDS: dict[str, type[Record]] = {
    "meta": MetaValue,
    "users": User,
    "accounts": Account,
    "devices": Device,
    "tasker_gateways": TaskerGateway,
    "transactions": History,
    "ledger_entries": LedgerEntry,
    "inbound_sms": InboundRecord,
    "frames": FrameRecord,
    "outbox_sms": OutboundSms,
    "jobs": Job,
    "provider_events": ProviderEvent,
    "staff": StaffMember,  # support staff: their tokens (hashed) and the audit log follow
    "api_tokens": ApiToken,
    "audit_log": AuditEntry,
}
# Tables that need not travel: rate-limit buckets refill by themselves on the target.
# Worker heartbeats describe the processes of one installation, not its data. Running spending
# totals are made again from the transactions on the target (storage/contract/spending.py), and
# SQLite's payees_paid by its triggers as the transactions are imported (migration 5).
NOT_EXPORTED = frozenset({"rate_buckets", "rate_windows", "workers", "spending", "payees_paid"})
KINDS = tuple(RECORDS)  # the order of the file, and of the import (records before referrers)
# the kinds kept by the staff part of each backend
STAFF_KINDS = ("staff", "api_tokens", "audit_log")
