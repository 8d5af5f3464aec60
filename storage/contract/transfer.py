"""Small named values, and the whole-store export and import (storage/transfer.py)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from storage.models import Record


class Meta(Protocol):
    """Small named values, e.g. the wrapped PIN key."""

    def get_meta(self, key: str) -> bytes | None:
        """The value under `key`, or None."""
        ...

    def put_meta_if_absent(self, key: str, value: bytes) -> bytes:
        """Store `value` unless the key has one; returns the value that is stored (first wins)."""
        ...

    def set_meta(self, key: str, value: bytes) -> None:
        """Store or replace the value under `key`."""
        ...


class Transfer(Protocol):
    """Records of one kind (storage/models.py `RECORDS`), for `db export` and `db import`."""

    def count(self, kind: str) -> int:
        """How many records of this kind the store holds; ValueError for an unknown kind."""
        ...

    def dump(self, kind: str) -> Iterator[Record]:
        """Every record of this kind, in a stable order the import reproduces."""
        ...

    def load(self, kind: str, records: Sequence[Record]) -> None:
        """Insert records as they are (balances included); generated ids made anew, in order."""
        ...
