"""Support staff, their API tokens and the append-only audit log, in memory."""

from __future__ import annotations

from dataclasses import replace

from storage.errors import DuplicateKey, NotFound
from storage.memory.tables import Part
from storage.models import ApiToken, AuditEntry, StaffMember


class StaffPart(Part):
    """`Staff` and `Audit` of the contract; audit entries are only ever added."""

    def insert_staff(self, member: StaffMember) -> None:
        t = self._w()
        if member.id in t.staff or self.get_staff_by_name(member.name) is not None:
            raise DuplicateKey(f"staff {member.id} {member.name}")
        t.staff[member.id] = member

    def get_staff(self, staff_id: str) -> StaffMember | None:
        return self._t.staff.get(staff_id)

    def get_staff_by_name(self, name: str) -> StaffMember | None:
        return next((m for m in self._t.staff.values() if m.name == name), None)

    def staff_members(self) -> list[StaffMember]:
        return sorted(self._t.staff.values(), key=lambda m: m.name)

    def set_staff_password(self, staff_id: str, password_hash: str) -> None:
        t = self._w()
        member = t.staff.get(staff_id)
        if member is None:
            raise NotFound(f"staff {staff_id}")
        t.staff[staff_id] = replace(member, password_hash=password_hash)

    def insert_token(self, token: ApiToken) -> None:
        t = self._w()
        if token.token_hash in t.api_tokens:
            raise DuplicateKey("api token")
        t.api_tokens[token.token_hash] = token

    def get_token(self, token_hash: str) -> ApiToken | None:
        return self._t.api_tokens.get(token_hash)

    def tokens_of(self, staff_id: str) -> list[ApiToken]:
        mine = [k for k in self._t.api_tokens.values() if k.staff_id == staff_id]
        return sorted(mine, key=lambda k: (k.created_at, k.token_hash))

    def revoke_tokens(
        self, at: float, staff_id: str | None = None, prefix: str | None = None
    ) -> int:
        if staff_id is None and prefix is None:
            raise ValueError("name the staff member or the token prefix")
        t = self._w()
        live = [
            k
            for k in t.api_tokens.values()
            if k.revoked_at is None
            and (staff_id is None or k.staff_id == staff_id)
            and (prefix is None or k.prefix == prefix)
        ]
        for k in live:
            t.api_tokens[k.token_hash] = replace(k, revoked_at=at)
        return len(live)

    # audit log
    def insert_audit(self, entry: AuditEntry) -> None:
        t = self._w()
        if entry.id in t.audit_log:
            raise DuplicateKey(f"audit entry {entry.id}")
        t.audit_log[entry.id] = entry

    def audit_entries(
        self, limit: int = 50, offset: int = 0, actor: str | None = None, target: str | None = None
    ) -> list[AuditEntry]:
        found = [
            e
            for e in self._t.audit_log.values()
            if (actor is None or e.actor == actor) and (target is None or e.target == target)
        ]
        return sorted(found, key=lambda e: e.id, reverse=True)[offset : offset + limit]
