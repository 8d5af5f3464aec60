"""Users, their phones' device keys and the Tasker phones that forward SMS, in MongoDB."""

from __future__ import annotations

from typing import Any

from bson import Binary
from pymongo import ASCENDING

from crypto.replay import ReplayWindow
from storage.contract.users import Devices, TaskerGateways, Users
from storage.models import Device, TaskerGateway, User
from storage.mongo import documents as docs
from storage.mongo.base import MongoBase


class MongoUsers(MongoBase, Users):
    """`users`: one document per user, _id the user id; the phone is unique (phone_unique)."""

    def insert_user(self, user: User) -> None:
        """Add a user; DuplicateKey if the id or the phone number is taken."""
        self._insert("users", docs.user_doc(user))

    def get_user(self, user_id: str) -> User | None:
        """The user with this id, or None."""
        d = self._find("users", {"_id": user_id})
        return docs.user(d) if d else None

    def get_user_by_phone(self, phone: str) -> User | None:
        """The user registered on this number, or None."""
        d = self._find("users", {"phone": phone})
        return docs.user(d) if d else None

    def set_pin_state(self, user_id: str, failed_attempts: int, locked_until: float | None) -> None:
        """Record wrong-PIN attempts and the lockout end; NotFound for an unknown user."""
        self._update(
            "users",
            {"_id": user_id},
            {"$set": {"failed_pin_attempts": failed_attempts, "locked_until": locked_until}},
        )

    def set_usual_area(self, user_id: str, lat: float | None, lon: float | None) -> None:
        """Set (or clear) the usual area staff gave; NotFound for an unknown user."""
        self._update("users", {"_id": user_id}, {"$set": {"area_lat": lat, "area_lon": lon}})


class MongoDevices(MongoBase, Devices):
    """`devices`: _id the key id; the replay window is two fields of the document."""

    def insert_device(self, device: Device) -> None:
        """Add a device key; DuplicateKey if the key id is taken."""
        self._insert("devices", docs.device_doc(device))

    def get_device(self, key_id: int) -> Device | None:
        """The device with this key id, or None."""
        d = self._find("devices", {"_id": key_id})
        return docs.device(d) if d else None

    def sender(self, phone: str, key_id: int) -> tuple[User, Device | None] | None:
        """The user on `phone` with the device `key_id` joined by `$lookup`: one round trip."""
        pipeline: list[dict[str, Any]] = [
            {"$match": {"phone": phone}},
            {"$limit": 1},
            {"$lookup": {"from": "devices", "pipeline": [{"$match": {"_id": key_id}}],
                         "as": "_device"}},
        ]  # fmt: skip
        found = list(self._db.users.aggregate(pipeline, session=self._s))
        if not found:
            return None
        d = found[0]
        devices = d.pop("_device")
        return docs.user(d), docs.device(devices[0]) if devices else None

    def devices(self) -> list[Device]:
        """Every device, by key id."""
        return [docs.device(d) for d in self._db.devices.find({}, session=self._s).sort("_id")]

    def devices_of(self, user_id: str) -> list[Device]:
        """One user's devices, oldest first."""
        found = self._db.devices.find({"user_id": user_id}, session=self._s)
        return [docs.device(d) for d in found.sort([("created_at", ASCENDING), ("_id", ASCENDING)])]

    def save_window(self, key_id: int, window: ReplayWindow, seen_at: float) -> None:
        """Store the replay window after an accepted frame; NotFound for an unknown key."""
        self._update(
            "devices",
            {"_id": key_id},
            {"$set": {**docs.window_fields(window), "last_seen_at": seen_at}},
        )

    def set_device_key(self, key_id: int, wrapped_key: bytes) -> None:
        """Replace the wrapped key (master-key rotation); NotFound for an unknown key."""
        self._update("devices", {"_id": key_id}, {"$set": {"wrapped_key": Binary(wrapped_key)}})

    def deactivate_devices(self, user_id: str) -> int:
        """Deactivate every active device of a user; returns how many changed."""
        result = self._db.devices.update_many(
            {"user_id": user_id, "active": True}, {"$set": {"active": False}}, session=self._s
        )
        return result.modified_count


class MongoTaskerGateways(MongoBase, TaskerGateways):
    """`tasker_gateways`: _id the gateway id, the HMAC secret wrapped."""

    def insert_gateway(self, gateway: TaskerGateway) -> None:
        """Add a forwarding phone; DuplicateKey if its id is taken."""
        self._insert("tasker_gateways", docs.gateway_doc(gateway))

    def get_gateway(self, gateway_id: str) -> TaskerGateway | None:
        """The forwarding phone with this id, or None."""
        d = self._find("tasker_gateways", {"_id": gateway_id})
        return docs.gateway(d) if d else None

    def gateways(self) -> list[TaskerGateway]:
        """Every forwarding phone, by id."""
        found = self._db.tasker_gateways.find({}, session=self._s).sort("_id")
        return [docs.gateway(d) for d in found]

    def set_gateway_secret(self, gateway_id: str, wrapped_secret: bytes) -> None:
        """Replace the wrapped secret; NotFound for an unknown id."""
        self._update(
            "tasker_gateways",
            {"_id": gateway_id},
            {"$set": {"wrapped_secret": Binary(wrapped_secret)}},
        )

    def touch_gateway(self, gateway_id: str, seen_at: float) -> None:
        """Record when the phone was last heard from; NotFound for an unknown id."""
        self._update("tasker_gateways", {"_id": gateway_id}, {"$set": {"last_seen_at": seen_at}})
