"""SQLite tables and queries for support staff (mixed into SqliteTx)."""

from __future__ import annotations

import sqlite3

STAFF_SCHEMA = ""


class SqliteStaffMixin:
    """Staff, audit and support queries over the unit of work's connection."""

    _c: sqlite3.Connection
