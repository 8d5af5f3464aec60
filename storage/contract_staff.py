"""The part of the storage contract that serves support staff: staff accounts, tokens, the
audit log and the queries behind the console (kept apart so the core contract stays small)."""

from __future__ import annotations

from typing import Protocol


class StaffTx(Protocol):
    """Staff, audit and support queries inside one unit of work."""
