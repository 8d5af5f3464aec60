"""Small helpers shared by the use cases: references, local days, opening a ledger account."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sms.instructions import REFERENCE_ALPHABET, REFERENCE_LENGTH
from storage.contract import Ledger
from storage.errors import NotFound


@dataclass(frozen=True)
class Outcome:
    """What became of one instruction: a short code for records, the reply, the reference."""

    code: str
    reply: str
    reference: str | None = None


def new_reference() -> str:
    """A random, unambiguous 10-character transaction reference (32^10 of them): 50 random bits
    from one draw, 5 a letter.

    Not looked up: the transaction's primary key refuses one taken already, and the store then
    runs the unit of work again, which draws another (Store.atomic).
    """
    bits = int.from_bytes(secrets.token_bytes(7), "big")
    return "".join(REFERENCE_ALPHABET[(bits >> (5 * i)) & 31] for i in range(REFERENCE_LENGTH))


# The local day and month last asked for, per zone: [start, end) in Unix time. Every payment asks
# for both (its caps), and they change once a day: a comparison instead of a conversion to local
# time and back (8 us for both, inside the writers' lock).
_periods: dict[tuple[ZoneInfo, bool], tuple[float, float]] = {}


def _period_start(now: float, tz: ZoneInfo, month: bool) -> float:
    known = _periods.get((tz, month))
    if known is not None and known[0] <= now < known[1]:
        return known[0]
    start = datetime.fromtimestamp(now, tz).replace(hour=0, minute=0, second=0, microsecond=0)
    if month:
        start = start.replace(day=1)
        after = (start + timedelta(days=32)).replace(day=1)  # wall-clock days: local midnights
    else:
        after = start + timedelta(days=1)
    _periods[(tz, month)] = (start.timestamp(), after.timestamp())
    return start.timestamp()


def start_of_day(now: float, tz: ZoneInfo) -> float:
    """Unix time of the last local midnight."""
    return _period_start(now, tz, month=False)


def start_of_month(now: float, tz: ZoneInfo) -> float:
    """Unix time of the local midnight that began this calendar month."""
    return _period_start(now, tz, month=True)


def local_time(ts: float, tz: ZoneInfo) -> str:
    """A short local time for SMS, e.g. '26 Nov 14:05'."""
    return datetime.fromtimestamp(ts, tz).strftime("%d %b %H:%M")


def ensure_account(uow: Ledger, account: str, allow_negative: bool = False) -> None:
    """Create a ledger account if it does not exist yet (a wallet; system accounts: ledger.py)."""
    try:
        uow.balance(account)
    except NotFound:
        uow.create_account(account, allow_negative)
