"""Small helpers shared by the use cases: references, local days, opening a ledger account."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sms.instructions import REFERENCE_ALPHABET, REFERENCE_LENGTH
from storage.contract import Ledger, UnitOfWork
from storage.errors import NotFound


@dataclass(frozen=True)
class Outcome:
    """What became of one instruction: a short code for records, the reply, the reference."""

    code: str
    reply: str
    reference: str | None = None


def random_reference() -> str:
    """10 characters of a 32-letter alphabet: 50 random bits, 5 a letter (one system call)."""
    bits = int.from_bytes(secrets.token_bytes(7), "big")
    return "".join(REFERENCE_ALPHABET[(bits >> (5 * i)) & 31] for i in range(REFERENCE_LENGTH))


def new_reference(uow: UnitOfWork) -> str:
    """A fresh, unambiguous 10-character transaction reference."""
    while True:
        ref = random_reference()
        if uow.get_transaction(ref) is None:  # the primary key still guards a race
            return ref


def start_of_day(now: float, tz: ZoneInfo) -> float:
    """Unix time of the last local midnight."""
    local = datetime.fromtimestamp(now, tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def start_of_month(now: float, tz: ZoneInfo) -> float:
    """Unix time of the local midnight that began this calendar month."""
    local = datetime.fromtimestamp(now, tz)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


def local_time(ts: float, tz: ZoneInfo) -> str:
    """A short local time for SMS, e.g. '26 Nov 14:05'."""
    return datetime.fromtimestamp(ts, tz).strftime("%d %b %H:%M")


def ensure_account(uow: Ledger, account: str, allow_negative: bool = False) -> None:
    """Create a ledger account if it does not exist yet (a wallet; system accounts: ledger.py)."""
    try:
        uow.balance(account)
    except NotFound:
        uow.create_account(account, allow_negative)
