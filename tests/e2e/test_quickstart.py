"""The README's quick start, over real HTTP: operator CLI, then the phone emulator paying through
gunicorn by both routes, and the status SMS back."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import BIN, ROOT, Server
from tests.support import TWILIO_TOKEN

pytestmark = pytest.mark.e2e


def phone(server: Server, state: Path, *args: str) -> tuple[int, str]:
    """Run scripts/phone.py as a user would; returns (exit code, output)."""
    result = subprocess.run(
        [str(BIN / "python"), "-m", "scripts.phone", "--state", str(state), *args],
        cwd=ROOT, env=server.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return result.returncode, result.stdout + result.stderr


def test_pay_balance_and_status_through_both_routes(server: Server, tmp_path: Path) -> None:
    asha, ravi = "+919600000001", "+919600000002"
    server.cli("users", "add", "--phone", asha, "--name", "Asha", "--pin", "1234")
    server.cli("users", "add", "--phone", ravi, "--name", "Ravi", "--pin", "4321")
    server.cli("wallet", "credit", "--phone", asha, "--amount", "500", "--reason", "cash-in")
    bundle = tmp_path / "asha.json"
    server.cli("devices", "provision", "--phone", asha, "--out", str(bundle))
    secret = server.cli("gateways", "add-tasker", "--id", "shop-e2e").strip().splitlines()[-1]
    state = tmp_path / "phone.json"
    assert phone(server, state, "provision", str(bundle))[0] == 0

    tasker = ["--send", "tasker", "--url", server.url + "/sms/tasker",
              "--gateway-id", "shop-e2e", "--gateway-secret", secret]  # fmt: skip
    twilio = ["--send", "twilio", "--url", server.url + "/sms/twilio",
              "--twilio-auth-token", TWILIO_TOKEN]  # fmt: skip

    code, out = phone(server, state, "pay", "--to", ravi, "--amount", "250", "--pin", "1234",
                      "--note", "rent", *tasker)  # fmt: skip
    assert code == 0, out
    assert "Paid Rs 250.00 to +91******0002" in out and "Bal Rs 250.00" in out
    ref = out.split("Ref ")[1][:10]

    code, out = phone(server, state, "pay", "--to", ravi, "--amount", "100", "--pin", "1234",
                      *twilio)  # fmt: skip
    assert code == 0, out
    assert "Paid Rs 100.00" in out and "Bal Rs 150.00" in out

    code, out = phone(server, state, "balance", "--pin", "1234", *twilio)
    assert "Your balance is Rs 150.00" in out
    code, out = phone(server, state, "status", ref, *tasker)
    assert f"Ref {ref}: Rs 250.00 to +91******0002 is SUCCESS" in out
    code, out = phone(server, state, "balance", "--pin", "9999", *tasker)
    assert "Wrong PIN" in out

    shown = server.cli("transactions", "show", ref)
    assert "SUCCESS" in shown and "rent" in shown
    assert "Rs 350.00" in server.cli("wallet", "balance", "--phone", ravi)


def test_wrong_secrets_are_refused_over_http(server: Server, tmp_path: Path) -> None:
    asha = "+919600000011"
    server.cli("users", "add", "--phone", asha, "--name", "Asha", "--pin", "1234")
    bundle = tmp_path / "b.json"
    server.cli("devices", "provision", "--phone", asha, "--out", str(bundle))
    state = tmp_path / "p.json"
    phone(server, state, "provision", str(bundle))
    code, out = phone(server, state, "balance", "--pin", "1234", "--send", "twilio",
                      "--url", server.url + "/sms/twilio", "--twilio-auth-token", "x")  # fmt: skip
    assert code != 0 and "403" in out
    code, out = phone(server, state, "balance", "--pin", "1234", "--send", "tasker",
                      "--url", server.url + "/sms/tasker", "--gateway-id", "nope",
                      "--gateway-secret", "00" * 32)  # fmt: skip
    assert code != 0 and "403" in out
