"""Property: SQLite's `payment_history` read part by part by index says what `from_rows` says
of the same payer's newest payments (the rule MongoDB and the memory store apply), and both say
what the payments written say, worked out in the test on its own: random
histories of a payer (every state, a few payees, some located, times spread over 40 days and
crowded into the last hours), random asks (limits that cut the rows short or not, new-payee
and velocity periods, with and without a location)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage.history import COMMITTED_STATES, HistoryAsk, from_rows
from storage.models import Transaction, TransactionKind, TransactionState
from storage.sqlite import SqliteStore
from storage.sqlite.unit_of_work import SqliteUnitOfWork

NOW = 100 * 86_400.0
PAYEES = ("+912000000001", "+912000000002", "+912000000003", "+912000000004")
payment = st.tuples(
    st.sampled_from(PAYEES),
    st.integers(1, 5_000),
    # whole seconds before NOW, distinct (at the limit's edge a tie is cut in either order)
    st.one_of(st.integers(0, 40 * 86_400), st.integers(0, 7_200)),
    st.sampled_from(list(TransactionState)),
    st.booleans(),  # located
)
ask = st.builds(
    lambda limit, payee, day, window, most, located: HistoryAsk(
        since=NOW - 30 * 86_400,
        limit=limit,
        payee=payee,
        payee_since=day,
        window_since=window,
        payees_limit=most,
        located=located,
    ),  # fmt: skip
    st.integers(1, 40),
    st.sampled_from(PAYEES),
    st.sampled_from([None, NOW - 86_400]),
    st.sampled_from([None, NOW - 3_600, NOW - 600]),
    st.integers(1, 5),
    st.booleans(),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    history=st.lists(payment, max_size=60, unique_by=lambda p: p[2]),
    asks=st.lists(ask, min_size=1, max_size=4),
)
def test_sqlite_reads_by_index_what_the_rows_say(
    tmp_path_factory: pytest.TempPathFactory,
    history: list[tuple[str, int, int, TransactionState, bool]],
    asks: list[HistoryAsk],
) -> None:
    store = SqliteStore(tmp_path_factory.mktemp("history") / "store.sqlite3")
    try:
        check(store, history, asks)
    finally:
        store.close()


def check(
    store: SqliteStore,
    history: list[tuple[str, int, int, TransactionState, bool]],
    asks: list[HistoryAsk],
) -> None:

    def write(uow: SqliteUnitOfWork) -> None:
        for i, (payee, amount, ago, state, located) in enumerate(history):
            at = NOW - ago
            txn = Transaction(
                f"H{i:04d}", TransactionKind.TRANSFER, amount, TransactionState.PENDING, at, at,
                payer_id="u1", payer_phone="+911000000001", payee=payee,
                lat=12.9 if located else None, lon=77.6 if located else None,
            )  # fmt: skip
            then = None if state is TransactionState.PENDING else (state, "test")
            uow.insert_transaction(txn, "made", then)

    store.atomic(write)
    newest_first = sorted(history, key=lambda p: p[2])  # the times are distinct
    for a in asks:
        by_index, by_rows = store.read(
            lambda uow, a=a: (
                uow.payment_history("u1", a),
                from_rows("u1", uow.recent_payments("u1", a.since, a.limit), a, uow),
            )
        )
        # what the history says, worked out here from the payments written
        newest = [p for p in newest_first if NOW - p[2] >= a.since][: a.limit]
        committed = [p for p in newest if p[3] is not TransactionState.FAILED]
        assert by_index.amounts == by_rows.amounts == tuple(p[1] for p in committed)
        located = [p[1] for p in committed if p[4]] if a.located else []
        assert [t.amount for t in by_index.located] == [t.amount for t in by_rows.located]
        assert [t.amount for t in by_index.located] == located
        live = [p for p in history if p[3] is not TransactionState.FAILED]
        if a.payee_since is None:
            assert by_index.paid_to_payee is by_rows.paid_to_payee is None
        else:
            paid = sum(p[1] for p in live if p[0] == a.payee and NOW - p[2] >= a.payee_since)
            assert by_index.paid_to_payee == by_rows.paid_to_payee == paid
        if a.window_since is None:
            assert by_index.payees is by_rows.payees is None
            continue
        window = a.window_since
        every = {p[0] for p in live if NOW - p[2] >= window}
        for payees in (by_index.payees, by_rows.payees):
            # all of them; or, past `payees_limit`, any `payees_limit` of them or more
            assert payees is not None and payees <= every
            assert payees == every or len(payees) >= a.payees_limit


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    history=st.lists(payment, min_size=1, max_size=30, unique_by=lambda p: p[2]),
    moves=st.lists(st.tuples(st.integers(0, 29), st.sampled_from(list(TransactionState)))),
)
def test_the_payees_running_totals_follow_every_state_change(
    tmp_path_factory: pytest.TempPathFactory,
    history: list[tuple[str, int, int, TransactionState, bool]],
    moves: list[tuple[int, TransactionState]],
) -> None:
    """`payees_paid` (its triggers) holds, per payee, the newest and the first committed
    payment and their sum, through payments inserted in any state and moved to any other (into
    the committed states and out of them); and a new payee's 24 hours read from it is the sum
    of the payments."""
    store = SqliteStore(tmp_path_factory.mktemp("totals") / "store.sqlite3")
    try:
        check(store, history, [])
        states = {f"H{i:04d}": state for i, (_, _, _, state, _) in enumerate(history)}
        for i, state in moves:
            reference = f"H{i % len(history):04d}"
            store.atomic(lambda uow, r=reference, s=state: uow.set_state(r, s, "moved", NOW))
            states[reference] = state
        live = [
            (payee, amount, NOW - ago)
            for i, (payee, amount, ago, _, _) in enumerate(history)
            if states[f"H{i:04d}"] in COMMITTED_STATES
        ]
        expected = {
            payee: (max(at for p, _, at in live if p == payee),
                    min(at for p, _, at in live if p == payee),
                    sum(amount for p, amount, _ in live if p == payee))
            for payee in {p for p, _, _ in live}
        }  # fmt: skip
        rows = store.read(
            lambda uow: uow._c.execute(
                "SELECT payee, last_at, first_at, amount FROM payees_paid WHERE payer_id = 'u1'"
            ).fetchall()
        )
        assert {payee: (last, first, amount) for payee, last, first, amount in rows} == expected
        for payee in PAYEES:
            first = expected[payee][1] if payee in expected else NOW
            for since in (first, first - 1, first + 1, NOW - 86_400):
                ask = HistoryAsk(since=NOW - 30 * 86_400, limit=10, payee=payee, payee_since=since)
                got = store.read(lambda uow, a=ask: uow.payment_history("u1", a)).paid_to_payee
                assert got == sum(amount for p, amount, at in live if p == payee and at >= since)
    finally:
        store.close()
