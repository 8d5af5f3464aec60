"""The staff part of the storage contract on every store: tokens, the audit log, the support
queries, and staff records travelling with `db export` / `db import` to another backend."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.bootstrap import Services
from app.services import review, staff
from storage import transfer
from storage.contract import Store
from storage.models import StaffRole, TransactionState
from storage.mongo import MongoStore
from storage.sqlite import SqliteStore
from tests.conftest import EVERY_STORE, World
from tests.functional.test_inbound import ASHA, RAVI
from tests.mongo_server import database_uri, drop_database
from tests.support import FakeClock


@pytest.fixture
def other_store(backend: str, mongo_base_uri: str, tmp_path: Path) -> Iterator[Store]:
    """An empty store of the other backend (SQLite for the in-memory store)."""
    if backend:
        store: Any = SqliteStore(tmp_path / "other.sqlite3")
        store.init()
        yield store
        store.close()
        return
    uri = database_uri(mongo_base_uri)
    store = MongoStore(uri)
    store.init()
    yield store
    store.close()
    drop_database(uri)


@EVERY_STORE
def test_staff_tokens_and_audit_move_to_the_other_backend(
    svc: Services, world: World, other_store: Store
) -> None:
    world.user(ASHA, rupees=100)
    world.user(RAVI)
    _, token = staff.add_staff(svc, "ada", StaffRole.ADMIN, "test")
    staff.set_password(svc, "ada", "a long enough password", "test")
    held = review.hold_payment(svc, ASHA, RAVI, 1_000, "rule")
    admin = svc.store.read(lambda uow: uow.get_staff_by_name("ada"))
    review.approve(svc, admin, held.reference, "checked")
    out = io.StringIO()
    summary = transfer.write_export(svc.store, out)
    assert (summary.counts["staff"], summary.counts["api_tokens"]) == (1, 1)
    assert summary.counts["audit_log"] == 3  # add, password, approve
    expected = transfer.scan(io.StringIO(out.getvalue()))
    _, records = transfer.read_export(io.StringIO(out.getvalue()))
    transfer.import_records(other_store, records)
    assert transfer.verify(other_store, expected) == []

    def staff_part(uow: Any) -> tuple[Any, ...]:
        member = uow.get_staff_by_name("ada")
        return member, uow.tokens_of(member.id), uow.audit_entries(10)

    assert other_store.read(staff_part) == svc.store.read(staff_part)
    found = other_store.read(lambda uow: uow.get_token(staff.hash_token(token)))
    assert found is not None and found.revoked_at is None


@EVERY_STORE
def test_revoking_by_prefix_or_staff_member(svc: Services, clock: FakeClock) -> None:
    ada, first = staff.add_staff(svc, "ada", StaffRole.ADMIN, "test")
    second = staff.issue_token(svc, "ada", "test")
    sam, third = staff.add_staff(svc, "sam", StaffRole.SUPPORT, "test")

    def revoke(uow: Any) -> tuple[int, int, int]:
        return (
            uow.revoke_tokens(clock.now(), prefix=first[: staff.SHOWN_PREFIX]),
            uow.revoke_tokens(clock.now(), prefix=first[: staff.SHOWN_PREFIX]),
            uow.revoke_tokens(clock.now(), staff_id=ada.id),
        )

    assert svc.store.atomic(revoke) == (1, 0, 1)
    assert staff.by_token(svc, first) is None and staff.by_token(svc, second) is None
    assert staff.by_token(svc, third) == sam


@EVERY_STORE
def test_search_pages_in_both_orders_and_filters(
    svc: Services, world: World, clock: FakeClock
) -> None:
    world.user(ASHA, rupees=100)
    world.user(RAVI)
    refs = []
    for _ in range(5):
        clock.advance(1)
        refs.append(review.hold_payment(svc, ASHA, RAVI, 100, "rule").reference)

    def search(**kw: Any) -> list[str]:
        return [t.reference for t in svc.store.read(lambda uow: uow.search_transactions(**kw))]

    assert search(state=TransactionState.FLAGGED, limit=2) == refs[::-1][:2]
    assert search(state=TransactionState.FLAGGED, limit=2, offset=2) == refs[::-1][2:4]
    assert search(state=TransactionState.FLAGGED, oldest_first=True, limit=10) == refs
    assert search(phone=RAVI, since=clock.now() - 1.5, until=clock.now() + 1) == refs[::-1][:2]
    assert search(reference=refs[2]) == [refs[2]]
    groups = svc.store.read(lambda uow: uow.transaction_groups(0, clock.now() + 1))
    flagged = [g for g in groups if g.state is TransactionState.FLAGGED]
    assert [(g.channel, g.count, g.amount) for g in flagged] == [("risk", 5, 500)]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # a trigger is SQLite's own
def test_sqlite_refuses_to_change_or_delete_audit_entries(
    svc: Services, backend: str, tmp_path: Path
) -> None:
    staff.add_staff(svc, "ada", StaffRole.ADMIN, "test")
    with sqlite3.connect(tmp_path / "var" / "smspay.sqlite3") as conn:
        for sql in ("UPDATE audit_log SET reason = 'edited'", "DELETE FROM audit_log"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(sql)
