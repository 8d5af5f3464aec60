"""The feature phone's app, emulated: one encrypted SMS per payment, balance or status request.

    python -m scripts.phone provision bundle.json
    python -m scripts.phone pay --to +919876543210 --amount 250.00 --pin 1234
    python -m scripts.phone balance --pin 1234 --send tasker --url http://127.0.0.1:8000/sms/tasker
    python -m scripts.phone status 7KQ2M9XH3D --send twilio --url http://127.0.0.1:8000/sms/twilio
    python -m scripts.phone topup --amount 500

The state file is the device bundle (sms/device_bundle.py) with the counter moved on.

The device counter is the AES-GCM nonce, so it is written back (atomically, under a lock) before
the SMS is shown or sent: a crash between two sends can waste a counter, never reuse one.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as `python scripts/phone.py`: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib
import fcntl
import json
import math
import os
import secrets
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import click
import requests
from twilio.request_validator import RequestValidator

from crypto.codec import MAX_PLAINTEXT_BYTES, MAX_UINT32, MessageTooLong, encode
from crypto.pins import is_valid_pin
from sms import gsm7, tasker
from sms.device_bundle import DeviceBundle
from sms.instructions import (
    REFERENCE,
    InvalidInstruction,
    format_balance,
    format_pay,
    format_status,
    format_top_up,
    parse,
    parse_rupees,
)

STATE_ENV = "SMSPAY_PHONE_STATE"
DEFAULT_STATE = "var/phone-state.json"
FAKE_ACCOUNT_SID = "AC" + "0" * 32  # obviously not a real Twilio account
COUNTRIES = (("+91", "IN"), ("+44", "GB"), ("+1", "US"))  # enough for the emulator's forms
F = TypeVar("F", bound=Callable[..., Any])


class Refused(click.ClickException):
    """Input the phone refuses before it uses a counter."""

    exit_code = 2


# What the phone keeps: the device bundle, its counter moved on (the same JSON object).
Device = DeviceBundle


# --- the state file -------------------------------------------------------------------------


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock beside the state file, so two commands never share a counter."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def read_state(path: Path) -> Device | None:
    """The provisioned device, or None before `provision`."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return Device.from_json(json.loads(raw))
    except ValueError as exc:
        raise click.ClickException(f"the state file {path} is damaged: {exc}") from exc


def write_state(path: Path, device: Device) -> None:
    """Replace the state file atomically: temp file in the same folder, fsync, os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)
            json.dump(device.to_json(), f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def merge(current: Device | None, bundle: Device) -> Device:
    """The bundle, but a counter never goes back for the same key id."""
    if current is not None and current.key_id == bundle.key_id:
        return replace(bundle, next_counter=max(current.next_counter, bundle.next_counter))
    return bundle


def seal_next(path: Path, plaintext: str) -> tuple[Device, int, str]:
    """Encrypt with the next counter and persist counter + 1 before returning the SMS text."""
    with locked(path):
        device = read_state(path)
        if device is None:
            raise click.ClickException(f"no device in {path}; run `provision BUNDLE.json` first")
        counter = device.next_counter
        if counter > MAX_UINT32:
            raise click.ClickException("this device key has used every counter; provision anew")
        try:
            text = encode(device.key, device.key_id, counter, device.phone, plaintext)
        except MessageTooLong as exc:
            raise Refused(f"{exc}; shorten the note") from exc
        write_state(path, replace(device, next_counter=counter + 1))
    return device, counter, text


# --- instructions ---------------------------------------------------------------------------


def now() -> int:
    """Unix seconds (a seam for tests)."""
    return int(time.time())


def check_instruction(plaintext: str) -> None:
    """Refuse what one SMS cannot carry or the service would not accept, before any counter."""
    data = plaintext.encode("utf-8")
    if len(data) > MAX_PLAINTEXT_BYTES:
        raise Refused(
            f"the instruction is {len(data)} bytes; one SMS carries at most "
            f"{MAX_PLAINTEXT_BYTES} (shorten the note)"
        )
    try:
        parse(data)
    except InvalidInstruction as exc:
        raise Refused(f"the service would refuse this instruction: {exc}") from exc


def parse_location(text: str) -> tuple[Decimal, Decimal]:
    """'12.9716,77.5946' -> (lat, lon)."""
    lat, sep, lon = text.partition(",")
    try:
        if not sep:
            raise InvalidOperation
        return Decimal(lat.strip()), Decimal(lon.strip())
    except InvalidOperation as exc:
        raise Refused(f"--location must be LAT,LON in decimal degrees, not {text!r}") from exc


def checked_pin(pin: str) -> str:
    """The PIN if it is 4 to 6 ASCII digits (the schema alone would take a longer one)."""
    if not (pin.isascii() and is_valid_pin(pin)):
        raise Refused("--pin must be 4 to 6 digits")
    return pin


def checked_reference(reference: str) -> str:
    """A transaction reference, upper-cased, exactly as the service writes them."""
    ref = reference.strip().upper()
    if not REFERENCE.fullmatch(ref):
        raise Refused(f"{reference!r} is not a transaction reference (10 letters and digits)")
    return ref


def pay_plaintext(
    payee: str, amount: str, pin: str, sent_at: int, note: str, location: str | None
) -> str:
    """The PAY text, refusing bad amounts and notes."""
    try:
        paise = parse_rupees(amount)
    except ValueError as exc:
        raise Refused(f"--amount: {exc}") from exc
    where = parse_location(location) if location else None
    try:
        return format_pay(payee.strip(), paise, checked_pin(pin), sent_at, note, where)
    except InvalidInstruction as exc:
        raise Refused(str(exc)) from exc


def segments(text: str) -> int:
    """How many SMS parts the text takes (GSM-7 160/153, else UCS-2 70/67)."""
    if gsm7.is_gsm7(text):
        size, single, part = gsm7.septets(text), 160, 153
    else:
        size, single, part = len(text.encode("utf-16-be")) // 2, 70, 67
    return 1 if size <= single else math.ceil(size / part)


# --- delivery like Tasker or Twilio ---------------------------------------------------------


@dataclass(frozen=True)
class SendOptions:
    """Where and how to deliver the SMS, if at all."""

    send: str | None
    url: str | None
    public_url: str | None
    gateway_id: str | None
    gateway_secret: str | None
    twilio_auth_token: str | None
    account_sid: str
    timeout: float

    def check(self) -> None:
        """Refuse incomplete options before a counter is used."""
        if self.send is None:
            if self.url:
                raise Refused("--url needs --send tasker or --send twilio")
            return
        if not self.url or not self.url.startswith(("http://", "https://")):
            raise Refused(f"--send {self.send} needs --url http(s)://host/sms/{self.send}")
        if self.send == "tasker" and not (self.gateway_id and self.gateway_secret):
            raise Refused("--send tasker needs --gateway-id and --gateway-secret")
        if self.send == "twilio" and not self.twilio_auth_token:
            raise Refused("--send twilio needs --twilio-auth-token")


@dataclass(frozen=True)
class Delivery:
    """The service's answer: HTTP status and the reply text, if there was one."""

    status: int
    reply: str | None
    body: str


def tasker_request(device: Device, text: str, opts: SendOptions) -> requests.PreparedRequest:
    """The signed JSON POST the Tasker profile makes."""
    assert opts.url and opts.gateway_id and opts.gateway_secret
    received_at = datetime.now().astimezone().isoformat(timespec="seconds")
    body = json.dumps({"from": device.phone, "body": text, "received_at": received_at}).encode()
    timestamp = str(now())
    secret = opts.gateway_secret.strip().encode("ascii")  # the hex string itself is the key
    headers = {
        "Content-Type": "application/json",
        "X-Gateway-Id": opts.gateway_id,
        "X-Timestamp": timestamp,
        "X-Signature": tasker.sign(secret, timestamp, body),
    }
    return requests.Request("POST", opts.url, data=body, headers=headers).prepare()


def twilio_form(device: Device, text: str, account_sid: str) -> dict[str, str]:
    """Twilio's incoming-message webhook parameters for one SMS."""
    sid = "SM" + secrets.token_hex(16)
    return {
        "ToCountry": _country(device.service_number),
        "ToState": "",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ToCity": "",
        "FromZip": "",
        "SmsSid": sid,
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": text,
        "FromCountry": _country(device.phone),
        "To": device.service_number,
        "ToZip": "",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": account_sid,
        "From": device.phone,
        "ApiVersion": "2010-04-01",
    }


def _country(number: str) -> str:
    """ISO country of a number, as Twilio fills ToCountry/FromCountry (blank if unknown here)."""
    return next((iso for prefix, iso in COUNTRIES if number.startswith(prefix)), "")


def twilio_request(device: Device, text: str, opts: SendOptions) -> requests.PreparedRequest:
    """The form POST Twilio makes, signed with the twilio SDK over the public URL."""
    assert opts.url and opts.twilio_auth_token
    form = twilio_form(device, text, opts.account_sid)
    validator = RequestValidator(opts.twilio_auth_token)
    signature = str(validator.compute_signature(opts.public_url or opts.url, form))
    headers = {
        "X-Twilio-Signature": signature,
        "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
    }
    return requests.Request("POST", opts.url, data=form, headers=headers).prepare()


def reply_of(route: str, response: requests.Response) -> str | None:
    """The reply text: JSON `reply` from the Tasker route, `<Message>` TwiML from Twilio's."""
    try:
        if route == "tasker":
            value = response.json().get("reply")
            return value if isinstance(value, str) else None
        root = ET.fromstring(response.text)
    except (ValueError, AttributeError, ET.ParseError):
        return None
    message = root.find("Message")
    return None if message is None else "".join(message.itertext())


def deliver(device: Device, text: str, opts: SendOptions) -> Delivery:
    """POST the SMS to the service as the provider would; raises ClickException if unreachable."""
    assert opts.send and opts.url
    build = tasker_request if opts.send == "tasker" else twilio_request
    try:
        with requests.Session() as session:
            request = build(device, text, opts)
            env = session.merge_environment_settings(request.url, {}, None, None, None)
            response = session.send(request, timeout=opts.timeout, **env)
    except requests.RequestException as exc:
        raise click.ClickException(
            f"could not reach {opts.url}: {type(exc).__name__}; the SMS counts as sent "
            "(its counter is used), so send a new one"
        ) from exc
    return Delivery(response.status_code, reply_of(opts.send, response), response.text)


# --- the command line -----------------------------------------------------------------------


def send_options(f: F) -> F:
    """The --send family of options, shared by pay, balance and status."""
    options = [
        click.option(
            "--send",
            type=click.Choice(["tasker", "twilio"]),
            help="Deliver the SMS to a running service as this provider would.",
        ),
        click.option("--url", help="The webhook URL, e.g. http://127.0.0.1:8000/sms/tasker."),
        click.option(
            "--public-url",
            help="The URL Twilio signs: SMSPAY_PUBLIC_BASE_URL + /sms/twilio (default: --url).",
        ),
        click.option("--gateway-id", envvar="SMSPAY_TASKER_GATEWAY_ID", help="Tasker phone id."),
        click.option(
            "--gateway-secret",
            envvar="SMSPAY_TASKER_GATEWAY_SECRET",
            help="The hex secret `gateways add-tasker` printed.",
        ),
        click.option("--twilio-auth-token", envvar="SMSPAY_TWILIO_AUTH_TOKEN"),
        click.option("--account-sid", default=FAKE_ACCOUNT_SID, show_default=True),
        click.option("--timeout", default=30.0, show_default=True, help="Seconds."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def run(state: Path, plaintext: str, send: dict[str, Any]) -> None:
    """Check, seal with the next counter, print, and optionally deliver one instruction."""
    opts = SendOptions(**send)
    opts.check()
    check_instruction(plaintext)
    device, counter, text = seal_next(state, plaintext)
    click.echo(f"SMS to {device.service_number} (key {device.key_id}, counter {counter}):")
    click.echo(text)
    parts = segments(text)
    click.echo(f"{len(text)} characters, {parts} segment{'' if parts == 1 else 's'}")
    if opts.send is None:
        return
    result = deliver(device, text, opts)
    click.echo(f"{opts.send}: HTTP {result.status}")
    if result.reply is not None:
        click.echo(f"reply: {result.reply}")
    elif result.body.strip():
        click.echo(f"body: {result.body.strip()[:500]}")
    if not 200 <= result.status < 300:
        raise click.ClickException(f"the service answered HTTP {result.status}{_hint(result)}")


def _hint(result: Delivery) -> str:
    """What a bare 403 usually means."""
    if result.status != 403:
        return ""
    return (
        " (refused before parsing: check the secret or auth token, the gateway id, the phone's"
        " clock, and for Twilio that --public-url is SMSPAY_PUBLIC_BASE_URL + /sms/twilio)"
    )


@click.group(help=__doc__.split("\n\n", 1)[0] if __doc__ else None)
@click.option(
    "--state",
    "state",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=STATE_ENV,
    default=DEFAULT_STATE,
    show_default=True,
    help=f"The phone's state file (env {STATE_ENV}).",
)
@click.pass_context
def cli(ctx: click.Context, state: Path) -> None:
    """The phone emulator."""
    ctx.obj = state


@cli.command()
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def provision(state: Path, /, bundle: Path) -> None:
    """Store a device bundle (from `flask devices provision`) in the state file."""
    try:
        fresh = Device.from_json(json.loads(bundle.read_text(encoding="utf-8")))
    except (ValueError, UnicodeDecodeError) as exc:
        raise Refused(f"{bundle} is not a device bundle: {exc}") from exc
    with locked(state):
        device = merge(read_state(state), fresh)
        write_state(state, device)
    click.echo(f"provisioned key {device.key_id} for {device.phone} in {state}")
    if device.next_counter != fresh.next_counter:
        click.echo(
            f"kept next counter {device.next_counter} (the bundle says {fresh.next_counter}; "
            "a counter never goes back)"
        )


@cli.command()
@click.option("--to", "payee", required=True, help="E.164 number or UPI id of the payee.")
@click.option("--amount", required=True, help="Rupees, e.g. 250 or 250.00.")
@click.option("--pin", required=True, prompt=True, hide_input=True, help="4 to 6 digits.")
@click.option("--note", default="", help="A short note for the payee.")
@click.option("--location", help="LAT,LON in decimal degrees.")
@send_options
@click.pass_obj
def pay(
    state: Path, /, payee: str, amount: str, pin: str, note: str, location: str | None, **send: Any
) -> None:
    """Pay someone by one encrypted SMS."""
    run(state, pay_plaintext(payee, amount, pin, now(), note, location), send)


@cli.command()
@click.option("--pin", required=True, prompt=True, hide_input=True, help="4 to 6 digits.")
@send_options
@click.pass_obj
def balance(state: Path, /, pin: str, **send: Any) -> None:
    """Ask for the wallet balance."""
    run(state, format_balance(checked_pin(pin), now()), send)


@cli.command()
@click.argument("reference")
@send_options
@click.pass_obj
def status(state: Path, /, reference: str, **send: Any) -> None:
    """Ask for the state of one of your transactions."""
    run(state, format_status(checked_reference(reference), now()), send)


@cli.command()
@click.option("--amount", required=True, help="Rupees to add, e.g. 500.")
@send_options
@click.pass_obj
def topup(state: Path, /, amount: str, **send: Any) -> None:
    """Ask for a UPI payment link that adds money to the wallet (it arrives by SMS)."""
    try:
        paise = parse_rupees(amount)
    except ValueError as exc:
        raise Refused(f"--amount: {exc}") from exc
    if paise <= 0:
        raise Refused("--amount: must be more than zero")
    run(state, format_top_up(paise, now()), send)


if __name__ == "__main__":
    cli(prog_name="phone")
