"""Users, their phones' device keys, and the Tasker phones that forward SMS."""

from __future__ import annotations

from typing import Protocol

from crypto.replay import ReplayWindow
from storage.models import Device, TaskerGateway, User


class Users(Protocol):
    """Registered people: a phone number is unique; a PIN is kept only as a keyed hash."""

    def insert_user(self, user: User) -> None:
        """Add a user; DuplicateKey if the id or the phone number is taken."""
        ...

    def get_user(self, user_id: str) -> User | None:
        """The user with this id, or None."""
        ...

    def get_user_by_phone(self, phone: str) -> User | None:
        """The user registered on this E.164 number, or None."""
        ...

    def set_pin_state(self, user_id: str, failed_attempts: int, locked_until: float | None) -> None:
        """Record wrong-PIN attempts and the lockout end; NotFound for an unknown user."""
        ...

    def set_usual_area(self, user_id: str, lat: float | None, lon: float | None) -> None:
        """Set (or, with None, clear) the usual area staff gave; NotFound for an unknown user."""
        ...


class Devices(Protocol):
    """Phones' encryption keys, stored wrapped, each with its replay window."""

    def insert_device(self, device: Device) -> None:
        """Add a device key; DuplicateKey if the key id is taken."""
        ...

    def get_device(self, key_id: int) -> Device | None:
        """The device with this key id (active or not), or None."""
        ...

    def sender(self, phone: str, key_id: int) -> tuple[User, Device | None] | None:
        """`get_user_by_phone(phone)` and `get_device(key_id)` read together, what an SMS's
        frame is checked against first (SQLite: one statement inside the writers' lock;
        MongoDB: one round trip). None when no user is registered on `phone`: the device is
        then not looked up. The device is returned whoever owns it; the caller checks."""
        ...

    def devices(self) -> list[Device]:
        """Every device, by key id."""
        ...

    def devices_of(self, user_id: str) -> list[Device]:
        """One user's devices, oldest first."""
        ...

    def save_window(self, key_id: int, window: ReplayWindow, seen_at: float) -> None:
        """Store the replay window after a frame was accepted; NotFound for an unknown key."""
        ...

    def set_device_key(self, key_id: int, wrapped_key: bytes) -> None:
        """Replace the wrapped key (master-key rotation); NotFound for an unknown key."""
        ...

    def deactivate_devices(self, user_id: str) -> int:
        """Deactivate every active device of a user; returns how many changed."""
        ...


class TaskerGateways(Protocol):
    """Android phones that forward SMS, each with its HMAC secret stored wrapped."""

    def insert_gateway(self, gateway: TaskerGateway) -> None:
        """Add a forwarding phone; DuplicateKey if its id is taken."""
        ...

    def get_gateway(self, gateway_id: str) -> TaskerGateway | None:
        """The forwarding phone with this id, or None."""
        ...

    def gateways(self) -> list[TaskerGateway]:
        """Every forwarding phone, by id."""
        ...

    def set_gateway_secret(self, gateway_id: str, wrapped_secret: bytes) -> None:
        """Replace the wrapped secret; NotFound for an unknown id."""
        ...

    def touch_gateway(self, gateway_id: str, seen_at: float) -> None:
        """Record when the phone was last heard from; NotFound for an unknown id."""
        ...
