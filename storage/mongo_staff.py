"""MongoDB collections, indexes and queries for support staff (mixed into MongoTx)."""

from __future__ import annotations

from typing import Any

from pymongo import IndexModel
from pymongo.client_session import ClientSession
from pymongo.database import Database

STAFF_INDEXES: dict[str, list[IndexModel]] = {}


class MongoStaffMixin:
    """Staff, audit and support queries over the unit of work's session."""

    _db: Database[dict[str, Any]]
    _s: ClientSession | None
