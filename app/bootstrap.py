"""The composition root: builds the store, key ring, PIN hasher and clock from settings.

Everything is created lazily, on first use in the process that uses it, so nothing connects at
import time and every gunicorn worker opens its own database connection after fork.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from app.config import Settings
from crypto.keys import PIN_KEY_LABEL, KeyRing, MasterKey, generate_key
from crypto.pins import PinHasher
from storage.contract import Store, Tx

log = logging.getLogger(__name__)
MASTER_KEY_FILE = "master.key"
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
    _pins: PinHasher | None = field(default=None, init=False, repr=False)

    @cached_property
    def store(self) -> Store:
        """The configured storage backend."""
        return self.store_override or build_store(self.settings)

    @cached_property
    def keyring(self) -> KeyRing:
        """Master keys that wrap device keys, gateway secrets and the PIN key."""
        return load_keyring(self.settings)

    def pins(self, tx: Tx) -> PinHasher:
        """PIN hasher under the installation's PIN key, read (or created) in the caller's unit
        of work the first time, then kept for the life of the process."""
        if self._pins is None:
            wrapped = tx.get_meta(PIN_KEY_LABEL)
            if wrapped is None:
                fresh = self.keyring.wrap(generate_key(), PIN_KEY_LABEL)
                wrapped = tx.put_meta_if_absent(PIN_KEY_LABEL, fresh)
            self._pins = PinHasher(self.keyring.unwrap(wrapped, PIN_KEY_LABEL))
        return self._pins

    @cached_property
    def tz(self) -> ZoneInfo:
        """Local time zone for daily limits and times in SMS."""
        return ZoneInfo(self.settings.timezone)
