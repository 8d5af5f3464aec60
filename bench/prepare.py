"""Before timing: users with money and devices, a Tasker gateway, unique signed SMS requests for
both routes, and (for the long-history run) one payer's earlier payments written in bulk.

Everything goes through the service layer against the benchmark's own data dir, as the CLI
would; the history is written through the storage layer in big units of work, with the same
records a real payment leaves (transaction and its events, ledger entry, inbound SMS, frame,
the payee's status SMS).
"""

from __future__ import annotations

import base64
import dataclasses
import os
import random
import secrets
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from twilio.request_validator import RequestValidator

from app import create_app
from app.bootstrap import Services
from app.config import Settings
from app.services import admin, ledger, payments
from app.services.common import new_reference, start_of_day
from bench.client import http_request
from crypto.replay import WINDOW_SIZE, ReplayWindow
from sms import replies
from sms.numbers import mask_phone
from storage.contract import UnitOfWork
from storage.models import (
    FrameRecord,
    InboundRecord,
    OutboundSms,
    Transaction,
    TransactionKind,
    TransactionState,
    User,
)
from tests.support import Phone, tasker_body, tasker_headers, twilio_form

PUBLIC_URL = "https://pay.example.com"  # SMSPAY_PUBLIC_BASE_URL: Twilio signs over it
TWILIO_TOKEN = "bench-twilio-auth-token-not-real"
GATEWAY_ID = "bench-phone"
PIN = "1357"
AMOUNT = 100  # paise per timed payment: Rs 1, far under the daily limit however long the run


@dataclass
class Population:
    """The benchmark's users: each a payer (a phone with a device) and a payee."""

    users: list[User]
    phones: list[Phone]
    gateway_secret: str

    def total(self, svc: Services) -> int:
        """The sum of their wallets."""
        return svc.store.read(lambda uow: sum(uow.balance(u.account) for u in self.users))


def services(env: dict[str, str]) -> Services:
    """The service layer over the benchmark's data dir, configured as gunicorn will be (but
    quiet: its own log lines are of no interest here)."""
    config: dict[str, Any] = dataclasses.asdict(Settings.from_env(env))  # typed as gunicorn reads
    config.update(mongodb_uri="", log_level="WARNING")
    svc: Services = create_app(config).extensions["smspay"]
    return svc


def populate(svc: Services, count: int, rupees: int, first: int = 0) -> Population:
    """`count` users with `rupees` each and a provisioned phone; the Tasker gateway once."""
    secret = ""
    if first == 0:
        secret = admin.add_tasker_gateway(svc, GATEWAY_ID)
    users, phones = [], []
    for i in range(first, first + count):
        phone = f"+9190{i:08d}"
        users.append(admin.register_user(svc, phone, f"Bench {i}", PIN))
        payments.credit_wallet(svc, phone, rupees * 100, "bench float", actor="bench")
        bundle = admin.provision_device(svc, phone)
        phones.append(Phone(phone, bundle.key_id, bundle.key, PIN))
    return Population(users, phones, secret)


def _tasker(phone: Phone, text: str, secret: str) -> bytes:
    raw = tasker_body(phone.phone, text)
    return http_request("POST", "/sms/tasker", tasker_headers(GATEWAY_ID, secret, raw), raw)


def _twilio(phone: Phone, text: str) -> bytes:
    form = twilio_form(phone.phone, text)
    sig = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC_URL + "/sms/twilio", form)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig}
    return http_request("POST", "/sms/twilio", headers, urllib.parse.urlencode(form).encode())


def sms_requests(
    pop: Population, route: str, kind: str, n: int, payers: list[int] | None = None
) -> list[bytes]:
    """`n` unique signed requests: PAY (or BAL) SMS, each with its phone's next counter.

    Request j comes from payer j mod P (P payers, all by default) and a PAY goes to the next
    user, so a payer's counters rise in the order the client sends them.
    """
    who = payers if payers is not None else list(range(len(pop.phones)))
    out = []
    for j in range(n):
        p = who[j % len(who)]
        phone = pop.phones[p]
        if kind == "pay":
            payee = pop.phones[(p + 1 + j // len(who)) % len(pop.phones)].phone
            if payee == phone.phone:
                payee = pop.phones[(p + 1) % len(pop.phones)].phone
            text = phone.pay(payee, AMOUNT)
        else:
            text = phone.balance()
        out.append(
            _tasker(phone, text, pop.gateway_secret) if route == "tasker" else _twilio(phone, text)
        )
    return out


def minimal_requests(n: int) -> list[bytes]:
    """The baseline's requests (all alike: it keeps no state)."""
    return [http_request("GET", "/healthz", {})] * n


def _history_times(now: float, total: int, today: int, tz: Any) -> Iterator[float]:
    """`total - today` times over the year before today, then `today` times since midnight."""
    midnight = start_of_day(now, tz)
    rng = random.Random(12)
    earlier = sorted(midnight - rng.uniform(1, 365 * 86400) for _ in range(total - today))
    later = sorted(rng.uniform(midnight, now - 1) for _ in range(today))
    yield from earlier
    yield from later


def preload_history(
    svc: Services, pop: Population, payer: int, total: int, today: int, unit: int = 5000
) -> float:
    """Write `total` earlier payments of one payer (`today` of them since local midnight), with
    their counters consumed, in units of `unit` payments; returns the seconds it took.

    Written as a store from before the running spending totals holds them (the payer has made no
    payment yet, so has no totals row): the first PAY makes the row from these payments once."""
    started = time.perf_counter()
    user, phone = pop.users[payer], pop.phones[payer]
    payees = [u for i, u in enumerate(pop.users) if i != payer]
    times = list(_history_times(svc.clock.now(), total, today, svc.tz))

    def write(uow: UnitOfWork, first: int, last: int) -> None:
        for k in range(first, last):
            at, payee = times[k], payees[k % len(payees)]
            ref = new_reference()
            txn = Transaction(
                reference=ref, kind=TransactionKind.TRANSFER, amount=AMOUNT,
                state=TransactionState.PENDING, created_at=at, updated_at=at,
                payer_id=user.id, payer_phone=user.phone, payee_id=payee.id, payee=payee.phone,
                channel="tasker",
            )  # fmt: skip
            uow.insert_transaction(txn, "instruction accepted")
            ledger.transfer(uow, txn, at)
            ledger.move(uow, ref, TransactionState.SUCCESS, "ledger entry posted", at)
            reply = replies.paid(AMOUNT, mask_phone(payee.phone), ref, 0)
            counter = k + 1
            uow.insert_frame(FrameRecord(phone.key_id, counter, "paid", reply, at, ref))
            uow.insert_inbound(
                InboundRecord(
                    route="tasker", sender=user.phone, received_at=at, outcome="paid",
                    reply=reply, gateway_id=GATEWAY_ID, key_id=phone.key_id, counter=counter,
                    reference=ref,
                )
            )  # fmt: skip
            body = replies.received(AMOUNT, mask_phone(user.phone), ref, 0)
            uow.enqueue_sms(OutboundSms(payee.phone, body, at, ref, status="sent", channel="log"))

    for first in range(0, total, unit):
        last = min(total, first + unit)
        svc.store.atomic(lambda uow, a=first, b=last: write(uow, a, b))  # type: ignore[misc]
    svc.store.atomic(
        lambda uow: uow.save_window(
            phone.key_id, ReplayWindow(total, (1 << WINDOW_SIZE) - 1), svc.clock.now()
        )
    )
    phone.next_counter = total + 1
    return time.perf_counter() - started


def credit(svc: Services, pop: Population, index: int, rupees: int) -> None:
    """More money for one user (the history payer pays for its history first)."""
    payments.credit_wallet(svc, pop.phones[index].phone, rupees * 100, "bench float", "bench")


def bench_env(data_dir: str) -> dict[str, str]:
    """The environment gunicorn runs with: production settings (SQLite with fsync on every
    commit, INFO logs, access log) but for the data dir, the public URL Twilio signs over and a
    local Twilio token; no SMSPAY_MONGODB_URI, so the store is the SQLite file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSPAY_")}
    env.update(
        SMSPAY_DATA_DIR=data_dir,
        SMSPAY_TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        SMSPAY_PUBLIC_BASE_URL=PUBLIC_URL,
        SMSPAY_MASTER_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        # each synthetic payer sends hundreds of payments a minute to many payees, far past a
        # person's pace: the thresholds that judge pace and habits move out of the way, but every
        # risk rule (the per-user bucket's write included) still runs on every payment
        SMSPAY_RISK_USER_PER_MINUTE=str(10**9),
        SMSPAY_RISK_GATEWAY_PER_MINUTE=str(10**9),
        SMSPAY_RISK_VELOCITY_PAYEES=str(10**9),
        SMSPAY_LIMIT_PER_DAY_PAISE=str(10**12),
        SMSPAY_LIMIT_PER_MONTH_PAISE=str(10**13),
        SMSPAY_LIMIT_NEW_PAYEE_PER_DAY_PAISE=str(10**12),
    )
    return env
