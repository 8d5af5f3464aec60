"""A payment decided before the writers' lock (SQLite: app/services/inbound.py) writes what the
payment decided inside its unit of work writes, and is decided again inside whenever something it
read changed before it was settled: the daily cap, a redelivery, a twin of the frame.

The changes are made at the one moment that matters, between the decision (in its snapshot) and
the settlement (in the lock), by delivering another SMS through the whole service from inside a
wrapper around `_decide_ahead`; the service's own code does the rest.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.services import inbound
from tests.conftest import World
from tests.functional.test_inbound import Routes
from tests.support import FakeClock, Phone

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
ASHA, RAVI = "+919876543210", "+919812345678"


@pytest.fixture
def routes(client: FlaskClient, world: World, clock: FakeClock) -> Routes:
    return Routes(client, world, clock)


class Ahead:
    """Counts payments decided ahead and how each ended; runs `between` (once) after the next
    decision and before its settlement."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.decided = 0
        self.settled: list[str] = []
        self.stale: list[str] = []
        self.between: Callable[[], Any] | None = None
        decide, settle = inbound._decide_ahead, inbound._settle_ahead

        def decide_then(*args: Any) -> Any:
            found = decide(*args)
            self.decided += found is not None
            between, self.between = self.between, None
            if found is not None and between is not None:
                between()
            return found

        def settle_counted(*args: Any) -> Any:
            try:
                reply = settle(*args)
            except inbound.Stale as exc:
                self.stale.append(str(exc))
                raise
            self.settled.append(reply.outcome)
            return reply

        monkeypatch.setattr(inbound, "_decide_ahead", decide_then)
        monkeypatch.setattr(inbound, "_settle_ahead", settle_counted)


def rows_of(world: World, reference: str) -> dict[str, Any]:
    """What a payment wrote, without what differs from one payment to the next."""

    def read(uow: Any) -> dict[str, Any]:
        txn = uow.get_transaction(reference)
        return {
            "transaction": dataclasses.replace(txn, reference="", created_at=0, updated_at=0),
            "history": [(e.state, e.reason) for e in uow.events(reference)],
            "postings": [list(e.postings) for e in uow.entries(reference)],
            "outbox": [
                (m.to, m.body.replace(reference, "REF"))
                for m in uow.outbound_for_reference(reference)
            ],
        }

    return dict(world.svc.store.read(read))


def test_a_payment_decided_ahead_writes_what_one_decided_inside_writes(
    routes: Routes, world: World, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    asha = world.user(ASHA, rupees=1_000)
    world.user(RAVI)
    ahead = Ahead(monkeypatch)
    with monkeypatch.context() as inside_only:  # as on a store that keeps no decision versions
        inside_only.setattr(world.svc.store, "decision_versions", False)
        inside = routes.send("tasker", ASHA, asha.pay(RAVI, 500, at=clock.now()))[1]
    assert (ahead.decided, ahead.settled) == (0, [])
    before = routes.send("tasker", ASHA, asha.pay(RAVI, 500, at=clock.now()))[1]
    assert (ahead.decided, ahead.settled) == (1, ["paid"])
    ref_inside, ref_ahead = inside.split("Ref ")[1][:10], before.split("Ref ")[1][:10]
    assert inside.replace(ref_inside, "REF").replace("995.00", "990.00") == before.replace(
        ref_ahead, "REF"
    )
    one, two = rows_of(world, ref_inside), rows_of(world, ref_ahead)
    assert "Bal Rs 5.00" in one["outbox"][0][1] and "Bal Rs 10.00" in two["outbox"][0][1]
    for rows in (one, two):  # Ravi's balance told apart, the rest alike
        rows["outbox"] = [
            (to, re.sub(r"Bal Rs [\d.]+", "Bal", body)) for to, body in rows["outbox"]
        ]
    assert one == two
    assert (world.balance(ASHA), world.balance(RAVI)) == (99_000, 1_000)


def test_a_payment_of_the_same_payer_between_decision_and_settlement_sends_it_inside(
    routes: Routes, world: World, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daily cap read ahead no longer holds once another payment of the payer is made: the
    version check sends the payment inside, where the cap refuses it. (The ledger's conditional
    debit cannot catch this one: the money is there.)"""
    world.svc.settings = dataclasses.replace(world.svc.settings, limit_per_day_paise=100_000)
    asha = world.user(ASHA, rupees=5_000)
    ravi = world.user(RAVI)
    ahead = Ahead(monkeypatch)
    assert "Paid" in routes.send("tasker", ASHA, asha.pay(RAVI, 100, at=clock.now()))[1]
    # Rs 600 decided ahead with Rs 1 spent today; Rs 600 more is paid before it settles
    ahead.between = lambda: routes.send("tasker", ASHA, asha.pay(RAVI, 60_000, at=clock.now()))
    text = routes.send("tasker", ASHA, asha.pay(RAVI, 60_000, at=clock.now()))[1]
    assert "daily limit reached" in text
    assert ahead.stale == ["the payer's decision version moved on"]
    assert world.balance(ASHA) == 500_000 - 60_100
    assert world.total() == 0
    assert ravi  # (registered: a payee)


def test_a_twilio_message_redelivered_meanwhile_is_answered_once(
    routes: Routes, world: World, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    asha: Phone = world.user(ASHA, rupees=1_000)
    world.user(RAVI)
    ahead = Ahead(monkeypatch)
    assert (
        "Paid" in routes.twilio(ASHA, asha.pay(RAVI, 100, at=clock.now()), sid="SM" + "1" * 32)[1]
    )
    body = asha.pay(RAVI, 200, at=clock.now())
    sid = "SM" + "2" * 32
    answers: list[str] = []
    ahead.between = lambda: answers.append(routes.twilio(ASHA, body, sid=sid)[1])
    answers.append(routes.twilio(ASHA, body, sid=sid)[1])
    assert answers[0] == answers[1] and "Paid Rs 2.00" in answers[0]
    assert len(ahead.stale) == 1  # the redelivery was settled first; the first delivery is late
    assert world.balance(ASHA) == 100_000 - 300
