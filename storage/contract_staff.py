"""The part of the storage contract that serves support staff: staff accounts, tokens, the
audit log and the queries behind the console (kept apart so the core contract stays small).

The support queries only read the core tables and collections; nothing here changes money.
"""

from __future__ import annotations

from typing import Protocol

from storage.models import (
    ApiToken,
    AuditEntry,
    Device,
    InboundRecord,
    Job,
    OutboundSms,
    ProviderEvent,
    StaffMember,
    Transaction,
    TxGroup,
    TxState,
)

# the kinds of record (storage/transfer.py) kept by the staff part of each backend
STAFF_KINDS = ("staff", "api_tokens", "audit_log")


class StaffTx(Protocol):
    """Staff, audit and support queries inside one unit of work."""

    # staff members and their API tokens (a name is unique; a token is found by its hash)
    def insert_staff(self, member: StaffMember) -> None: ...
    def get_staff(self, staff_id: str) -> StaffMember | None: ...
    def get_staff_by_name(self, name: str) -> StaffMember | None: ...
    def staff_members(self) -> list[StaffMember]: ...
    def set_staff_password(self, staff_id: str, password_hash: str) -> None: ...
    def insert_token(self, token: ApiToken) -> None: ...
    def get_token(self, token_hash: str) -> ApiToken | None: ...
    def tokens_of(self, staff_id: str) -> list[ApiToken]: ...
    def revoke_tokens(
        self, at: float, staff_id: str | None = None, prefix: str | None = None
    ) -> int: ...

    # the audit log: inserted, never changed; newest first
    def insert_audit(self, entry: AuditEntry) -> None: ...
    def audit_entries(
        self, limit: int = 50, offset: int = 0, actor: str | None = None, target: str | None = None
    ) -> list[AuditEntry]: ...

    # support queries
    def search_transactions(
        self,
        phone: str | None = None,
        state: TxState | None = None,
        since: float | None = None,
        until: float | None = None,
        reference: str | None = None,
        oldest_first: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Transaction]: ...
    def inbound_for_reference(self, reference: str) -> list[InboundRecord]: ...
    def outbound_for_reference(self, reference: str) -> list[OutboundSms]: ...
    def provider_events_for(self, reference: str) -> list[ProviderEvent]: ...
    def jobs_for_reference(self, reference: str) -> list[Job]: ...
    def devices_of(self, user_id: str) -> list[Device]: ...

    # KPIs over transactions created in [since, until)
    def transaction_groups(self, since: float, until: float) -> list[TxGroup]: ...
    def settle_seconds(self, since: float, until: float, limit: int) -> list[float]: ...
