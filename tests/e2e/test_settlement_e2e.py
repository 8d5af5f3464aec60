"""Payouts to UPI ids end to end: gunicorn, a worker process and the sandbox gateway, which
settles on its own and calls the service's webhook, signed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, post, provision

pytestmark = pytest.mark.e2e


def wait_for(server: Server, reference: str, state: str, seconds: float = 40) -> str:
    """The transaction as the CLI shows it, once it reached `state` (bounded wait)."""
    deadline = time.monotonic() + seconds
    while True:
        shown = server.cli("transactions", "show", reference)
        if f" {state} " in shown.splitlines()[0] or time.monotonic() > deadline:
            return shown
        time.sleep(0.5)


def test_payouts_settle_or_refund_through_the_sandbox(
    server: Server,
    gateway: tuple[str, str],
    tmp_path: Path,
) -> None:
    payer = provision(server, tmp_path, "+919500000001", "1234", 1000)
    total = server.total_balance()

    reply = post(server, gateway, "tasker", payer.phone, payer.pay("success@razorpay", 25_000))
    assert (
        reply.startswith("SMSPay: Sending Rs 250.00 to su****@razorpay.")
        and "Bal Rs 750.00" in reply
    )
    ok_ref = reply.split("Ref ")[1][:10]

    reply = post(server, gateway, "twilio", payer.phone, payer.pay("failure@razorpay", 10_000))
    assert "Sending Rs 100.00" in reply and "Bal Rs 650.00" in reply
    bad_ref = reply.split("Ref ")[1][:10]

    shown = wait_for(server, ok_ref, "SUCCESS")
    assert " SUCCESS " in shown.splitlines()[0], shown
    assert "PROCESSING" in shown and "system:payouts_settled" in shown
    shown = wait_for(server, bad_ref, "FAILED")
    assert " FAILED " in shown.splitlines()[0] and "refunded" in shown, shown

    assert "Rs 750.00" in server.cli("wallet", "balance", "--phone", payer.phone)
    assert server.total_balance() == total
    texts = server.cli("sms", "outbox", "--phone", payer.phone, "--full")
    assert f"SMSPay: Rs 250.00 sent to su****@razorpay. Ref {ok_ref}." in texts
    assert f"could not be sent and is back in your wallet. Ref {bad_ref}." in texts
