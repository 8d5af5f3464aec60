"""Support staff, their API tokens and the append-only audit log, over SQLite."""

from __future__ import annotations

from typing import Any

from storage.contract import Audit, Staff
from storage.errors import NotFound
from storage.models import ApiToken, AuditEntry, StaffMember
from storage.sqlite.base import SqliteBase, staff_of


class SqliteStaff(SqliteBase, Staff):
    """staff and api_tokens (tokens found by their SHA-256 hash)."""

    def insert_staff(self, member: StaffMember) -> None:
        """Add a staff member; DuplicateKey if the id or the name is taken."""
        self._insert(
            "INSERT INTO staff VALUES (?, ?, ?, ?, ?)",
            member.id, member.name, member.role.value, member.created_at, member.password_hash,
        )  # fmt: skip

    def get_staff(self, staff_id: str) -> StaffMember | None:
        """The staff member with this id, or None."""
        row = self._one("SELECT * FROM staff WHERE id = ?", staff_id)
        return staff_of(row) if row else None

    def get_staff_by_name(self, name: str) -> StaffMember | None:
        """The staff member with this name, or None."""
        row = self._one("SELECT * FROM staff WHERE name = ?", name)
        return staff_of(row) if row else None

    def staff_members(self) -> list[StaffMember]:
        """Every staff member, by name."""
        return [staff_of(r) for r in self._c.execute("SELECT * FROM staff ORDER BY name")]

    def set_staff_password(self, staff_id: str, password_hash: str) -> None:
        """Replace the console password hash; NotFound for an unknown id."""
        cur = self._c.execute(
            "UPDATE staff SET password_hash = ? WHERE id = ?", (password_hash, staff_id)
        )
        if cur.rowcount != 1:
            raise NotFound(f"staff {staff_id}")

    def insert_token(self, token: ApiToken) -> None:
        """Add an API token; DuplicateKey if its hash exists."""
        self._insert(
            "INSERT INTO api_tokens VALUES (?, ?, ?, ?, ?)",
            token.token_hash, token.prefix, token.staff_id, token.created_at, token.revoked_at,
        )  # fmt: skip

    def get_token(self, token_hash: str) -> ApiToken | None:
        """The token with this hash (revoked or not), or None."""
        row = self._one("SELECT * FROM api_tokens WHERE token_hash = ?", token_hash)
        return ApiToken(**dict(row)) if row else None

    def tokens_of(self, staff_id: str) -> list[ApiToken]:
        """One member's tokens, oldest first."""
        rows = self._c.execute(
            "SELECT * FROM api_tokens WHERE staff_id = ? ORDER BY created_at, token_hash",
            (staff_id,),
        )
        return [ApiToken(**dict(r)) for r in rows]

    def revoke_tokens(
        self, at: float, staff_id: str | None = None, prefix: str | None = None
    ) -> int:
        """Revoke the live tokens of a member and/or with a prefix; returns how many changed."""
        if staff_id is None and prefix is None:
            raise ValueError("name the staff member or the token prefix")
        sql = "UPDATE api_tokens SET revoked_at = ? WHERE revoked_at IS NULL"
        args: list[Any] = [at]
        if staff_id is not None:
            sql += " AND staff_id = ?"
            args.append(staff_id)
        if prefix is not None:
            sql += " AND prefix = ?"
            args.append(prefix)
        return self._c.execute(sql, args).rowcount


class SqliteAudit(SqliteBase, Audit):
    """audit_log; triggers in the schema refuse UPDATE and DELETE, whoever asks."""

    def insert_audit(self, entry: AuditEntry) -> None:
        """Append one entry; DuplicateKey if its id exists."""
        self._insert(
            "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?)",
            entry.id, entry.at, entry.actor, entry.action, entry.target, entry.reason,
            entry.outcome,
        )  # fmt: skip

    def audit_entries(
        self, limit: int = 50, offset: int = 0, actor: str | None = None, target: str | None = None
    ) -> list[AuditEntry]:
        """Entries (by actor and/or target, if given), newest first."""
        sql, args = "SELECT * FROM audit_log WHERE 1 = 1", list[Any]()
        if actor is not None:
            sql += " AND actor = ?"
            args.append(actor)
        if target is not None:
            sql += " AND target = ?"
            args.append(target)
        rows = self._c.execute(sql + " ORDER BY id DESC LIMIT ? OFFSET ?", (*args, limit, offset))
        return [AuditEntry(**dict(r)) for r in rows]
