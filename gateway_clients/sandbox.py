"""The sandbox gateway: the embedded default. IT MOVES NO REAL MONEY.

It behaves like RazorpayX in test mode, on one machine and without any account: payouts settle
by themselves `settle_seconds` after they are made, following Razorpay's test VPAs
(`failure@razorpay` fails, anything else - `success@razorpay` included - is processed), and the
sandbox then calls the service's own webhook with a Razorpay-format body, signed with the webhook
secret. Its book of payouts and links lives in its own SQLite file, as an outside system would
keep its own; status checks read it, so a lost webhook is recovered by a poll, as in production.

It can also be made unreliable on purpose (`SandboxFaults`, for soak runs): a share of its payout
calls then fail as a real provider's sometimes do, with the outcome unknown to the caller.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from gateway_clients.base import (
    NOT_CHECKED,
    GatewayEvent,
    GatewayUnavailable,
    PayeeCheck,
    PaymentLink,
    Payout,
    PayoutRejected,
    PayoutRequest,
    PayoutStatus,
)
from gateway_clients.razorpay import RazorpayGateway

log = logging.getLogger(__name__)
FAILING_VPA = "failure@razorpay"
SCHEMA = """
CREATE TABLE IF NOT EXISTS payouts (reference TEXT PRIMARY KEY, id TEXT NOT NULL,
    vpa TEXT NOT NULL, amount INTEGER NOT NULL, created_at REAL NOT NULL, settle_at REAL NOT NULL,
    outcome TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS links (reference TEXT PRIMARY KEY, id TEXT NOT NULL,
    amount INTEGER NOT NULL, phone TEXT NOT NULL, expire_by INTEGER NOT NULL,
    paid INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS calls (call TEXT NOT NULL, reference TEXT NOT NULL,
    n INTEGER NOT NULL, PRIMARY KEY (call, reference));
"""


FAILED_CALL = "fail"  # the call failed before the sandbox did anything
LOST_ANSWER = "lost"  # the sandbox made the payout, then the answer was lost


@dataclass(frozen=True)
class SandboxFaults:
    """Which of the sandbox's payout calls fail, on purpose, with GatewayUnavailable.

    `fail_percent` of the calls to create or fetch a payout fail; of the failed creates,
    `lost_percent` fail after the payout was made (the nastiest case for exactly-once: money left,
    and the caller does not know). Whether a call fails depends only on the seed, the call, the
    payout's reference and how many times that call was made for it (counted in the sandbox's
    book, across processes and restarts), so a run with the same seed and the same calls meets
    the same failures, whatever order processes and threads run in, and a restarted worker does
    not meet again the failures its predecessor met.
    """

    fail_percent: int = 0
    lost_percent: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.fail_percent <= 100 and 0 <= self.lost_percent <= 100):
            raise ValueError("sandbox fault percentages are 0 to 100")

    @property
    def active(self) -> bool:
        """Whether any call can fail."""
        return self.fail_percent > 0

    def verdict(self, call: str, reference: str, nth: int) -> str | None:
        """FAILED_CALL, LOST_ANSWER (creates only) or None for the `nth` (1-based) such call."""
        if not self.active:
            return None
        digest = hashlib.sha256(f"{self.seed}:{call}:{reference}:{nth}".encode()).digest()
        roll = int.from_bytes(digest[:8], "big") / 2**64 * 100  # uniform in [0, 100)
        if roll >= self.fail_percent:
            return None
        # the failed calls' rolls are uniform in [0, fail_percent): the lowest share are lost
        lost = call == "create" and roll < self.fail_percent * self.lost_percent / 100
        return LOST_ANSWER if lost else FAILED_CALL


NO_FAULTS = SandboxFaults()


class SandboxGateway:
    """A pretend RazorpayX for development and tests, with its own little book."""

    name = "sandbox"

    def __init__(
        self,
        book: Path,
        webhook_secret: str,
        webhook_url: str = "",
        settle_seconds: float = 3,
        clock: Callable[[], float] = time.time,
        session: requests.Session | None = None,
        faults: SandboxFaults = NO_FAULTS,
    ) -> None:
        self._book = book
        self._secret = webhook_secret
        self._webhook_url = webhook_url
        self._settle = settle_seconds
        self._clock = clock
        self._session = session or requests.Session()
        self._webhooks = RazorpayGateway("sandbox", "sandbox", "sandbox", webhook_secret)
        self._faults = faults
        book.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as conn:
            conn.executescript(SCHEMA)
        log.warning("payment gateway: SANDBOX - no real money moves")
        if faults.active:
            log.warning(
                "sandbox: %d%% of payout calls fail on purpose (%d%% of failed creates after"
                " paying), seed %d",
                faults.fail_percent,
                faults.lost_percent,
                faults.seed,
            )

    def _fault(self, call: str, reference: str) -> str | None:
        """Whether this call fails on purpose (see SandboxFaults); logs the ones that do."""
        if not self._faults.active:
            return None
        with closing(self._connect()) as conn:  # one statement: atomic across processes
            nth = conn.execute(
                "INSERT INTO calls VALUES (?, ?, 1)"
                " ON CONFLICT (call, reference) DO UPDATE SET n = n + 1 RETURNING n",
                (call, reference),
            ).fetchone()[0]
        verdict = self._faults.verdict(call, reference, nth)
        if verdict is not None:
            log.warning("sandbox: injected fault (%s) into %s of %s", verdict, call, reference)
        return verdict

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._book, timeout=15, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        return conn

    def create_payout(self, request: PayoutRequest) -> Payout:
        """Record the payout (idempotent by reference) and settle it after a delay."""
        fault = self._fault("create", request.reference)
        if fault == FAILED_CALL:
            raise GatewayUnavailable("sandbox: injected failure, nothing was made")
        if "@" not in request.vpa or request.amount <= 0:
            raise PayoutRejected("invalid VPA or amount")
        now = self._clock()
        outcome = "failed" if request.vpa.lower() == FAILING_VPA else "processed"
        with closing(self._connect()) as conn:
            conn.execute(
                "INSERT OR IGNORE INTO payouts VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    request.reference,
                    "pout_sandbox" + secrets.token_hex(6),
                    request.vpa,
                    request.amount,
                    now,
                    now + self._settle,
                    outcome,
                ),
            )
        payout = self._payout(request.reference)
        assert payout is not None
        if self._webhook_url and payout.status is PayoutStatus.PROCESSING:
            timer = threading.Timer(self._settle, self.deliver, args=(request.reference,))
            timer.daemon = True
            timer.start()
        if fault == LOST_ANSWER:  # the payout is made and its webhook will come: only we forget
            raise GatewayUnavailable("sandbox: injected failure after the payout was made")
        return payout

    def fetch_payout(self, reference: str) -> Payout | None:
        """The payout as it stands now: processing until its settle time."""
        if self._fault("fetch", reference) is not None:
            raise GatewayUnavailable("sandbox: injected failure of a status check")
        return self._payout(reference)

    def _payout(self, reference: str) -> Payout | None:
        """The payout in the book as it stands now (the sandbox's own read: never fails)."""
        with closing(self._connect()) as conn:
            row = conn.execute(
                "SELECT id, amount, settle_at, outcome FROM payouts WHERE reference = ?",
                (reference,),
            ).fetchone()
        if row is None:
            return None
        provider_id, amount, settle_at, outcome = row
        if self._clock() < settle_at:
            return Payout(reference, provider_id, PayoutStatus.PROCESSING, amount)
        reason = "sandbox: payee bank declined" if outcome == "failed" else ""
        utr = "" if reason else "SANDBOX" + provider_id[-8:].upper()
        return Payout(reference, provider_id, PayoutStatus(outcome), amount, reason, utr)

    def list_payouts(self, since: int, until: int) -> list[Payout] | None:
        """Every payout in the sandbox's book made in the window."""
        with closing(self._connect()) as conn:
            refs = [
                r[0]
                for r in conn.execute(
                    "SELECT reference FROM payouts WHERE created_at >= ? AND created_at < ?"
                    " ORDER BY created_at",
                    (since, until),
                )
            ]
        return [p for p in map(self._payout, refs) if p is not None]

    def validate_payee(self, vpa: str) -> PayeeCheck:
        """Not checked, so that `failure@razorpay` fails later, at the payout, like Razorpay's
        test mode (and the refund path runs)."""
        return NOT_CHECKED

    def create_payment_link(
        self, reference: str, amount: int, phone: str, description: str, expire_by: int
    ) -> PaymentLink:
        """A pretend link; `flask --app wsgi sandbox pay-link REF` plays the payer."""
        link_id = "plink_sandbox" + secrets.token_hex(6)
        with closing(self._connect()) as conn:
            conn.execute(
                "INSERT OR IGNORE INTO links (reference, id, amount, phone, expire_by)"
                " VALUES (?, ?, ?, ?, ?)",
                (reference, link_id, amount, phone, expire_by),
            )
            link_id = conn.execute(
                "SELECT id FROM links WHERE reference = ?", (reference,)
            ).fetchone()[0]
        return PaymentLink(
            reference, link_id, f"https://sandbox.invalid/{link_id}", amount, expire_by
        )

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> GatewayEvent | None:
        """Sandbox webhooks are Razorpay-format and signed the same way."""
        return self._webhooks.parse_webhook(body, headers)

    # the sandbox's side of the webhook
    def payout_event(self, reference: str) -> tuple[bytes, dict[str, str]] | None:
        """The signed webhook the sandbox sends for a settled payout (None while processing)."""
        payout = self._payout(reference)
        if payout is None or payout.status is PayoutStatus.PROCESSING:
            return None
        entity: dict[str, Any] = {
            "id": payout.provider_id,
            "entity": "payout",
            "amount": payout.amount,
            "currency": "INR",
            "status": payout.status.value,
            "mode": "UPI",
            "reference_id": reference,
            "utr": payout.utr or None,
            "status_details": {"description": payout.failure_reason}
            if payout.failure_reason
            else None,
        }
        return self._signed(f"payout.{payout.status.value}", "payout", entity, payout.provider_id)

    def link_paid_event(self, reference: str) -> tuple[bytes, dict[str, str]] | None:
        """The signed `payment_link.paid` webhook for a link (the payer paid it in full)."""
        with closing(self._connect()) as conn:
            row = conn.execute(
                "SELECT id, amount FROM links WHERE reference = ?", (reference,)
            ).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE links SET paid = 1 WHERE reference = ?", (reference,))
        link_id, amount = row
        entity = {
            "id": link_id,
            "entity": "payment_link",
            "amount": amount,
            "amount_paid": amount,
            "currency": "INR",
            "status": "paid",
            "reference_id": reference,
        }
        return self._signed("payment_link.paid", "payment_link", entity, link_id)

    def _signed(
        self, event: str, kind: str, entity: dict[str, Any], entity_id: str
    ) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(
            {
                "entity": "event",
                "account_id": "acc_sandbox",
                "event": event,
                "contains": [kind],
                "payload": {kind: {"entity": entity}},
                "created_at": int(self._clock()),
            }
        ).encode()
        signature = hmac.new(self._secret.encode(), body, hashlib.sha256).hexdigest()
        return body, {
            "Content-Type": "application/json",
            "X-Razorpay-Signature": signature,
            "X-Razorpay-Event-Id": f"evt_sandbox_{entity_id}_{event}",
        }

    def deliver(self, reference: str) -> bool:
        """POST the payout's webhook to the service, as Razorpay would; False if not delivered."""
        signed = self.payout_event(reference)
        if signed is None or not self._webhook_url:
            return False
        body, headers = signed
        try:
            response = self._session.post(self._webhook_url, data=body, headers=headers, timeout=5)
        except requests.RequestException as exc:
            log.warning("sandbox webhook for %s not delivered: %s", reference, exc)
            return False
        return response.ok
