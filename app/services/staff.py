"""Support staff and admins: accounts, API tokens, console passwords, and the audit log.

An API token is a random 256-bit secret, so it is stored as its SHA-256: nobody can guess tokens
to try against a fast hash, and a fast hash keeps every API request cheap. A console password is
chosen by a person, so it gets a slow, salted hash (scrypt, through werkzeug) instead.

Every staff action writes an append-only audit entry in the unit of work of the action itself,
so an action is never without its entry, nor an entry without its action.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import secrets
import string
from dataclasses import dataclass
from functools import cache

from werkzeug.security import check_password_hash, generate_password_hash

from app.bootstrap import Services
from app.services.errors import InvalidInput, ServiceError
from storage.contract import UnitOfWork
from storage.errors import DuplicateKey
from storage.models import ApiToken, AuditEntry, StaffMember, StaffRole

TOKEN_PREFIX = "smsp_"
SHOWN_PREFIX = 12  # characters of a token kept in clear, to name it in lists and revocations
NAME_CHARS = set(string.ascii_letters + string.digits + "._-@")
MIN_PASSWORD = 12
REASON_MAX = 300


class StaffExists(ServiceError):
    """A staff member with that name exists already."""


class UnknownStaff(ServiceError):
    """No staff member has that name."""


class Forbidden(ServiceError):
    """The staff member's role does not allow this action."""


@dataclass(frozen=True)
class StaffSummary:
    """A staff member with their tokens, for `staff list`."""

    member: StaffMember
    tokens: list[ApiToken]


@cache
@functools.cache
def _dummy_hash() -> str:
    """A real scrypt hash to check when the name is unknown, so the time taken does not tell
    (made once: making it costs as much as checking it)."""
    return generate_password_hash(secrets.token_hex(16), method="scrypt")


def cli_actor() -> str:
    """Who runs an operator command: the OS user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


def hash_token(token: str) -> str:
    """The stored form of an API token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def audit(
    uow: UnitOfWork,
    now: float,
    actor: str,
    action: str,
    target: str,
    reason: str,
    outcome: str = "",
) -> AuditEntry:
    """Append one entry to the audit log, in the caller's unit of work."""
    entry = AuditEntry(
        id=f"{int(now * 1000):014d}{secrets.token_hex(4)}",
        at=now,
        actor=actor,
        action=action,
        target=target,
        reason=reason[:REASON_MAX],
        outcome=outcome[:200],
    )
    uow.insert_audit(entry)
    return entry


def require_admin(member: StaffMember) -> None:
    """Refuse unless the staff member is an admin."""
    if member.role is not StaffRole.ADMIN:
        raise Forbidden(f"{member.name} is {member.role.value}; this needs an admin")


def check_reason(reason: str) -> str:
    """A staff action's reason: required, trimmed, at most REASON_MAX characters."""
    if not reason.strip():
        raise InvalidInput("say why (a reason is required)")
    if len(reason) > REASON_MAX:
        raise InvalidInput(f"a reason is at most {REASON_MAX} characters")
    return reason.strip()


def _check_name(name: str) -> None:
    if not (2 <= len(name) <= 64 and set(name) <= NAME_CHARS):
        raise InvalidInput("a staff name is 2-64 letters, digits, '.', '_', '-' or '@'")


def _new_token(uow: UnitOfWork, member: StaffMember, now: float) -> str:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)  # 256 random bits
    uow.insert_token(ApiToken(hash_token(token), token[:SHOWN_PREFIX], member.id, now))
    return token


def _member(uow: UnitOfWork, name: str) -> StaffMember:
    member = uow.get_staff_by_name(name)
    if member is None:
        raise UnknownStaff(f"no staff member is called {name}")
    return member


def add_staff(svc: Services, name: str, role: StaffRole, actor: str) -> tuple[StaffMember, str]:
    """Create a staff member and their first API token (returned once, never stored)."""
    _check_name(name)

    def unit(uow: UnitOfWork) -> tuple[StaffMember, str]:
        now = svc.clock.now()
        if uow.get_staff_by_name(name) is not None:
            raise StaffExists(f"{name} exists already")
        member = StaffMember("s_" + secrets.token_hex(8), name, role, now)
        uow.insert_staff(member)
        token = _new_token(uow, member, now)
        audit(uow, now, actor, "staff.add", name, f"role {role.value}", token[:SHOWN_PREFIX])
        return member, token

    try:
        return svc.store.atomic(unit)
    except DuplicateKey as exc:
        raise StaffExists(f"{name} exists already") from exc


def issue_token(svc: Services, name: str, actor: str) -> str:
    """Another API token for a staff member (shown once)."""

    def unit(uow: UnitOfWork) -> str:
        now = svc.clock.now()
        token = _new_token(uow, _member(uow, name), now)
        audit(uow, now, actor, "staff.token", name, "new API token", token[:SHOWN_PREFIX])
        return token

    return svc.store.atomic(unit)


def revoke(svc: Services, actor: str, name: str | None = None, prefix: str | None = None) -> int:
    """Revoke one token by its prefix, or everything of a staff member (tokens and console
    password); returns how many tokens stopped working."""
    if (name is None) == (prefix is None):
        raise InvalidInput("name a staff member or a token prefix, not both")

    def unit(uow: UnitOfWork) -> int:
        now = svc.clock.now()
        if name is not None:
            member = _member(uow, name)
            count = uow.revoke_tokens(now, staff_id=member.id)
            uow.set_staff_password(member.id, "")  # signs out every console session too
            audit(uow, now, actor, "staff.revoke", name, "all tokens and console access",
                  f"{count} tokens")  # fmt: skip
            return count
        assert prefix is not None
        count = uow.revoke_tokens(now, prefix=prefix)
        audit(uow, now, actor, "staff.revoke", prefix, "one token", f"{count} tokens")
        return count

    return svc.store.atomic(unit)


def set_password(svc: Services, name: str, password: str, actor: str) -> None:
    """Set a staff member's console password (stored as a scrypt hash)."""
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"a console password is at least {MIN_PASSWORD} characters")
    hashed = generate_password_hash(password, method="scrypt")

    def unit(uow: UnitOfWork) -> None:
        now = svc.clock.now()
        uow.set_staff_password(_member(uow, name).id, hashed)
        audit(uow, now, actor, "staff.password", name, "console password set")

    svc.store.atomic(unit)


def staff_list(svc: Services) -> list[StaffSummary]:
    """Every staff member with their tokens."""
    return svc.store.read(
        lambda uow: [StaffSummary(m, uow.tokens_of(m.id)) for m in uow.staff_members()]
    )


def by_token(svc: Services, token: str) -> StaffMember | None:
    """The staff member an unrevoked API token belongs to, or None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None

    def read(uow: UnitOfWork) -> StaffMember | None:
        found = uow.get_token(hash_token(token))
        if found is None or found.revoked_at is not None:
            return None
        return uow.get_staff(found.staff_id)

    return svc.store.read(read)


def session_marker(member: StaffMember) -> str:
    """Kept in the console session: a new password (or a revocation) ends older sessions."""
    return hashlib.sha256(member.password_hash.encode("utf-8")).hexdigest()[:16]


def by_session(svc: Services, staff_id: str, marker: str) -> StaffMember | None:
    """The staff member of a console session, if it is still valid."""
    member = svc.store.read(lambda uow: uow.get_staff(staff_id))
    if member is None or not member.password_hash:
        return None
    return member if secrets.compare_digest(session_marker(member), marker) else None


SIGN_IN_FAILURES, SIGN_IN_WINDOW = 5, 900  # wrong passwords per name before a 15-minute pause


def sign_in(svc: Services, name: str, password: str) -> StaffMember | None:
    """Check a console sign-in: at most 5 wrong passwords per name in 15 minutes; audited when
    it succeeds. An unknown name costs the same time as a known one."""
    key, now = f"console-sign-in:{name.strip().lower()}", svc.clock.now()
    if not svc.store.atomic(
        lambda uow: uow.take_in_window(key, SIGN_IN_FAILURES, SIGN_IN_WINDOW, 1, now)
    ):
        return None
    member = svc.store.read(lambda uow: uow.get_staff_by_name(name)) if name else None
    stored = member.password_hash if member and member.password_hash else _dummy_hash()
    if not check_password_hash(stored, password) or member is None or not member.password_hash:
        return None  # the attempt stays counted
    svc.store.atomic(lambda uow: uow.take_in_window(key, SIGN_IN_FAILURES, SIGN_IN_WINDOW, -1, now))
    svc.store.atomic(
        lambda uow: audit(uow, svc.clock.now(), member.name, "console.sign_in", member.name, "")
    )
    return member
