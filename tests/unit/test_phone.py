"""The phone emulator: bundle -> state file -> one SP1 SMS, and delivery like Tasker or Twilio."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import responses
from click.testing import CliRunner, Result
from twilio.request_validator import RequestValidator

from crypto.codec import InvalidMessage, decode
from scripts import phone
from sms.instructions import Balance, Pay, Status, TopUp, parse

ROOT = Path(__file__).resolve().parents[2]
PHONE = "+919876543210"
PAYEE = "+919812345678"
SERVICE = "+15005550006"
KEY = bytes(range(32))
KEY_ID = 7
PIN = "80235"
NOW = 1_790_000_000
TASKER_URL = "http://127.0.0.1:8000/sms/tasker"
TWILIO_URL = "http://127.0.0.1:8000/sms/twilio"
PUBLIC_URL = "https://pay.example.com/sms/twilio"
SECRET = "0" * 63 + "1"  # the hex string `gateways add-tasker` prints; fake
TOKEN = "fake-twilio-auth-token"
TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Message>OK &amp; done</Message></Response>'
)


def write_bundle(path: Path, **changes: Any) -> Path:
    """A device bundle file as `flask devices provision` writes it."""
    data: dict[str, Any] = {
        "phone": PHONE,
        "key_id": KEY_ID,
        "key": base64.b64encode(KEY).decode(),
        "service_number": SERVICE,
        "next_counter": 1,
    }
    data.update(changes)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(autouse=True)
def _fixed_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(phone, "now", lambda: NOW)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "phone" / "state.json"


@pytest.fixture
def run(state: Path) -> Callable[..., Result]:
    """Invoke the phone CLI against the test's state file."""

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(phone.cli, ["--state", str(state), *args])

    return invoke


@pytest.fixture
def provisioned(run: Callable[..., Result], tmp_path: Path) -> Callable[..., Result]:
    result = run("provision", str(write_bundle(tmp_path / "bundle.json")))
    assert result.exit_code == 0, result.output
    return run


def next_counter(state: Path) -> int:
    counter: int = json.loads(state.read_text())["next_counter"]
    return counter


def sms_of(result: Result) -> str:
    """The one SP1 line the command printed."""
    lines = [line for line in result.stdout.splitlines() if line.startswith("SP1 ")]
    assert len(lines) == 1, result.output
    return lines[0]


def opened(result: Result) -> tuple[int, bytes]:
    """Counter and plaintext of the printed SMS, opened with the bundle key for this phone."""
    frame, plaintext = decode(KEY, PHONE, sms_of(result))
    assert frame.key_id == KEY_ID
    return frame.counter, plaintext


# --- sealing --------------------------------------------------------------------------------


def test_pay_prints_one_sms_that_opens_to_the_instruction(
    provisioned: Callable[..., Result],
) -> None:
    result = provisioned(
        "pay", "--to", PAYEE, "--amount", "250.50", "--pin", PIN,
        "--note", "rent", "--location", "12.9716,77.5946",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = sms_of(result)
    assert len(text) <= 160
    assert f"{len(text)} characters, 1 segment" in result.stdout
    counter, plaintext = opened(result)
    assert counter == 1
    instr = parse(plaintext)
    assert isinstance(instr, Pay)
    assert (instr.payee, instr.amount, instr.pin, instr.sent_at) == (PAYEE, 25050, PIN, NOW)
    assert instr.note == "rent"
    assert instr.location == (Decimal("12.9716"), Decimal("77.5946"))


def test_the_sms_does_not_open_for_another_phone(provisioned: Callable[..., Result]) -> None:
    result = provisioned("balance", "--pin", PIN)
    with pytest.raises(InvalidMessage):  # the sender's number is bound into the tag
        decode(KEY, PAYEE, sms_of(result))


def test_neither_pin_nor_key_is_printed(provisioned: Callable[..., Result], state: Path) -> None:
    result = provisioned("pay", "--to", PAYEE, "--amount", "5", "--pin", PIN)
    assert result.exit_code == 0
    assert PIN not in result.output
    assert base64.b64encode(KEY).decode() not in result.output


def test_balance_and_status_instructions(provisioned: Callable[..., Result]) -> None:
    bal = provisioned("balance", "--pin", PIN)
    sts = provisioned("status", "7kq2m9xh3d")
    assert parse(opened(bal)[1]) == Balance(PIN, NOW)
    assert parse(opened(sts)[1]) == Status("7KQ2M9XH3D", NOW)


def test_topup_asks_for_a_link_and_refuses_bad_amounts(
    provisioned: Callable[..., Result], state: Path
) -> None:
    top = provisioned("topup", "--amount", "500.50")
    assert parse(opened(top)[1]) == TopUp(50_050, NOW)
    counter = next_counter(state)
    for bad in ("0", "-1", "abc"):
        result = provisioned("topup", "--amount", bad)
        assert result.exit_code == 2, result.output
    assert next_counter(state) == counter  # a refusal uses no counter


def test_each_command_uses_the_next_counter_and_persists_it(
    provisioned: Callable[..., Result], state: Path
) -> None:
    first = provisioned("pay", "--to", PAYEE, "--amount", "1", "--pin", PIN)
    second = provisioned("pay", "--to", PAYEE, "--amount", "1", "--pin", PIN)
    assert [opened(first)[0], opened(second)[0]] == [1, 2]
    assert next_counter(state) == 3


def test_the_counter_is_persisted_before_the_sms_is_printed(
    provisioned: Callable[..., Result], state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    echo = phone.click.echo

    def spy(message: Any = None, *args: Any, **kwargs: Any) -> None:
        if isinstance(message, str) and message.startswith("SP1 "):
            seen.append(next_counter(state))
        echo(message, *args, **kwargs)

    monkeypatch.setattr(phone.click, "echo", spy)
    result = provisioned("balance", "--pin", PIN)
    assert result.exit_code == 0, result.output
    assert seen == [2]


def test_a_too_long_note_is_refused_without_using_a_counter(
    provisioned: Callable[..., Result], state: Path
) -> None:
    result = provisioned("pay", "--to", PAYEE, "--amount", "1", "--pin", PIN, "--note", "x" * 60)
    assert result.exit_code == 2
    assert "one SMS carries at most" in result.output
    assert "SP1 " not in result.output
    assert next_counter(state) == 1
    after = provisioned("balance", "--pin", PIN)
    assert opened(after)[0] == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--amount", "0"],
        ["--amount", "2.345"],
        ["--amount", "1", "--note", "a|b"],
        ["--amount", "1", "--location", "north"],
        ["--amount", "1", "--location", "95,10"],
        ["--amount", "1", "--send", "tasker", "--url", TASKER_URL],  # no gateway id or secret
        ["--amount", "1", "--send", "twilio", "--url", TWILIO_URL],  # no auth token
        ["--amount", "1", "--url", TASKER_URL],  # a URL without --send
    ],
)
def test_bad_input_is_refused_without_using_a_counter(
    provisioned: Callable[..., Result], state: Path, args: list[str]
) -> None:
    result = provisioned("pay", "--to", PAYEE, "--pin", PIN, *args)
    assert result.exit_code == 2, result.output
    assert "SP1 " not in result.output
    assert next_counter(state) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["pay", "--to", PAYEE, "--amount", "1", "--pin", "12"],
        ["pay", "--to", PAYEE, "--amount", "1", "--pin", "1234567"],
        ["balance", "--pin", "\u0661\u0662\u0663\u0664"],  # digits, but not ASCII ones
        ["pay", "--to", "someone", "--amount", "1", "--pin", PIN],
        ["status", "NOT-A-REF"],
        ["status", "7KQ2M9XH3D7KQ2"],
    ],
)
def test_a_bad_pin_payee_or_reference_is_refused(
    provisioned: Callable[..., Result], state: Path, args: list[str]
) -> None:
    result = provisioned(*args)
    assert result.exit_code == 2, result.output
    assert next_counter(state) == 1


def test_commands_need_a_provisioned_device(run: Callable[..., Result]) -> None:
    result = run("balance", "--pin", PIN)
    assert result.exit_code == 1
    assert "provision" in result.output


# --- provisioning and the state file ----------------------------------------------------------


def test_provision_never_moves_the_counter_backwards(
    run: Callable[..., Result], state: Path, tmp_path: Path
) -> None:
    run("provision", str(write_bundle(tmp_path / "b5.json", next_counter=5)))
    result = run("provision", str(write_bundle(tmp_path / "b1.json", next_counter=1)))
    assert result.exit_code == 0, result.output
    assert next_counter(state) == 5
    assert "kept next counter 5" in result.output
    assert opened(run("balance", "--pin", PIN))[0] == 5


def test_provision_moves_the_counter_forwards(
    run: Callable[..., Result], state: Path, tmp_path: Path
) -> None:
    run("provision", str(write_bundle(tmp_path / "b1.json", next_counter=1)))
    run("provision", str(write_bundle(tmp_path / "b9.json", next_counter=9)))
    assert next_counter(state) == 9


def test_a_new_key_id_replaces_the_old_device(
    run: Callable[..., Result], state: Path, tmp_path: Path
) -> None:
    run("provision", str(write_bundle(tmp_path / "old.json", next_counter=40)))
    new = write_bundle(tmp_path / "new.json", key_id=8, next_counter=1)
    assert run("provision", str(new)).exit_code == 0
    data = json.loads(state.read_text())
    assert (data["key_id"], data["next_counter"]) == (8, 1)


def test_the_state_file_is_private_and_replaced_atomically(
    provisioned: Callable[..., Result], state: Path
) -> None:
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    provisioned("balance", "--pin", PIN)
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    leftovers = [p.name for p in state.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    assert json.loads(state.read_text())["key"] == base64.b64encode(KEY).decode()


@pytest.mark.parametrize(
    "changes",
    [
        {"key": base64.b64encode(b"short").decode()},
        {"key": "not base64!"},
        {"key": None},
        {"phone": "9876543210"},
        {"service_number": "call us"},
        {"key_id": -1},
        {"key_id": 2**32},
        {"key_id": "7"},
        {"next_counter": 0},
        {"next_counter": True},
    ],
)
def test_a_bad_bundle_is_refused(
    run: Callable[..., Result], state: Path, tmp_path: Path, changes: dict[str, Any]
) -> None:
    result = run("provision", str(write_bundle(tmp_path / "bad.json", **changes)))
    assert result.exit_code == 2, result.output
    assert "not a device bundle" in result.output
    assert not state.exists()


def test_a_bundle_that_is_not_json_is_refused(
    run: Callable[..., Result], state: Path, tmp_path: Path
) -> None:
    (tmp_path / "bad.json").write_text("phone=+919876543210")
    assert run("provision", str(tmp_path / "bad.json")).exit_code == 2
    assert not state.exists()


# --- delivery -------------------------------------------------------------------------------


def test_send_tasker_posts_a_signed_json_request(
    provisioned: Callable[..., Result], state: Path
) -> None:
    captured: list[requests.PreparedRequest] = []

    def service(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        captured.append(request)
        assert next_counter(state) == 2  # persisted before it was sent
        reply = {"reply": "SMSPay: Your balance is Rs 5.00.", "to": PHONE, "reference": None}
        return 200, {"Content-Type": "application/json"}, json.dumps(reply)

    with responses.RequestsMock() as mock:
        mock.add_callback(responses.POST, TASKER_URL, callback=service)
        result = provisioned(
            "balance", "--pin", PIN, "--send", "tasker", "--url", TASKER_URL,
            "--gateway-id", "shop-1", "--gateway-secret", SECRET,
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "HTTP 200" in result.stdout
    assert "reply: SMSPay: Your balance is Rs 5.00." in result.stdout
    (request,) = captured
    body = request.body
    assert isinstance(body, bytes)
    headers = request.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Gateway-Id"] == "shop-1"
    assert headers["X-Timestamp"] == str(NOW)
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + body, hashlib.sha256).hexdigest()
    assert headers["X-Signature"] == expected
    data = json.loads(body)
    assert set(data) == {"from", "body", "received_at"}
    assert data["from"] == PHONE
    assert data["body"] == sms_of(result)
    assert datetime.fromisoformat(data["received_at"]).tzinfo is not None


def test_send_twilio_posts_a_form_signed_over_the_public_url(
    provisioned: Callable[..., Result], state: Path
) -> None:
    forms: list[dict[str, str]] = []
    signatures: list[str] = []

    def service(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        raw = request.body if isinstance(request.body, str) else bytes(request.body or b"").decode()
        forms.append({k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()})
        signatures.append(request.headers["X-Twilio-Signature"])
        return 200, {"Content-Type": "application/xml"}, TWIML

    args = [
        "--send", "twilio", "--url", TWILIO_URL,
        "--public-url", PUBLIC_URL, "--twilio-auth-token", TOKEN,
    ]  # fmt: skip
    with responses.RequestsMock() as mock:
        mock.add_callback(responses.POST, TWILIO_URL, callback=service)
        first = provisioned("balance", "--pin", PIN, *args)
        second = provisioned("status", "7KQ2M9XH3D", *args)
    assert first.exit_code == second.exit_code == 0, first.output + second.output
    assert "reply: OK & done" in first.stdout
    form = forms[0]
    assert list(form) == [
        "ToCountry", "ToState", "SmsMessageSid", "NumMedia", "ToCity", "FromZip", "SmsSid",
        "FromState", "SmsStatus", "FromCity", "Body", "FromCountry", "To", "ToZip",
        "NumSegments", "MessageSid", "AccountSid", "From", "ApiVersion",
    ]  # fmt: skip
    validator = RequestValidator(TOKEN)
    assert validator.validate(PUBLIC_URL, form, signatures[0])
    assert not validator.validate(TWILIO_URL, form, signatures[0])
    assert not RequestValidator("another-token").validate(PUBLIC_URL, form, signatures[0])
    assert re.fullmatch(r"SM[0-9a-f]{32}", form["MessageSid"])
    assert form["SmsSid"] == form["SmsMessageSid"] == form["MessageSid"]
    assert forms[1]["MessageSid"] != form["MessageSid"]
    assert form["AccountSid"] == "AC" + "0" * 32
    assert (form["From"], form["To"], form["Body"]) == (PHONE, SERVICE, sms_of(first))
    assert (form["FromCountry"], form["ToCountry"]) == ("IN", "US")
    assert (form["NumMedia"], form["NumSegments"], form["SmsStatus"]) == ("0", "1", "received")
    assert form["ApiVersion"] == "2010-04-01"
    assert parse(decode(KEY, PHONE, forms[1]["Body"])[1]) == Status("7KQ2M9XH3D", NOW)
    assert next_counter(state) == 3


def test_twilio_signs_the_url_it_posts_to_by_default(provisioned: Callable[..., Result]) -> None:
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, TWILIO_URL, body="<Response/>", content_type="application/xml")
        result = provisioned(
            "balance", "--pin", PIN, "--send", "twilio", "--url", TWILIO_URL,
            "--twilio-auth-token", TOKEN, "--account-sid", "AC" + "f" * 32,
        )  # fmt: skip
        request = mock.calls[0].request
    assert result.exit_code == 0, result.output
    body = request.body if isinstance(request.body, str) else bytes(request.body or b"").decode()
    form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
    assert form["AccountSid"] == "AC" + "f" * 32
    assert RequestValidator(TOKEN).validate(TWILIO_URL, form, request.headers["X-Twilio-Signature"])


def test_a_network_error_fails_but_the_counter_stays_used(
    provisioned: Callable[..., Result], state: Path
) -> None:
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, TASKER_URL, body=requests.ConnectionError("connection refused"))
        result = provisioned(
            "pay", "--to", PAYEE, "--amount", "1", "--pin", PIN, "--send", "tasker",
            "--url", TASKER_URL, "--gateway-id", "shop-1", "--gateway-secret", SECRET,
        )  # fmt: skip
    assert result.exit_code == 1
    assert "could not reach" in result.output
    assert next_counter(state) == 2
    assert opened(provisioned("balance", "--pin", PIN))[0] == 2


def test_a_refusal_by_the_service_fails_with_a_hint(provisioned: Callable[..., Result]) -> None:
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, TASKER_URL, status=403, body="")
        result = provisioned(
            "balance", "--pin", PIN, "--send", "tasker", "--url", TASKER_URL,
            "--gateway-id", "shop-1", "--gateway-secret", SECRET,
        )  # fmt: skip
    assert result.exit_code == 1
    assert "HTTP 403" in result.output
    assert "clock" in result.output


def test_gateway_settings_come_from_the_environment(
    provisioned: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMSPAY_TASKER_GATEWAY_ID", "shop-2")
    monkeypatch.setenv("SMSPAY_TASKER_GATEWAY_SECRET", SECRET)
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, TASKER_URL, json={"reply": "hi", "to": PHONE, "reference": None})
        result = provisioned("balance", "--pin", PIN, "--send", "tasker", "--url", TASKER_URL)
        request = mock.calls[0].request
    assert result.exit_code == 0, result.output
    assert request.headers["X-Gateway-Id"] == "shop-2"
    assert isinstance(request.body, bytes)
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + request.body, hashlib.sha256)
    assert request.headers["X-Signature"] == expected.hexdigest()


# --- running it -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "cwd"),
    [([str(ROOT / "scripts" / "phone.py")], None), (["-m", "scripts.phone"], ROOT)],
    ids=["file", "module"],
)
def test_it_runs_as_a_file_and_as_a_module(
    command: list[str], cwd: Path | None, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["SMSPAY_PHONE_STATE"] = str(tmp_path / "state.json")
    bundle = str(write_bundle(tmp_path / "bundle.json"))
    proc = subprocess.run(
        [sys.executable, *command, "provision", bundle],
        cwd=cwd or tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert next_counter(tmp_path / "state.json") == 1
