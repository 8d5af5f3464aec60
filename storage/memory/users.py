"""Users, their phones' device keys and the Tasker phones, in memory."""

from __future__ import annotations

from dataclasses import replace

from crypto.replay import ReplayWindow
from storage.errors import DuplicateKey, NotFound
from storage.memory.tables import Part
from storage.models import Device, TaskerGateway, User


class UsersPart(Part):
    """`Users`, `Devices` and `TaskerGateways` of the contract."""

    # users
    def insert_user(self, user: User) -> None:
        t = self._w()
        if user.id in t.users:
            raise DuplicateKey(f"user {user.id}")
        if self.get_user_by_phone(user.phone) is not None:
            raise DuplicateKey(f"user phone {user.phone}")
        t.users[user.id] = user

    def get_user(self, user_id: str) -> User | None:
        return self._t.users.get(user_id)

    def get_user_by_phone(self, phone: str) -> User | None:
        return next((u for u in self._t.users.values() if u.phone == phone), None)

    def set_pin_state(self, user_id: str, failed_attempts: int, locked_until: float | None) -> None:
        t = self._w()
        user = t.users.get(user_id)
        if user is None:
            raise NotFound(f"user {user_id}")
        t.users[user_id] = replace(
            user, failed_pin_attempts=failed_attempts, locked_until=locked_until
        )

    def set_usual_area(self, user_id: str, lat: float | None, lon: float | None) -> None:
        t = self._w()
        user = t.users.get(user_id)
        if user is None:
            raise NotFound(f"user {user_id}")
        t.users[user_id] = replace(user, area_lat=lat, area_lon=lon)

    # devices
    def insert_device(self, device: Device) -> None:
        t = self._w()
        if device.key_id in t.devices:
            raise DuplicateKey(f"device {device.key_id}")
        t.devices[device.key_id] = device

    def get_device(self, key_id: int) -> Device | None:
        return self._t.devices.get(key_id)

    def sender(self, phone: str, key_id: int) -> tuple[User, Device | None] | None:
        user = self.get_user_by_phone(phone)
        return None if user is None else (user, self.get_device(key_id))

    def devices(self) -> list[Device]:
        return sorted(self._t.devices.values(), key=lambda d: d.key_id)

    def devices_of(self, user_id: str) -> list[Device]:
        mine = [d for d in self._t.devices.values() if d.user_id == user_id]
        return sorted(mine, key=lambda d: (d.created_at, d.key_id))

    def _device(self, key_id: int) -> Device:
        device = self._w().devices.get(key_id)
        if device is None:
            raise NotFound(f"device {key_id}")
        return device

    def save_window(self, key_id: int, window: ReplayWindow, seen_at: float) -> None:
        device = self._device(key_id)
        self._w().devices[key_id] = replace(device, window=window, last_seen_at=seen_at)

    def set_device_key(self, key_id: int, wrapped_key: bytes) -> None:
        device = self._device(key_id)
        self._w().devices[key_id] = replace(device, wrapped_key=wrapped_key)

    def deactivate_devices(self, user_id: str) -> int:
        t = self._w()
        live = [d for d in t.devices.values() if d.user_id == user_id and d.active]
        for d in live:
            t.devices[d.key_id] = replace(d, active=False)
        return len(live)

    # Tasker gateways
    def insert_gateway(self, gateway: TaskerGateway) -> None:
        t = self._w()
        if gateway.id in t.tasker_gateways:
            raise DuplicateKey(f"gateway {gateway.id}")
        t.tasker_gateways[gateway.id] = gateway

    def get_gateway(self, gateway_id: str) -> TaskerGateway | None:
        return self._t.tasker_gateways.get(gateway_id)

    def gateways(self) -> list[TaskerGateway]:
        return sorted(self._t.tasker_gateways.values(), key=lambda g: g.id)

    def _gateway(self, gateway_id: str) -> TaskerGateway:
        gateway = self._w().tasker_gateways.get(gateway_id)
        if gateway is None:
            raise NotFound(f"gateway {gateway_id}")
        return gateway

    def set_gateway_secret(self, gateway_id: str, wrapped_secret: bytes) -> None:
        gateway = self._gateway(gateway_id)
        self._w().tasker_gateways[gateway_id] = replace(gateway, wrapped_secret=wrapped_secret)

    def touch_gateway(self, gateway_id: str, seen_at: float) -> None:
        gateway = self._gateway(gateway_id)
        self._w().tasker_gateways[gateway_id] = replace(gateway, last_seen_at=seen_at)
