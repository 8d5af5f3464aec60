"""The round trips to MongoDB of one PAY, one payout and one BAL through the Tasker webhook, and
of one PAY through Twilio's, counted with pymongo's command monitoring (bench/mongo_trips.py):
a change that adds one shows here."""

from __future__ import annotations

import pytest

from bench.mongo_trips import count

# measured with `python -m bench.mongo_trips`; lower these when a change saves a trip
PAY_ROUND_TRIPS = 16
PAYOUT_ROUND_TRIPS = 19  # a PAY to a UPI id
BAL_ROUND_TRIPS = 8
TWILIO_PAY_ROUND_TRIPS = 15  # no forwarding phone's bucket; its MessageSid read only on a retry


@pytest.fixture(scope="module")
def trips(mongo_base_uri: str) -> dict[str, int]:
    return {name: sum(seen.values()) for name, seen in count(mongo_base_uri).items()}


def test_one_payment_takes_at_most_its_round_trips(trips: dict[str, int]) -> None:
    assert trips["PAY"] <= PAY_ROUND_TRIPS, trips
    assert trips["PAY again"] <= PAY_ROUND_TRIPS, trips


def test_one_payment_through_twilio_takes_at_most_its_round_trips(trips: dict[str, int]) -> None:
    assert trips["PAY via Twilio"] <= TWILIO_PAY_ROUND_TRIPS, trips


def test_one_payout_takes_at_most_its_round_trips(trips: dict[str, int]) -> None:
    assert trips["PAY to a UPI id"] <= PAYOUT_ROUND_TRIPS, trips


def test_one_balance_takes_at_most_its_round_trips(trips: dict[str, int]) -> None:
    assert trips["BAL"] <= BAL_ROUND_TRIPS, trips
