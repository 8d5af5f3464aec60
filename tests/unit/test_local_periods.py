"""The start of the local day and month (the caps' periods), remembered between payments, equal
the local-time conversion they stand for at every moment: across midnights, month ends, DST
changes (one where midnight itself is skipped), and with the clock going back."""

from __future__ import annotations

import random
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from app.services.common import start_of_day, start_of_month

ZONES = ["Asia/Kolkata", "America/New_York", "Australia/Lord_Howe", "America/Santiago", "UTC"]


def day_of(now: float, tz: ZoneInfo) -> float:
    local = datetime.fromtimestamp(now, tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def month_of(now: float, tz: ZoneInfo) -> float:
    local = datetime.fromtimestamp(now, tz)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


@pytest.mark.parametrize("zone", ZONES)
def test_the_remembered_periods_equal_the_conversion(zone: str) -> None:
    tz = ZoneInfo(zone)
    t0 = datetime(2025, 1, 1, tzinfo=tz).timestamp()
    forward = [t0 + i * 4_447.0 for i in range(7_200)]  # a year and more, odd steps
    rng = random.Random(zone)
    jumps = rng.sample(forward, 500)  # back and forth: the clock may go back
    edges = [day_of(t, tz) + d for t in forward[::40] for d in (-0.001, 0.0, 0.001)]
    for now in [*forward, *jumps, *edges]:
        assert start_of_day(now, tz) == day_of(now, tz), (zone, now)
        assert start_of_month(now, tz) == month_of(now, tz), (zone, now)
