"""Support staff and admins, their API tokens, and the append-only audit log."""

from __future__ import annotations

from typing import Protocol

from storage.models import ApiToken, AuditEntry, StaffMember


class Staff(Protocol):
    """Staff members (a name is unique) and their tokens (found by hash, never stored plain)."""

    def insert_staff(self, member: StaffMember) -> None:
        """Add a staff member; DuplicateKey if the id or the name is taken."""
        ...

    def get_staff(self, staff_id: str) -> StaffMember | None:
        """The staff member with this id, or None."""
        ...

    def get_staff_by_name(self, name: str) -> StaffMember | None:
        """The staff member with this name, or None."""
        ...

    def staff_members(self) -> list[StaffMember]:
        """Every staff member, by name."""
        ...

    def set_staff_password(self, staff_id: str, password_hash: str) -> None:
        """Replace the console password hash; NotFound for an unknown id."""
        ...

    def insert_token(self, token: ApiToken) -> None:
        """Add an API token; DuplicateKey if its hash exists."""
        ...

    def get_token(self, token_hash: str) -> ApiToken | None:
        """The token with this SHA-256 hash (revoked or not), or None."""
        ...

    def tokens_of(self, staff_id: str) -> list[ApiToken]:
        """One member's tokens, oldest first."""
        ...

    def revoke_tokens(
        self, at: float, staff_id: str | None = None, prefix: str | None = None
    ) -> int:
        """Revoke the live tokens of a member and/or with a prefix; returns how many changed."""
        ...


class Audit(Protocol):
    """Staff actions: inserted, never changed."""

    def insert_audit(self, entry: AuditEntry) -> None:
        """Append one entry; DuplicateKey if its id exists."""
        ...

    def audit_entries(
        self, limit: int = 50, offset: int = 0, actor: str | None = None, target: str | None = None
    ) -> list[AuditEntry]:
        """Entries (by actor and/or target, if given), newest first."""
        ...
