"""The senders: phones that seal real SP1 SMS, and threads that deliver them as Tasker and Twilio
do, a share of them twice (the same body: again by the same route, by the other route, or by
Twilio's retry of the same MessageSid), and record every answer."""

from __future__ import annotations

import heapq
import itertools
import json
import queue
import random
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests
from twilio.request_validator import RequestValidator

from crypto.codec import encode
from scripts.phone import FAKE_ACCOUNT_SID, reply_of, twilio_form
from sms import tasker
from sms.device_bundle import DeviceBundle
from sms.instructions import format_balance, format_pay, format_status

PAYOUT_OK, PAYOUT_FAILS = "success@razorpay", "failure@razorpay"  # the sandbox's test VPAs
REF_IN_REPLY = re.compile(r"\bRef ([0-9A-Z]{10})\b")
# copies of an SMS: how the same body reaches the service again
ORIGINAL = "original"
TWILIO_RETRY = "twilio retry (same MessageSid)"
NEW_SID = "twilio again (new MessageSid)"
TASKER_AGAIN = "tasker again"
OTHER_ROUTE = "other route"


@dataclass
class SoakPhone:
    """A provisioned phone: its device bundle, PIN, next counter and the references it was told."""

    device: DeviceBundle
    pin: str
    counter: int = 1
    references: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def number(self) -> str:
        """The phone's E.164 number."""
        return self.device.phone

    def seal(self, plaintext: str) -> tuple[int, str]:
        """Encrypt one instruction under the next counter (never reused)."""
        with self.lock:
            counter, self.counter = self.counter, self.counter + 1
        return counter, encode(self.device.key, self.device.key_id, counter, self.number, plaintext)


@dataclass(frozen=True)
class Sms:
    """One SMS a phone sent: what it asks for and its sealed text."""

    id: int
    phone: SoakPhone
    counter: int
    kind: str  # transfer, payout, balance, status
    text: str

    @property
    def frame(self) -> tuple[int, int]:
        """(device key id, counter): what the service deduplicates on."""
        return self.phone.device.key_id, self.counter


@dataclass(frozen=True)
class Delivery:
    """One POST of an SMS to the service."""

    sms: Sms
    route: str  # tasker or twilio
    copy: str  # ORIGINAL or how it is delivered again
    form: dict[str, str] | None = None  # Twilio's form (its MessageSid) when route is twilio


@dataclass(frozen=True)
class Answer:
    """What the sender saw."""

    delivery: Delivery
    status: int | None  # None: no answer (connection error or timeout)
    reply: str | None
    error: str
    seconds: float


@dataclass(frozen=True)
class Mix:
    """Shares of the SMS sent, in percent (the rest are STS)."""

    transfer: int = 45
    payout: int = 25
    balance: int = 15
    payout_fails: int = 30  # of payouts, to failure@razorpay
    duplicates: int = 30  # of SMS, delivered twice
    together: int = 30  # of duplicates, sent at once (racing the original); else 0.2-5 s later


class Traffic:
    """Paced SMS from the phones, delivered by `senders` threads, until a deadline or a count."""

    def __init__(
        self,
        url: str,
        phones: list[SoakPhone],
        tasker_id: str,
        tasker_secret: str,
        twilio_token: str,
        rng: random.Random,
        mix: Mix,
        senders: int = 4,
        rate: float = 8.0,
        timeout: float = 30.0,
    ) -> None:
        self.url, self.phones, self.rng, self.mix = url, phones, rng, mix
        self.tasker_id, self.tasker_secret = tasker_id, tasker_secret.strip().encode("ascii")
        self.twilio = RequestValidator(twilio_token)
        self.senders, self.rate, self.timeout = senders, rate, timeout
        self.sent: list[Sms] = []
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._queue: queue.Queue[Delivery | None] = queue.Queue(maxsize=senders * 2)
        self._later: list[tuple[float, int, Delivery]] = []  # (due, tie-break, delivery)
        self._ids = itertools.count(1)

    # --- what the phones send ----------------------------------------------------------------

    def _plaintext(self, phone: SoakPhone) -> tuple[str, str]:
        rng, mix, now = self.rng, self.mix, int(time.time())
        roll = rng.uniform(0, 100)
        if roll < mix.transfer:
            payee = rng.choice([p for p in self.phones if p is not phone]).number
            return "transfer", format_pay(payee, rng.randint(100, 20_000), phone.pin, now)
        if roll < mix.transfer + mix.payout:
            vpa = PAYOUT_FAILS if rng.uniform(0, 100) < mix.payout_fails else PAYOUT_OK
            return "payout", format_pay(vpa, rng.randint(100, 20_000), phone.pin, now)
        pick = rng.random()  # drawn always, so the draws a seed makes never depend on replies
        with phone.lock:
            known = phone.references[-20:]
        if roll < mix.transfer + mix.payout + mix.balance or not known:
            return "balance", format_balance(phone.pin, now)
        return "status", format_status(known[int(pick * len(known))], now)

    def _new_sms(self) -> Sms:
        phone = self.rng.choice(self.phones)
        kind, plaintext = self._plaintext(phone)
        counter, text = phone.seal(plaintext)
        sms = Sms(next(self._ids), phone, counter, kind, text)
        self.sent.append(sms)
        return sms

    def _delivery(
        self, sms: Sms, route: str, copy: str, form: dict[str, str] | None = None
    ) -> Delivery:
        if route == "twilio" and form is None:
            form = twilio_form(sms.phone.device, sms.text, FAKE_ACCOUNT_SID)
        return Delivery(sms, route, copy, form if route == "twilio" else None)

    def _copy(self, original: Delivery) -> Delivery:
        """The same SMS delivered again, in one of the ways it happens."""
        rng, sms = self.rng, original.sms
        if rng.random() < 0.4:
            other = "tasker" if original.route == "twilio" else "twilio"
            return self._delivery(sms, other, OTHER_ROUTE)
        if original.route == "tasker":
            return self._delivery(sms, "tasker", TASKER_AGAIN)
        if rng.random() < 0.5:
            return self._delivery(sms, "twilio", TWILIO_RETRY, original.form)
        return self._delivery(sms, "twilio", NEW_SID)

    # --- delivering ----------------------------------------------------------------------------

    def _post(self, session: requests.Session, d: Delivery) -> requests.Response:
        if d.route == "tasker":
            received = datetime.now().astimezone().isoformat(timespec="seconds")
            body = json.dumps(
                {"from": d.sms.phone.number, "body": d.sms.text, "received_at": received}
            ).encode()
            stamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "X-Gateway-Id": self.tasker_id,
                "X-Timestamp": stamp,
                "X-Signature": tasker.sign(self.tasker_secret, stamp, body),
            }
            return session.post(
                self.url + "/sms/tasker", data=body, headers=headers, timeout=self.timeout
            )
        assert d.form is not None
        url = self.url + "/sms/twilio"
        signature = str(self.twilio.compute_signature(url, d.form))
        return session.post(
            url, data=d.form, headers={"X-Twilio-Signature": signature}, timeout=self.timeout
        )

    def _deliver(self, session: requests.Session, d: Delivery) -> Answer:
        start = time.monotonic()
        try:
            response = self._post(session, d)
        except requests.RequestException as exc:
            why = f"{type(exc).__name__}: {exc}"[:160]  # the soak's verdict shows it
            return Answer(d, None, None, why, time.monotonic() - start)
        reply = reply_of(d.route, response) if response.status_code == 200 else None
        return Answer(d, response.status_code, reply, "", time.monotonic() - start)

    def _sender(self) -> None:
        with requests.Session() as session:
            while (d := self._queue.get()) is not None:
                answer = self._deliver(session, d)
                found = REF_IN_REPLY.search(answer.reply or "")
                if found and d.sms.kind in ("transfer", "payout"):
                    with d.sms.phone.lock:
                        d.sms.phone.references.append(found.group(1))
                with self._lock:
                    self.answers.append(answer)

    def _release_due(self, until: float) -> None:
        while self._later and self._later[0][0] <= until:
            self._queue.put(heapq.heappop(self._later)[2])

    def run(self, seconds: float, max_sms: int) -> float:
        """Send for `seconds` or `max_sms` SMS, whichever ends first, then deliver the copies
        still waiting and wait for every answer; returns the seconds spent."""
        threads = [threading.Thread(target=self._sender, daemon=True) for _ in range(self.senders)]
        for t in threads:
            t.start()
        start = time.monotonic()
        next_at, made, rng = start, 0, self.rng
        while made < max_sms and (now := time.monotonic()) < start + seconds:
            self._release_due(now)
            if now < next_at:
                time.sleep(min(next_at - now, 0.05))
                continue
            sms = self._new_sms()
            original = self._delivery(sms, rng.choice(("tasker", "twilio")), ORIGINAL)
            self._queue.put(original)
            if rng.uniform(0, 100) < self.mix.duplicates:
                copy = self._copy(original)
                if rng.uniform(0, 100) < self.mix.together:
                    self._queue.put(copy)  # another sender takes it while the first is in flight
                else:
                    heapq.heappush(self._later, (now + rng.uniform(0.2, 5), sms.id, copy))
            made += 1
            next_at = max(next_at + 1 / self.rate, time.monotonic() - 1)  # no bursts after a stall
        while self._later:  # copies due within 5 s of the last SMS
            time.sleep(max(0.0, min(self._later[0][0] - time.monotonic(), 0.2)))
            self._release_due(time.monotonic())
        for _ in threads:
            self._queue.put(None)
        for t in threads:
            t.join(timeout=self.timeout + 10)
        return time.monotonic() - start

    def copies(self) -> dict[str, int]:
        """How many deliveries of each kind were made."""
        counts: dict[str, int] = {}
        for a in self.answers:
            counts[a.delivery.copy] = counts.get(a.delivery.copy, 0) + 1
        return counts

    def summary(self) -> dict[str, Any]:
        """Counts of what was sent and seen."""
        statuses = [a.status for a in self.answers]
        latencies = sorted(a.seconds for a in self.answers) or [0.0]
        kinds: dict[str, int] = {}
        for sms in self.sent:
            kinds[sms.kind] = kinds.get(sms.kind, 0) + 1
        return {
            "sms": len(self.sent),
            "kinds": kinds,
            "deliveries": len(self.answers),
            "copies": self.copies(),
            "2xx": sum(1 for s in statuses if s is not None and 200 <= s < 300),
            "4xx": sum(1 for s in statuses if s is not None and 400 <= s < 500),
            "5xx": sum(1 for s in statuses if s is not None and s >= 500),
            "no answer": sum(1 for s in statuses if s is None),
            "p50": latencies[len(latencies) // 2],
            "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        }
