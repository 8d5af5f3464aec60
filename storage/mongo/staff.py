"""Support staff, their API tokens and the append-only audit log, in MongoDB."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING

from storage.contract.staff import Audit, Staff
from storage.models import ApiToken, AuditEntry, StaffMember
from storage.mongo import documents as docs
from storage.mongo.base import MongoBase


class MongoStaff(MongoBase, Staff):
    """`staff` (the name unique) and `api_tokens` (_id the token's SHA-256)."""

    def insert_staff(self, member: StaffMember) -> None:
        """Add a staff member; DuplicateKey if the id or the name is taken."""
        self._insert("staff", docs.staff_doc(member))

    def get_staff(self, staff_id: str) -> StaffMember | None:
        """The staff member with this id, or None."""
        d = self._find("staff", {"_id": staff_id})
        return docs.staff_member(d) if d else None

    def get_staff_by_name(self, name: str) -> StaffMember | None:
        """The staff member with this name, or None."""
        d = self._find("staff", {"name": name})
        return docs.staff_member(d) if d else None

    def staff_members(self) -> list[StaffMember]:
        """Every staff member, by name."""
        return [docs.staff_member(d) for d in self._db.staff.find({}, session=self._s).sort("name")]

    def set_staff_password(self, staff_id: str, password_hash: str) -> None:
        """Replace the console password hash; NotFound for an unknown id."""
        self._update("staff", {"_id": staff_id}, {"$set": {"password_hash": password_hash}})

    def insert_token(self, token: ApiToken) -> None:
        """Add an API token; DuplicateKey if its hash exists."""
        self._insert("api_tokens", docs.token_doc(token))

    def get_token(self, token_hash: str) -> ApiToken | None:
        """The token with this hash (revoked or not), or None."""
        d = self._find("api_tokens", {"_id": token_hash})
        return docs.token(d) if d else None

    def tokens_of(self, staff_id: str) -> list[ApiToken]:
        """One member's tokens, oldest first."""
        found = self._db.api_tokens.find({"staff_id": staff_id}, session=self._s)
        return [docs.token(d) for d in found.sort([("created_at", ASCENDING), ("_id", ASCENDING)])]

    def revoke_tokens(
        self, at: float, staff_id: str | None = None, prefix: str | None = None
    ) -> int:
        """Revoke the live tokens of a member and/or with a prefix; returns how many changed."""
        if staff_id is None and prefix is None:
            raise ValueError("name the staff member or the token prefix")
        query: dict[str, Any] = {"revoked_at": None}
        if staff_id is not None:
            query["staff_id"] = staff_id
        if prefix is not None:
            query["prefix"] = prefix
        result = self._db.api_tokens.update_many(
            query, {"$set": {"revoked_at": at}}, session=self._s
        )
        return result.modified_count


class MongoAudit(MongoBase, Audit):
    """`audit_log`: an entry's _id sorts by time, so newest first is descending _id."""

    def insert_audit(self, entry: AuditEntry) -> None:
        """Append one entry; DuplicateKey if its id exists."""
        self._insert("audit_log", docs.audit_doc(entry))

    def audit_entries(
        self, limit: int = 50, offset: int = 0, actor: str | None = None, target: str | None = None
    ) -> list[AuditEntry]:
        """Entries (by actor and/or target, if given), newest first."""
        query: dict[str, Any] = {}
        if actor is not None:
            query["actor"] = actor
        if target is not None:
            query["target"] = target
        found = self._db.audit_log.find(query, session=self._s).sort("_id", DESCENDING)
        return [docs.audit(d) for d in found.skip(offset).limit(limit)]
