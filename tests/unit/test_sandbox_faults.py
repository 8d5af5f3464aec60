"""The sandbox gateway's failures on purpose (for soak runs): how many, which, and that a payout
made before its answer was lost is found again by the worker and paid once."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from app.bootstrap import Services, build_gateway
from app.config import ConfigError, Settings
from app.services import admin, payments
from app.services.inbound import handle_inbound_sms
from app.worker import Worker
from gateway_clients.base import GatewayUnavailable, PayoutRequest, PayoutStatus
from gateway_clients.sandbox import (
    FAILED_CALL,
    LOST_ANSWER,
    NO_FAULTS,
    SandboxFaults,
    SandboxGateway,
)
from sms.inbound import InboundSms, Route
from storage.memory import MemoryStore
from storage.models import PAYOUTS_SETTLED_ACCOUNT, TransactionState
from tests.support import FakeClock, Phone
from tests.unit.conftest import MASTER_KEY, NOON, SETTLEMENT


def refs(n: int) -> list[str]:
    return [f"R{i:09d}" for i in range(n)]


def first_with(faults: SandboxFaults, call: str, verdict: str | None) -> str:
    """A reference whose first `call` meets `verdict`."""
    return next(r for r in (f"Q{i:09d}" for i in itertools.count()) if
                faults.verdict(call, r, 1) == verdict)  # fmt: skip


def sandbox(tmp_path: Path, faults: SandboxFaults, clock: FakeClock) -> SandboxGateway:
    return SandboxGateway(tmp_path / "book.sqlite3", "whsec", "", 0, clock.now, faults=faults)


def test_no_faults_unless_asked() -> None:
    assert not NO_FAULTS.active
    assert {NO_FAULTS.verdict("create", r, 1) for r in refs(1000)} == {None}


def test_the_share_of_failed_and_lost_calls_follows_the_percentages() -> None:
    faults = SandboxFaults(fail_percent=10, lost_percent=30, seed=7)
    creates = [faults.verdict("create", r, 1) for r in refs(20_000)]
    fetches = [faults.verdict("fetch", r, 1) for r in refs(20_000)]
    failed = sum(v is not None for v in creates) / len(creates)
    lost = creates.count(LOST_ANSWER) / max(1, sum(v is not None for v in creates))
    assert 0.09 < failed < 0.11 and 0.25 < lost < 0.35
    assert 0.09 < sum(v is not None for v in fetches) / len(fetches) < 0.11
    assert LOST_ANSWER not in fetches  # a status check makes nothing, so it loses nothing
    assert {SandboxFaults(100, 0).verdict("fetch", r, 1) for r in refs(100)} == {FAILED_CALL}
    assert {SandboxFaults(100, 100).verdict("create", r, 1) for r in refs(100)} == {LOST_ANSWER}


def test_the_same_seed_meets_the_same_failures_and_another_seed_others() -> None:
    calls = [(c, r, n) for c in ("create", "fetch") for r in refs(300) for n in (1, 2, 3)]
    one, again = SandboxFaults(20, 50, seed=1), SandboxFaults(20, 50, seed=1)
    other = SandboxFaults(20, 50, seed=2)
    assert [one.verdict(*c) for c in calls] == [again.verdict(*c) for c in calls]
    assert [one.verdict(*c) for c in calls] != [other.verdict(*c) for c in calls]


def test_percentages_outside_0_to_100_are_refused() -> None:
    with pytest.raises(ValueError):
        SandboxFaults(fail_percent=101)
    with pytest.raises(ConfigError):
        Settings.from_env({"SMSPAY_SANDBOX_FAIL_PERCENT": "-1"})
    with pytest.raises(ConfigError):
        Settings.from_env({"SMSPAY_SANDBOX_LOST_PERCENT": "150"})


def test_settings_reach_the_sandbox(tmp_path: Path) -> None:
    env = {"SMSPAY_SANDBOX_FAIL_PERCENT": "10", "SMSPAY_SANDBOX_LOST_PERCENT": "40",
           "SMSPAY_SANDBOX_FAULT_SEED": "3", "SMSPAY_DATA_DIR": str(tmp_path)}  # fmt: skip
    gateway = build_gateway(Settings.from_env(env), FakeClock(NOON))
    assert isinstance(gateway, SandboxGateway)
    assert gateway._faults == SandboxFaults(10, 40, 3)


def test_a_failed_create_makes_nothing_and_a_lost_one_pays(tmp_path: Path) -> None:
    faults, clock = SandboxFaults(fail_percent=50, lost_percent=50, seed=11), FakeClock(NOON)
    gateway = sandbox(tmp_path, faults, clock)
    failed = first_with(faults, "create", FAILED_CALL)
    lost = first_with(faults, "create", LOST_ANSWER)
    for ref in (failed, lost):
        with pytest.raises(GatewayUnavailable):
            gateway.create_payout(PayoutRequest(ref, "success@razorpay", 500))
    book = {p.reference: p for p in gateway.list_payouts(0, 2**40) or []}  # never fails
    assert failed not in book
    assert book[lost].status is PayoutStatus.PROCESSED and book[lost].amount == 500
    assert gateway.payout_event(lost) is not None  # its webhook is still sent


def test_the_nth_call_is_counted_per_call_and_reference(tmp_path: Path) -> None:
    faults, clock = SandboxFaults(fail_percent=50, seed=5), FakeClock(NOON)
    gateway = sandbox(tmp_path, faults, clock)
    gateway.create_payout(PayoutRequest(ok := first_with(faults, "create", None), "a@b", 100))
    seen = []
    for nth in range(1, 9):
        try:
            gateway.fetch_payout(ok)
            seen.append(None)
        except GatewayUnavailable:
            seen.append(FAILED_CALL)
        assert seen[-1] == faults.verdict("fetch", ok, nth)
    assert FAILED_CALL in seen and None in seen


def test_a_restarted_process_does_not_meet_its_predecessors_failures_again(
    tmp_path: Path,
) -> None:
    faults, clock = SandboxFaults(fail_percent=50, seed=5), FakeClock(NOON)
    ref = next(r for r in refs(10_000) if faults.verdict("fetch", r, 1) == FAILED_CALL
               and faults.verdict("fetch", r, 2) is None)  # fmt: skip
    with pytest.raises(GatewayUnavailable):
        sandbox(tmp_path, faults, clock).fetch_payout(ref)
    assert sandbox(tmp_path, faults, clock).fetch_payout(ref) is None  # the 2nd call: answered


def test_a_payout_whose_answer_was_lost_is_found_by_the_retry_and_paid_once(
    tmp_path: Path,
) -> None:
    clock = FakeClock(NOON)
    faults = SandboxFaults(fail_percent=100, lost_percent=100)  # every create pays, then fails
    svc = Services(
        Settings(data_dir=str(tmp_path), master_key=MASTER_KEY),
        clock=clock,
        store_override=MemoryStore(),
        gateway_override=sandbox(tmp_path, faults, clock),
    )
    admin.register_user(svc, "+919800000001", "Asha", "1234")
    payments.credit_wallet(svc, "+919800000001", 100_000, "cash at the counter", "agent")
    bundle = admin.provision_device(svc, "+919800000001")
    phone = Phone("+919800000001", bundle.key_id, bundle.key, "1234")
    body = phone.pay("success@razorpay", 25_000, at=clock.now())
    sms = InboundSms(Route.TASKER, phone.phone, body, clock.now())
    ref = handle_inbound_sms(svc, sms).reference
    assert ref is not None
    worker = Worker(svc, SETTLEMENT, owner="unit-worker")
    assert worker.run_once()  # the create pays and fails: retried later, by fetching
    txn = svc.store.read(lambda uow: uow.get_transaction(ref))
    assert txn is not None and txn.state is TransactionState.PENDING
    clock.advance(700)  # past the retry's backoff
    svc.gateway_override = sandbox(tmp_path, NO_FAULTS, clock)  # same book, answering again
    del svc.__dict__["gateway"]
    assert worker.run_once()
    txn = svc.store.read(lambda uow: uow.get_transaction(ref))
    assert txn is not None and txn.state is TransactionState.SUCCESS
    assert svc.store.read(lambda uow: uow.balance(PAYOUTS_SETTLED_ACCOUNT)) == 25_000
    assert len(svc.gateway.list_payouts(0, 2**40) or []) == 1
