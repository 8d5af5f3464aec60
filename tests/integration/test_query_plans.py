"""Every query a PAY runs finds its rows through an index (SQLite's EXPLAIN QUERY PLAN).

The cost of a payment must not grow with the payer's history (nor with the size of any table):
no statement of the PAY path, from the inbound SMS to the reply, may scan a table. The statements
are those SQLite really ran, recorded by a trace callback, with their values bound.
"""

from __future__ import annotations

import re
import sqlite3
from decimal import Decimal
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.bootstrap import Services
from sms.instructions import format_pay
from storage.models import Transaction, TransactionKind, TransactionState
from storage.sqlite import SqliteStore
from tests.conftest import World
from tests.functional.test_inbound import Routes
from tests.support import FakeClock

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

ASHA, RAVI = "+919876543210", "+919812345678"
# what the plans must show for the risk reads (the rest: any index or primary key), by a
# pattern of the statement as it ran (its values in place)
PAYER_TIME = "USING INDEX transactions_payer (payer_id=? AND created_at>?)"
EXPECTED = {
    r"FROM inbound_sms WHERE route": (
        "USING INDEX inbound_provider_id (route=? AND provider_message_id=?)"
    ),
    r"FROM spending": "USING INDEX sqlite_autoindex_spending_1 (payer_id=?)",
    # the totals made from the transactions (a new payer)
    r"SUM\(amount\), 0\) FROM transactions WHERE payer_id = '\w+' AND created_at": PAYER_TIME,
    # a new payee's 24 hours: the pair's running total (a payee first paid that recently),
    # else the payments since
    r"FROM payees_paid WHERE payer_id = '\w+' AND payee = ": (
        "USING PRIMARY KEY (payer_id=? AND payee=?)"
    ),
    r"SUM\(amount\), 0\) FROM transactions WHERE payer_id = '\w+' AND payee = ": (
        "USING INDEX transactions_payer_payee (payer_id=? AND payee=? AND created_at>?)"
    ),
    r"SELECT amount, state FROM transactions": PAYER_TIME,  # the newest 100 amounts
    r"SELECT reference, payee, amount": PAYER_TIME,  # the newest 100, for a located payment
    r"FROM payees_paid": "USING COVERING INDEX payees_paid_time (payer_id=? AND last_at>?)",
    r"AND state != 'FAILED' ORDER BY created_at LIMIT 1": (  # the first payment to the payee
        "USING COVERING INDEX transactions_payer_payee (payer_id=? AND payee=?)"
    ),
}


def scans_a_table(step: str) -> bool:
    """A plan's step that reads a whole table ("SCAN CONSTANT ROW": a SELECT with no FROM;
    "SCAN (subquery-N)": the rows a subquery made, bounded by its own plan)."""
    return step.startswith("SCAN") and not step.startswith(("SCAN CONSTANT ROW", "SCAN (subq"))


def plan(conn: sqlite3.Connection, statement: str) -> list[str]:
    return [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {statement}")]


def traced_pays(svc: Services, client: FlaskClient, world: World, clock: FakeClock) -> list[str]:
    """The statements of three payments by one payer, by Tasker, Twilio and Tasker (the first
    makes the payer's running totals from the transactions; the second, to a payee first paid
    a minute before, carries a location, and Twilio delivers it twice; the third, to the same
    new payee, does not)."""
    asha = world.user(ASHA, rupees=1_000)
    world.user(RAVI)
    routes = Routes(client, world, clock)
    store = svc.store
    assert isinstance(store, SqliteStore)
    conn = store._connect()
    ran: list[str] = []
    conn.set_trace_callback(ran.append)
    try:
        clock.advance(60)
        assert "Paid Rs" in routes.send("tasker", ASHA, asha.pay(RAVI, 500, at=clock.now()))[1]
        clock.advance(60)
        where = (Decimal("12.97"), Decimal("77.59"))
        text = asha.seal(format_pay(RAVI, 700, asha.pin, int(clock.now()), location=where))
        sid = "SM" + "0f" * 16
        paid = routes.twilio(ASHA, text, sid)
        assert "Paid Rs" in paid[1] and routes.twilio(ASHA, text, sid) == paid  # Twilio retried
        clock.advance(60)
        assert "Paid Rs" in routes.send("tasker", ASHA, asha.pay(RAVI, 300, at=clock.now()))[1]
    finally:
        conn.set_trace_callback(None)
    return ran


def test_no_statement_of_a_payment_scans_a_table(
    svc: Services, client: FlaskClient, world: World, clock: FakeClock
) -> None:
    ran = traced_pays(svc, client, world, clock)
    store: Any = svc.store
    conn = store._connect()
    plans: dict[str, list[str]] = {}
    for statement in ran:
        if re.match(r"\s*(SELECT|UPDATE|DELETE|INSERT .* ON CONFLICT)", statement, re.I | re.S):
            plans[statement] = plan(conn, statement)
    assert len(plans) > 10
    scans = {s: p for s, p in plans.items() if any(scans_a_table(step) for step in p)}
    assert scans == {}
    for fragment, expected in EXPECTED.items():
        found = [p for s, p in plans.items() if re.search(fragment, s)]
        assert found, f"no statement with {fragment!r} ran"
        assert all(any(expected in step for step in p) for p in found), (fragment, found)
    amounts = [p for s, p in plans.items() if "SELECT amount, state FROM transactions" in s]
    assert not any("TEMP B-TREE" in step for p in amounts for step in p)  # the index's order


def test_the_risk_reads_of_a_busy_payer_walk_the_window_not_the_history(svc: Services) -> None:
    """The reads a payer with more than 100 payments in 24 h adds: the velocity window's payees
    (one index entry per payee, from `payees_paid`) and a new payee's 24 h (by the window's
    rows). An earlier read of the window's payees walked every payment the payer ever made."""
    store = svc.store
    assert isinstance(store, SqliteStore)

    def history(uow: Any) -> None:
        for i in range(300):  # a year of payments to three payees, the last few in the window
            at = 1_000.0 + i * 100_000
            uow.insert_transaction(
                Transaction(
                    f"H{i:04d}", TransactionKind.TRANSFER, 100, TransactionState.SUCCESS, at, at,
                    payer_id="u1", payer_phone=ASHA, payee=f"+9120000000{i % 3:02d}",
                ),
                "history",
            )  # fmt: skip

    store.atomic(history)
    conn = store._connect()
    ran: list[str] = []
    conn.set_trace_callback(ran.append)
    try:
        since = 1_000.0 + 297 * 100_000
        assert len(store.read(lambda uow: uow.payees_paid_since("u1", since, 10))) == 3
        assert store.read(lambda uow: uow.debited_since("u1", since, "+912000000000")) == 100
    finally:
        conn.set_trace_callback(None)
    (payees,) = [s for s in ran if "FROM payees_paid" in s]
    expected = "USING COVERING INDEX payees_paid_time (payer_id=? AND last_at>?)"
    assert any(expected in step for step in plan(conn, payees)), plan(conn, payees)
    (to_payee,) = [s for s in ran if "SUM(amount)" in s]
    assert any(
        "transactions_payer_payee (payer_id=? AND payee=? AND created_at>?)" in step
        for step in plan(conn, to_payee)
    ), plan(conn, to_payee)
