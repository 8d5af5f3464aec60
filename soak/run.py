"""One soak run: set up, send while killing the worker, drain, check, report."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.bootstrap import Services
from app.config import Settings
from app.services import admin, payments
from gateway_clients.base import Payout
from gateway_clients.sandbox import SandboxGateway
from sms.instructions import format_rupees
from soak.checks import Snapshot, verdict
from soak.service import TWILIO_TOKEN, Faults, Service, free_port, service_env
from soak.traffic import Mix, SoakPhone, Traffic
from storage.models import PAYOUTS_IN_FLIGHT_ACCOUNT, PAYOUTS_SETTLED_ACCOUNT, TransactionState

log = logging.getLogger(__name__)
TASKER_ID = "soak-phone"
OPEN = (TransactionState.PENDING, TransactionState.PROCESSING)


@dataclass(frozen=True)
class SoakConfig:
    """How long, how much, and what goes wrong."""

    data_dir: Path
    seconds: float = 120
    max_sms: int = 5000
    users: int = 20
    rupees_each: int = 5000
    senders: int = 4
    rate: float = 8.0  # new SMS per second (copies come on top)
    kills: int = 2
    drain_seconds: float = 240
    seed: int = 1
    mongodb_uri: str = ""
    mix: Mix = field(default_factory=Mix)
    faults: Faults = field(default_factory=Faults)


@dataclass
class Report:
    """What happened and what was found."""

    config: SoakConfig
    traffic: dict[str, Any] = field(default_factory=dict)
    sending_seconds: float = 0.0
    kills_at: list[float] = field(default_factory=list)
    worker_exits: int = 0  # the worker stopped without being killed
    drain_seconds: float | None = None  # None: did not drain in time
    states: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    jobs: dict[str, int] = field(default_factory=dict)
    money: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """No violation."""
        return not self.violations

    def text(self) -> str:
        """The summary printed at the end."""
        t, c = self.traffic, self.config
        copies = {k: v for k, v in t.get("copies", {}).items() if k != "original"}
        drain = "did not drain" if self.drain_seconds is None else f"{self.drain_seconds:.1f} s"
        lines = [
            f"soak: {c.users} users, {t.get('sms', 0)} SMS over {c.seconds:.0f} s"
            f" ({', '.join(f'{n} {k}' for k, n in sorted(t.get('kinds', {}).items()))}),"
            f" store {'MongoDB' if c.mongodb_uri else 'SQLite'}, seed {c.seed}",
            f"requests:      {t.get('deliveries', 0)} deliveries, of them"
            f" {sum(copies.values())} duplicates ({_counts(copies)})",
            f"answers:       {t.get('2xx', 0)} 2xx, {t.get('4xx', 0)} 4xx, {t.get('5xx', 0)} 5xx,"
            f" {t.get('no answer', 0)} unanswered; p50 {t.get('p50', 0) * 1000:.0f} ms,"
            f" p99 {t.get('p99', 0) * 1000:.0f} ms",
            f"inbound:       {_counts(self.outcomes)}",
            f"transactions:  {_counts(self.states)}",
            f"gateway:       {_counts(self.faults)} (sandbox failing"
            f" {c.faults.fail_percent}% of calls, {c.faults.lost_percent}% of failed creates after"
            f" paying)",
            f"jobs:          {_counts(self.jobs)}",
            f"worker:        SIGKILLed {len(self.kills_at)} times at"
            f" {', '.join(f'{k:.1f} s' for k in self.kills_at) or '-'};"
            f" exited by itself {self.worker_exits} times",
            f"drain:         {drain} after the last answer",
            "money:         " + ", ".join(f"{k} {format_rupees(v)}" for k, v in self.money.items()),
        ]
        if self.violations:
            lines.append(f"FAILED: {len(self.violations)} violations")
            lines += [f"  - {v}" for v in self.violations]
        else:
            lines.append("PASSED: every transaction final, money conserved, each instruction"
                         " settled at most once, the gateway's book agrees, duplicates answered"
                         " alike, no 5xx")  # fmt: skip
        return "\n".join(lines)


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(counter.items(), key=lambda kv: -kv[1])) or "-"


def setup(svc: Services, config: SoakConfig, rng: random.Random) -> tuple[list[SoakPhone], str]:
    """Create the store, the Tasker phone and the users with balances and devices."""
    svc.store.init()
    svc.store.atomic(svc.pins)
    secret = admin.add_tasker_gateway(svc, TASKER_ID)
    phones: list[SoakPhone] = []
    for i in range(config.users):
        number = f"+9198{rng.randrange(10**8):08d}"
        while any(p.number == number for p in phones):
            number = f"+9198{rng.randrange(10**8):08d}"
        pin = "2580"
        admin.register_user(svc, number, f"Soak {i + 1}", pin)
        payments.credit_wallet(svc, number, config.rupees_each * 100, "soak cash-in", "soak")
        phones.append(SoakPhone(admin.provision_device(svc, number), pin))
    return phones, secret


class Killer:
    """SIGKILLs the worker at the given moments and starts a new one shortly after."""

    def __init__(self, service: Service, at: list[float], rng: random.Random) -> None:
        self.service, self.at, self.rng = service, sorted(at), rng
        self.done: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._start = 0.0

    def _run(self) -> None:
        for moment in self.at:
            if self._stop.wait(max(0.0, self._start + moment - time.monotonic())):
                return
            self.service.kill_worker()
            self.done.append(time.monotonic() - self._start)
            time.sleep(self.rng.uniform(0.5, 3))  # the process manager's restart delay
            self.service.start_worker()

    def start(self) -> None:
        """Start counting from now."""
        self._start = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        """No more kills; a worker killed last is started again before this returns."""
        self._stop.set()
        self._thread.join(timeout=30)


def drain(svc: Services, service: Service, report: Report, seconds: float) -> None:
    """Wait until no transaction is PENDING or PROCESSING, at most `seconds`."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        open_ = svc.store.read(
            lambda uow: [t for s in OPEN for t in uow.search_transactions(state=s, limit=1)]
        )
        if not open_:
            report.drain_seconds = time.monotonic() - start
            return
        if service.worker is not None and service.worker.poll() is not None:
            log.error("the worker exited by itself (status %s); starting another",
                      service.worker.returncode)  # fmt: skip
            report.worker_exits += 1
            service.start_worker()
        time.sleep(1)


def count_faults(worker_log: Path) -> dict[str, int]:
    """The sandbox's failures on purpose, from the workers' logs."""
    text = worker_log.read_text(errors="replace") if worker_log.exists() else ""
    return {
        "creates failed": text.count("injected fault (fail) into create"),
        "answers lost after paying": text.count("injected fault (lost) into create"),
        "status checks failed": text.count("injected fault (fail) into fetch"),
    }


def run(config: SoakConfig) -> Report:
    """The whole soak; the report says whether every invariant held."""
    rng = random.Random(config.seed)
    report = Report(config)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = service_env(config.data_dir, port, config.mongodb_uri, config.faults)
    svc = Services(Settings.from_env(env))
    service = Service(config.data_dir, port, env)
    try:
        phones, secret = setup(svc, config, rng)
        credited = config.users * config.rupees_each * 100
        service.start()
        traffic = Traffic(service.url, phones, TASKER_ID, secret, TWILIO_TOKEN, rng, config.mix,
                          senders=config.senders, rate=config.rate)  # fmt: skip
        span = config.seconds
        moments = [rng.uniform(0.15, 0.85) * span for _ in range(config.kills)]
        killer = Killer(service, moments, random.Random(config.seed + 1))  # its own: a thread
        killer.start()
        try:
            report.sending_seconds = traffic.run(config.seconds, config.max_sms)
        finally:
            killer.stop()
        report.kills_at = killer.done
        report.traffic = traffic.summary()
        drain(svc, service, report, config.drain_seconds)
        service.stop()  # nothing moves while the checks read
        snap = Snapshot.read(svc.store)
        gateway = svc.gateway
        book: list[Payout] = []
        if isinstance(gateway, SandboxGateway):
            book = gateway.list_payouts(0, 2**40) or []
        report.violations = verdict(snap, credited, traffic.sent, traffic.answers, book)
        if report.drain_seconds is None:
            report.violations.insert(0, f"the backlog did not drain in {config.drain_seconds} s")
        if report.worker_exits:
            report.violations.append(f"the worker exited by itself {report.worker_exits} times")
        _describe(report, snap, credited, service)
    finally:
        service.stop()
        svc.store.close()
    return report


def _describe(report: Report, snap: Snapshot, credited: int, service: Service) -> None:
    report.states = dict(Counter(f"{t.kind.value} {t.state.value}" for t in snap.transactions))
    outcomes = Counter(r.outcome.split(":")[0] for r in snap.inbound)
    outcomes["redelivered (same MessageSid)"] = sum(r.deliveries - 1 for r in snap.inbound)
    report.outcomes = {k: n for k, n in outcomes.items() if n}
    report.faults = count_faults(service.worker_log)
    retried = Counter(j.kind for j in snap.jobs if j.attempts > 1)
    report.jobs = {
        **{f"{s.value}": n for s, n in Counter(j.status for j in snap.jobs).items()},
        **{f"{k} retried": n for k, n in retried.items()},
    }
    balances = {a.id: a.balance for a in snap.accounts}
    report.money = {
        "credited": credited,
        "in wallets": sum(b for a, b in balances.items() if a.startswith("user:")),
        "paid out": balances.get(PAYOUTS_SETTLED_ACCOUNT, 0),
        "in flight": balances.get(PAYOUTS_IN_FLIGHT_ACCOUNT, 0),
    }
