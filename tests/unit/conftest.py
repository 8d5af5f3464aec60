"""The service layer on the in-memory store: no SQLite file, no MongoDB, no Flask app.

`svc` is built from Settings, a MemoryStore, a FakeClock and the recording FakeGateway, and `Money`
drives it through the public service functions only: register, credit, SMS in, the worker,
gateway webhooks, staff review. The real backends run the same flows in tests/functional/.
"""

from __future__ import annotations

import base64
import random
from pathlib import Path
from typing import Any

import pytest

from app.bootstrap import Services
from app.config import Settings
from app.services import admin, holds, payments, settlement
from app.services.inbound import SmsReply, handle_inbound_sms
from app.worker import Worker
from gateway_clients.base import PayoutStatus
from sms.inbound import InboundSms, Route
from storage.contract import UnitOfWork
from storage.memory import MemoryStore
from storage.models import Account, Transaction, TransactionState
from tests.fakes import FakeGateway
from tests.support import FakeClock, Phone

NOON = 1795588200.0  # 25 Nov 2026 12:00 in Asia/Kolkata: every step stays in one local day
MASTER_KEY = base64.b64encode(bytes(range(32))).decode()  # a test key: nothing is written to disk
SETTLEMENT = {
    "payout.create": settlement.run_payout_create,
    "payout.poll": settlement.run_payout_poll,
    "topup.link": settlement.run_top_up_link,
    holds.EXPIRY_JOB: holds.run_flag_expiry,
}


def build_services(data_dir: Path, clock: FakeClock, **settings: Any) -> Services:
    """Services over a fresh MemoryStore with the fake gateway on the fake clock."""
    return Services(
        Settings(data_dir=str(data_dir), master_key=MASTER_KEY, **settings),
        clock=clock,
        store_override=MemoryStore(),
        gateway_override=FakeGateway(clock.now),
    )


class Money:
    """Drives the money path through the public service functions; reads back what it did."""

    def __init__(self, svc: Services, clock: FakeClock) -> None:
        self.svc, self.clock = svc, clock
        assert isinstance(svc.gateway, FakeGateway)
        self.gateway: FakeGateway = svc.gateway
        self.worker = Worker(svc, SETTLEMENT, owner="unit-worker", rng=random.Random(1))
        self._sids = 0

    def user(self, phone: str, rupees: int = 0, pin: str = "1234", name: str = "Test") -> Phone:
        """Register, credit (cash-in) and provision a phone."""
        admin.register_user(self.svc, phone, name, pin)
        if rupees:
            payments.credit_wallet(self.svc, phone, rupees * 100, "cash at the counter", "agent")
        bundle = admin.provision_device(self.svc, phone)
        return Phone(phone, bundle.key_id, bundle.key, pin)

    def sms(
        self, sender: str, body: str, route: str = "twilio", sid: str | None = None
    ) -> SmsReply:
        """One authenticated inbound SMS (Twilio: with a MessageSid, made up unless given)."""
        if route == "twilio" and sid is None:
            self._sids += 1
            sid = f"SM{self._sids:032x}"
        sid = sid if route == "twilio" else None
        message = InboundSms(Route(route), sender, body, self.clock.now(), provider_message_id=sid)
        return handle_inbound_sms(self.svc, message)

    def pay(self, payer: Phone, payee: str, paise: int, pin: str | None = None) -> SmsReply:
        """PAY by SMS from a phone, sealed with its device key and next counter."""
        return self.sms(payer.phone, payer.pay(payee, paise, pin=pin, at=self.clock.now()))

    def read(self, fn: Any) -> Any:
        return self.svc.store.read(fn)

    def balance(self, phone_or_account: str) -> int:
        def read(uow: UnitOfWork) -> int:
            user = uow.get_user_by_phone(phone_or_account)
            return uow.balance(user.account if user else phone_or_account)

        return int(self.read(read))

    def balances(self, *who: str) -> tuple[int, ...]:
        """Balances of several phones or accounts, in one read."""
        return tuple(self.balance(w) for w in who)

    def txn(self, reference: str | None) -> Transaction:
        assert reference is not None
        found = self.read(lambda uow: uow.get_transaction(reference))
        assert isinstance(found, Transaction)
        return found

    def states(self, reference: str | None) -> list[str]:
        """Every state the transaction went through, oldest first."""
        return [e.state.value for e in self.read(lambda uow: uow.events(reference))]

    def moved(self, reference: str | None) -> dict[str, int]:
        """Net paise each account gained or lost through this transaction's ledger entries."""
        net: dict[str, int] = {}
        for entry in self.read(lambda uow: uow.entries(reference)):
            for p in entry.postings:
                net[p.account] = net.get(p.account, 0) + p.amount
        return {account: n for account, n in net.items() if n}

    def outbox_to(self, phone: str) -> list[str]:
        return [m.body for m in self.read(lambda uow: uow.outbox(1000)) if m.to == phone]

    def check_books(self) -> None:
        """The ledger invariant: everything sums to zero and no wallet is below zero."""
        accounts = [a for a in self.read(lambda uow: list(uow.dump("accounts")))]
        assert all(isinstance(a, Account) for a in accounts)
        assert sum(a.balance for a in accounts) == 0 == self.read(lambda uow: uow.total_balance())
        assert [a.id for a in accounts if a.balance < 0 and not a.allow_negative] == []

    def work(self) -> int:
        """Run every settlement job due now; returns how many ran."""
        ran = 0
        while self.worker.run_once():
            ran += 1
        return ran

    def payout_webhook(self, reference: str, status: PayoutStatus, reason: str = "") -> str:
        """The gateway says what became of a payout, by a signed webhook; returns the outcome."""
        self.gateway.set_status(reference, status, reason=reason, utr="UTR1" if not reason else "")
        body, headers = self.gateway.payout_webhook(reference)
        event = self.svc.gateway.parse_webhook(body, headers)
        assert event is not None
        return settlement.handle_gateway_event(self.svc, event)

    def stays(self, state: TransactionState, reference: str | None) -> None:
        assert self.txn(reference).state is state


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOON)


@pytest.fixture
def svc(tmp_path: Path, clock: FakeClock) -> Services:
    return build_services(tmp_path, clock)


@pytest.fixture
def money(svc: Services, clock: FakeClock) -> Money:
    return Money(svc, clock)
