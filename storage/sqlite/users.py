"""Users, their device keys and the Tasker phones, over SQLite."""

from __future__ import annotations

from crypto.replay import ReplayWindow
from storage.contract import Devices, TaskerGateways, Users
from storage.models import Device, TaskerGateway, User
from storage.sqlite.base import SqliteBase, device_of, window_bytes

# `sender`: the users columns, then the devices columns, each under its table's column names
_USER_COLUMNS = ("id", "phone", "name", "pin_salt", "pin_hash", "created_at",
                 "failed_pin_attempts", "locked_until", "area_lat", "area_lon")  # fmt: skip
_DEVICE_COLUMNS = ("key_id", "user_id", "phone", "wrapped_key", "created_at", "window_highest",
                   "window_bitmap", "last_seen_at", "active")  # fmt: skip
_SENDER = (
    "SELECT "
    + ", ".join([*(f"u.{c}" for c in _USER_COLUMNS), *(f"d.{c}" for c in _DEVICE_COLUMNS)])
    + " FROM users u LEFT JOIN devices d ON d.key_id = ?2 WHERE u.phone = ?1"
)


class SqliteUsers(SqliteBase, Users):
    """The users table; the phone number's uniqueness is the table's."""

    def insert_user(self, user: User) -> None:
        """Add a user; DuplicateKey if the id or the phone number is taken."""
        self._insert(
            "INSERT INTO users (id, phone, name, pin_salt, pin_hash, created_at,"
            " failed_pin_attempts, locked_until, area_lat, area_lon)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            user.id, user.phone, user.name, user.pin_salt, user.pin_hash, user.created_at,
            user.failed_pin_attempts, user.locked_until, user.area_lat, user.area_lon,
        )  # fmt: skip

    def get_user(self, user_id: str) -> User | None:
        """The user with this id, or None."""
        row = self._one("SELECT * FROM users WHERE id = ?", user_id)
        return User(**dict(row)) if row else None

    def get_user_by_phone(self, phone: str) -> User | None:
        """The user registered on this number, or None."""
        row = self._one("SELECT * FROM users WHERE phone = ?", phone)
        return User(**dict(row)) if row else None

    def set_pin_state(self, user_id: str, failed_attempts: int, locked_until: float | None) -> None:
        """Record wrong-PIN attempts and the lockout end; NotFound for an unknown user."""
        self._update(
            "UPDATE users SET failed_pin_attempts = ?, locked_until = ? WHERE id = ?",
            failed_attempts, locked_until, user_id,
        )  # fmt: skip

    def set_usual_area(self, user_id: str, lat: float | None, lon: float | None) -> None:
        """Set (or clear) the usual area staff gave; NotFound for an unknown user."""
        self._update("UPDATE users SET area_lat = ?, area_lon = ? WHERE id = ?", lat, lon, user_id)


class SqliteDevices(SqliteBase, Devices):
    """The devices table: wrapped keys and replay windows (highest counter + 64-bit bitmap)."""

    def insert_device(self, device: Device) -> None:
        """Add a device key; DuplicateKey if the key id is taken."""
        self._insert(
            "INSERT INTO devices VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            device.key_id, device.user_id, device.phone, device.wrapped_key, device.created_at,
            device.window.highest, window_bytes(device.window), device.last_seen_at,
            device.active,
        )  # fmt: skip

    def get_device(self, key_id: int) -> Device | None:
        """The device with this key id, or None."""
        row = self._one("SELECT * FROM devices WHERE key_id = ?", key_id)
        return device_of(row) if row else None

    def sender(self, phone: str, key_id: int) -> tuple[User, Device | None] | None:
        """The user on `phone` (by its unique index) and the device `key_id` (by its key) in
        one statement: no row when no user has the number, NULLs for a missing device."""
        row = self._c.execute(_SENDER, (phone, key_id)).fetchone()
        if row is None:
            return None
        split = len(_USER_COLUMNS)
        user = User(**dict(zip(_USER_COLUMNS, row[:split], strict=True)))
        device = dict(zip(_DEVICE_COLUMNS, row[split:], strict=True))
        return user, None if device["key_id"] is None else device_of(device)

    def devices(self) -> list[Device]:
        """Every device, by key id."""
        return [device_of(r) for r in self._c.execute("SELECT * FROM devices ORDER BY key_id")]

    def devices_of(self, user_id: str) -> list[Device]:
        """One user's devices, oldest first."""
        rows = self._c.execute(
            "SELECT * FROM devices WHERE user_id = ? ORDER BY created_at, key_id", (user_id,)
        )
        return [device_of(r) for r in rows]

    def save_window(self, key_id: int, window: ReplayWindow, seen_at: float) -> None:
        """Store the replay window after an accepted frame; NotFound for an unknown key."""
        self._update(
            "UPDATE devices SET window_highest = ?, window_bitmap = ?, last_seen_at = ?"
            " WHERE key_id = ?",
            window.highest, window_bytes(window), seen_at, key_id,
        )  # fmt: skip

    def set_device_key(self, key_id: int, wrapped_key: bytes) -> None:
        """Replace the wrapped key; NotFound for an unknown key."""
        self._update("UPDATE devices SET wrapped_key = ? WHERE key_id = ?", wrapped_key, key_id)

    def deactivate_devices(self, user_id: str) -> int:
        """Deactivate every active device of a user; returns how many changed."""
        cur = self._c.execute(
            "UPDATE devices SET active = 0 WHERE user_id = ? AND active = 1", (user_id,)
        )
        return cur.rowcount


class SqliteTaskerGateways(SqliteBase, TaskerGateways):
    """The tasker_gateways table: forwarding phones and their wrapped HMAC secrets."""

    def insert_gateway(self, gateway: TaskerGateway) -> None:
        """Add a forwarding phone; DuplicateKey if its id is taken."""
        self._insert(
            "INSERT INTO tasker_gateways VALUES (?, ?, ?, ?)",
            gateway.id, gateway.wrapped_secret, gateway.created_at, gateway.last_seen_at,
        )  # fmt: skip

    def get_gateway(self, gateway_id: str) -> TaskerGateway | None:
        """The forwarding phone with this id, or None."""
        row = self._one("SELECT * FROM tasker_gateways WHERE id = ?", gateway_id)
        return TaskerGateway(**dict(row)) if row else None

    def gateways(self) -> list[TaskerGateway]:
        """Every forwarding phone, by id."""
        rows = self._c.execute("SELECT * FROM tasker_gateways ORDER BY id")
        return [TaskerGateway(**dict(r)) for r in rows]

    def set_gateway_secret(self, gateway_id: str, wrapped_secret: bytes) -> None:
        """Replace the wrapped secret; NotFound for an unknown id."""
        self._update(
            "UPDATE tasker_gateways SET wrapped_secret = ? WHERE id = ?", wrapped_secret, gateway_id
        )

    def touch_gateway(self, gateway_id: str, seen_at: float) -> None:
        """Record when the phone was last heard from; NotFound for an unknown id."""
        self._update(
            "UPDATE tasker_gateways SET last_seen_at = ? WHERE id = ?", seen_at, gateway_id
        )
