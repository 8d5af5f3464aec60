"""The composition root: builds the store, payment gateway, SMS channel, key ring, PIN hasher
and clock from settings.

Everything is created lazily, on first use in the process that uses it, so nothing connects at
import time and every gunicorn worker opens its own database connection after fork.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from app.config import Settings
from crypto.keys import PIN_KEY_LABEL, KeyRing, LastSeenKeys, MasterKey, generate_key
from crypto.pins import PinHasher
from gateway_clients.base import PaymentGateway
from sms.channels import SmsChannel
from storage.contract import Store, UnitOfWork

log = logging.getLogger(__name__)
MASTER_KEY_FILE = "master.key"
SANDBOX_WEBHOOK_SECRET_FILE = "sandbox-webhook.secret"
NEXT_MASTER_KEY_FILE = "master.key.next"


class Clock(Protocol):
    """Where time comes from (tests inject a fake)."""

    def now(self) -> float: ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        """Unix time in seconds."""
        return time.time()


def build_store(settings: Settings) -> Store:
    """MongoDB when SMSPAY_MONGODB_URI is set, else the embedded SQLite file."""
    if settings.mongodb_uri:
        from storage.mongo import MongoStore

        return MongoStore(settings.mongodb_uri)
    from storage.sqlite import SqliteStore

    return SqliteStore(settings.data_path / "smspay.sqlite3")


def _read_key_file(path: Path) -> MasterKey | None:
    try:
        return MasterKey.from_b64(path.read_text())
    except FileNotFoundError:
        return None


def write_key_file(path: Path, key: MasterKey) -> bool:
    """Create a key file readable only by its owner; False if it exists already."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(key.to_b64() + "\n")
        f.flush()
        os.fsync(f.fileno())
    return True


def dev_secret(path: Path) -> str:
    """A random secret kept in a private file, made on first use (development only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return path.read_text().strip()


def build_gateway(settings: Settings, clock: Clock) -> PaymentGateway:
    """The configured payout rail; the sandbox unless told otherwise."""
    if settings.gateway == "razorpay":
        from gateway_clients.razorpay import RazorpayGateway

        return RazorpayGateway(
            settings.razorpay_key_id,
            settings.razorpay_key_secret,
            settings.razorpayx_account_number,
            settings.razorpay_webhook_secret,
            validate_payees=bool(settings.razorpay_validate_payees),
        )
    if settings.gateway == "cashfree":
        from gateway_clients.cashfree import CashfreeGateway

        return CashfreeGateway(
            settings.cashfree_client_id,
            settings.cashfree_client_secret,
            base_url=settings.cashfree_base_url,
        )
    from gateway_clients.sandbox import SandboxFaults, SandboxGateway

    secret = settings.razorpay_webhook_secret or dev_secret(
        settings.data_path / SANDBOX_WEBHOOK_SECRET_FILE
    )
    return SandboxGateway(
        settings.data_path / "sandbox-gateway.sqlite3",
        secret,
        settings.sandbox_webhook_url,
        settings.sandbox_settle_seconds,
        clock=clock.now,
        faults=SandboxFaults(
            settings.sandbox_fail_percent,
            settings.sandbox_lost_percent,
            settings.sandbox_fault_seed,
        ),
    )


def build_sms_channel(settings: Settings) -> SmsChannel:
    """Twilio when configured so; otherwise the log (development: nothing is sent)."""
    if settings.sms_channel == "twilio":
        from sms.twilio_sender import TwilioChannel

        callback = settings.public_base_url.rstrip("/")
        return TwilioChannel(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            from_number=settings.twilio_from,
            messaging_service_sid=settings.twilio_messaging_service_sid,
            status_callback_url=callback + "/sms/twilio/status" if callback else "",
        )
    from sms.log_channel import LogChannel

    return LogChannel()


def load_keyring(settings: Settings) -> KeyRing:
    """The master key from SMSPAY_MASTER_KEY, or the development key file under DATA_DIR."""
    previous = [MasterKey.from_b64(k) for k in settings.master_key_previous.split(",") if k.strip()]
    if settings.master_key:
        return KeyRing(MasterKey.from_b64(settings.master_key), previous)
    path = settings.data_path / MASTER_KEY_FILE
    key = _read_key_file(path)
    if key is None:
        if write_key_file(path, MasterKey(generate_key())):
            log.warning(
                "generated a development master key in %s; production must set SMSPAY_MASTER_KEY",
                path,
            )
        key = _read_key_file(path)
        assert key is not None
    pending = _read_key_file(settings.data_path / NEXT_MASTER_KEY_FILE)
    if pending is not None:  # a rotation was interrupted: both keys may be in use
        previous.append(pending)
    return KeyRing(key, previous)


@dataclass
class Services:
    """Everything the service layer needs, built once per process."""

    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    store_override: Store | None = None
    gateway_override: PaymentGateway | None = None
    sms_channel_override: SmsChannel | None = None
    _pins: PinHasher | None = field(default=None, init=False, repr=False)

    @cached_property
    def store(self) -> Store:
        """The configured storage backend."""
        return self.store_override or build_store(self.settings)

    @cached_property
    def gateway(self) -> PaymentGateway:
        """The payout rail (Razorpay, Cashfree or the sandbox)."""
        return self.gateway_override or build_gateway(self.settings, self.clock)

    @cached_property
    def sms_channel(self) -> SmsChannel:
        """The channel the worker sends status SMS through (Tasker phones pull theirs)."""
        return self.sms_channel_override or build_sms_channel(self.settings)

    @cached_property
    def keyring(self) -> KeyRing:
        """Master keys that wrap device keys, gateway secrets and the PIN key."""
        return load_keyring(self.settings)

    def pins(self, uow: UnitOfWork) -> PinHasher:
        """PIN hasher under the installation's PIN key, read (or created) in the caller's unit
        of work the first time, then kept for the life of the process."""
        if self._pins is None:
            wrapped = uow.get_meta(PIN_KEY_LABEL)
            if wrapped is None:
                fresh = self.keyring.wrap(generate_key(), PIN_KEY_LABEL)
                wrapped = uow.put_meta_if_absent(PIN_KEY_LABEL, fresh)
            self._pins = PinHasher(self.keyring.unwrap(wrapped, PIN_KEY_LABEL))
        return self._pins

    @cached_property
    def device_keys(self) -> LastSeenKeys:
        """Each device's wrapped key as last read here: SMS are decrypted before their unit of
        work with it (app/services/inbound.py), and checked against the device row inside."""
        return LastSeenKeys()

    @cached_property
    def gateway_secrets(self) -> dict[str, tuple[bytes, float]]:
        """Each registered Tasker phone's secret as this process last read it, and when
        (app/services/admin.py's tasker_secret uses it for GATEWAY_SECRET_SECONDS)."""
        return {}

    @cached_property
    def gateway_touches(self) -> dict[str, float]:
        """When this process last wrote each Tasker phone's `last_seen_at` from an SMS it
        forwarded (committed): app/services/inbound.py skips the write for GATEWAY_TOUCH_SECONDS."""
        return {}

    @cached_property
    def tz(self) -> ZoneInfo:
        """Local time zone for daily limits and times in SMS."""
        return ZoneInfo(self.settings.timezone)
