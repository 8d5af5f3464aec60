"""The risk controls through gunicorn (2 workers) and the worker: the per-user bucket holds across
both web processes (the eleventh instruction in a minute is refused with the time to try again),
and a payment 50 km from the user's usual area is FLAGGED with its money held, then approved
over the API and settled. The console's approval of such a payment runs in Chromium:
tests/e2e/test_console_browser.py."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from sms.instructions import format_pay
from tests.e2e.conftest import Server, post, provision
from tests.support import Phone

pytestmark = pytest.mark.e2e

HOME = (Decimal("12.9716"), Decimal("77.5946"))  # Bengaluru
FAR = (Decimal("13.4213"), Decimal("77.5946"))  # 50 km due north


def located(phone: Phone, payee: str, paise: int, where: tuple[Decimal, Decimal]) -> str:
    return phone.seal(format_pay(payee, paise, phone.pin, int(time.time()), "", where))


def test_the_user_bucket_is_shared_by_both_web_processes(
    server: Server, gateway: tuple[str, str], tmp_path: Path
) -> None:
    user = provision(server, tmp_path, "+919700000301", "1234", 10)
    bodies = [user.balance() for _ in range(16)]
    jobs = [("twilio" if i % 2 else "tasker", b) for i, b in enumerate(bodies)]
    with ThreadPoolExecutor(max_workers=8) as pool:  # both gunicorn workers take requests
        replies = list(pool.map(lambda j: post(server, gateway, j[0], user.phone, j[1]), jobs))
    answered = [r for r in replies if "Your balance is Rs 10.00" in r]
    limited = [r for r in replies if r.startswith("SMSPay: Too many messages.")]
    assert len(answered) == 10, replies  # one bucket of 10, whichever process answered
    assert len(limited) == 6 and all("try again after" in r for r in limited)
    # the seventh refusal to the same number in an hour gets no reply: no flood
    assert post(server, gateway, "tasker", user.phone, user.balance()) == ""


def test_a_payment_fifty_km_away_is_held_then_approved_and_settled(
    server: Server, gateway: tuple[str, str], tmp_path: Path
) -> None:
    payer = provision(server, tmp_path, "+919700000311", "1234", 1000)
    provision(server, tmp_path, "+919700000312", "4321", 0)
    payee = "+919700000312"
    for _ in range(3):
        assert "Paid Rs 10.00" in post(server, gateway, "twilio", payer.phone,
                                       located(payer, payee, 1_000, HOME))  # fmt: skip
    held = post(server, gateway, "tasker", payer.phone, located(payer, payee, 12_300, FAR))
    assert "is held for a security check" in held, held
    ref = held.split("Ref ")[1][:10]
    shown = server.cli("transactions", "show", ref)
    assert "FLAGGED" in shown and "location: 13.4213,77.5946" in shown
    assert "flag geofence: 50.0 km from the usual area" in shown
    assert "Rs 847.00" in server.cli("wallet", "balance", "--phone", payer.phone)  # held aside
    assert "Rs 30.00" in server.cli("wallet", "balance", "--phone", payee)

    server.cli("staff", "add", "--name", "risk-admin", "--role", "admin")
    token = server.cli("staff", "token", "--name", "risk-admin").strip().splitlines()[-1]
    r = requests.post(
        f"{server.url}/api/v1/flagged/{ref}/approve",
        json={"reason": "payer confirmed by phone"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "SUCCESS"
    assert "Rs 153.00" in server.cli("wallet", "balance", "--phone", payee)
    assert "Rs 847.00" in server.cli("wallet", "balance", "--phone", payer.phone)
    timeline = requests.get(
        f"{server.url}/api/v1/transactions/{ref}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ).json()["timeline"]
    assert [i["kind"] for i in timeline][:2] == ["sms_in", "risk"]
    assert any(i["kind"] == "staff" and "payment.approve" in i["title"] for i in timeline)
