"""Operator use cases: users, device keys, Tasker gateways, master-key rotation."""

from __future__ import annotations

import secrets
import string

from app.bootstrap import Services
from app.services import errors
from app.services.common import ensure_account
from crypto.keys import PIN_KEY_LABEL, KeyRing, device_key_label, gateway_secret_label
from crypto.keys import generate_key as new_key
from crypto.pins import is_valid_pin, new_salt
from sms.device_bundle import DeviceBundle
from sms.numbers import is_e164, mask_phone
from storage.contract import UnitOfWork
from storage.errors import DuplicateKey
from storage.models import Device, TaskerGateway, User

GATEWAY_ID_CHARS = set(string.ascii_letters + string.digits + "-_.")
# How long a process uses a Tasker phone's secret before it reads it again (tasker_secret).
GATEWAY_SECRET_SECONDS = 60.0


def register_user(svc: Services, phone: str, name: str, pin: str) -> User:
    """Register a user with a wallet account and a PIN (kept only as a keyed hash)."""
    if not is_e164(phone):
        raise errors.InvalidInput("the phone number must be in E.164 form, e.g. +919876543210")
    if not is_valid_pin(pin):
        raise errors.InvalidInput("the PIN must be 4 to 6 digits")
    if not name.strip() or len(name) > 100:
        raise errors.InvalidInput("the name must be 1 to 100 characters")
    salt = new_salt()

    def unit(uow: UnitOfWork) -> User:
        if uow.get_user_by_phone(phone) is not None:
            raise errors.UserExists(f"{mask_phone(phone)} is registered already")
        user = User(
            id="u_" + secrets.token_hex(8),
            phone=phone,
            name=name.strip(),
            pin_salt=salt,
            pin_hash=svc.pins(uow).hash(pin, salt),
            created_at=svc.clock.now(),
        )
        uow.insert_user(user)
        ensure_account(uow, user.account)
        return user

    try:
        return svc.store.atomic(unit)
    except DuplicateKey as exc:  # a concurrent registration won the race
        raise errors.UserExists(f"{mask_phone(phone)} is registered already") from exc


def provision_device(svc: Services, phone: str) -> DeviceBundle:
    """Create a new device key for a user's phone; earlier devices of that user stop working."""
    key = new_key()

    def unit(uow: UnitOfWork) -> DeviceBundle:
        user = uow.get_user_by_phone(phone)
        if user is None:
            raise errors.UnknownUser(f"no user has the number {mask_phone(phone)}")
        uow.deactivate_devices(user.id)
        while True:
            key_id = secrets.randbelow(2**32 - 1) + 1
            if uow.get_device(key_id) is None:
                break
        wrapped = svc.keyring.wrap(key, device_key_label(key_id))
        uow.insert_device(Device(key_id, user.id, phone, wrapped, svc.clock.now()))
        return DeviceBundle(phone, key_id, key, svc.settings.service_number)

    return svc.store.atomic(unit)


def add_tasker_gateway(svc: Services, gateway_id: str) -> str:
    """Register a Tasker phone; returns its HMAC secret (hex), shown once."""
    if not (1 <= len(gateway_id) <= 64 and set(gateway_id) <= GATEWAY_ID_CHARS):
        raise errors.InvalidInput("a gateway id is 1-64 letters, digits, '-', '_' or '.'")
    secret = secrets.token_bytes(32)
    wrapped = svc.keyring.wrap(secret, gateway_secret_label(gateway_id))

    def unit(uow: UnitOfWork) -> None:
        if uow.get_gateway(gateway_id) is not None:
            raise errors.GatewayExists(f"gateway {gateway_id} exists already")
        uow.insert_gateway(TaskerGateway(gateway_id, wrapped, svc.clock.now()))

    try:
        svc.store.atomic(unit)
    except DuplicateKey as exc:
        raise errors.GatewayExists(f"gateway {gateway_id} exists already") from exc
    return secret.hex()


def tasker_secret(svc: Services, gateway_id: str) -> bytes | None:
    """The HMAC key of a registered Tasker phone, or None.

    Every request of a Tasker phone asks for it, so a process keeps it for
    GATEWAY_SECRET_SECONDS once read: its own read transaction was about 9 % of a Tasker PAY's
    CPU under load (docs/performance.md, item 33). A secret does not change once added
    (`rewrap_all` wraps the same secret under another master key); a gateway row changed or
    removed by hand is taken into account within that time. An unknown id is not kept, so a
    phone added later is taken at once, and ids that match nothing cannot fill the memory.
    """
    now = svc.clock.now()
    kept = svc.gateway_secrets.get(gateway_id)
    if kept is not None and 0 <= now - kept[1] < GATEWAY_SECRET_SECONDS:
        return kept[0]
    gateway = svc.store.read(lambda uow: uow.get_gateway(gateway_id))
    if gateway is None:
        svc.gateway_secrets.pop(gateway_id, None)
        return None
    secret = svc.keyring.unwrap(gateway.wrapped_secret, gateway_secret_label(gateway_id))
    hex_secret = secret.hex().encode("ascii")  # the form the phone holds and signs with
    svc.gateway_secrets[gateway_id] = (hex_secret, now)
    return hex_secret


def rewrap_all(svc: Services, ring: KeyRing | None = None) -> int:
    """Re-wrap every stored secret under the ring's primary master key; returns how many moved."""
    ring = ring or svc.keyring

    def unit(uow: UnitOfWork) -> int:
        moved = 0
        for d in uow.devices():
            if not ring.is_current(d.wrapped_key):
                uow.set_device_key(d.key_id, ring.rewrap(d.wrapped_key, device_key_label(d.key_id)))
                moved += 1
        for g in uow.gateways():
            if not ring.is_current(g.wrapped_secret):
                label = gateway_secret_label(g.id)
                uow.set_gateway_secret(g.id, ring.rewrap(g.wrapped_secret, label))
                moved += 1
        pin_key = uow.get_meta(PIN_KEY_LABEL)
        if pin_key is not None and not ring.is_current(pin_key):
            uow.set_meta(PIN_KEY_LABEL, ring.rewrap(pin_key, PIN_KEY_LABEL))
            moved += 1
        return moved

    return svc.store.atomic(unit)
