"""SQLite schema versions: a file made before versions began is migrated and keeps working.

The legacy file is tests/fixtures/legacy/smspay-v1.sql (see its README), made by the code of that
time and loaded here as it was. An older variant lacks the outbox_sms columns added later.
"""

from __future__ import annotations

import base64
import multiprocessing
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask

from app import create_app
from app.bootstrap import Services
from app.services import admin, payments
from crypto.keys import device_key_label
from sms import replies
from sms.instructions import format_pay
from storage.errors import SchemaTooNew, StoreUnavailable
from storage.models import TransactionState
from storage.sqlite import SqliteStore, migrations
from storage.sqlite.schema import ADDED_COLUMNS, INDEXES
from tests.functional.test_inbound import ASHA, MEERA, RAVI, Routes
from tests.support import PUBLIC_URL, TWILIO_TOKEN, FakeClock, Phone

LEGACY = Path(__file__).parents[1] / "fixtures" / "legacy"
MASTER_KEY = base64.b64encode(bytes(range(32))).decode()  # the fixture's, see its README
LEGACY_TIME = 1_790_000_000
# what the fixture holds, in paise: Asha, Ravi, Meera, the cash-in and the held account
BALANCES = {ASHA: 76_500, RAVI: 21_100, MEERA: 5_900}
SYSTEM = {"system:cash_in": -105_000, "system:held": 1_500}
# each phone's device in the fixture and the next counter its replay window allows
DEVICES = {ASHA: (1915665275, 3), RAVI: (1008392382, 4), MEERA: (3228786361, 3)}
PINS = {ASHA: "1234", RAVI: "4321", MEERA: "5555"}


def legacy_file(data_dir: Path, older: bool = False) -> Path:
    """The fixture loaded into `<data_dir>/smspay.sqlite3`; `older`: without the added columns."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "smspay.sqlite3"
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript((LEGACY / "smspay-v1.sql").read_text())
        if older:  # as files were before the outbox learnt channels, leases and attempts
            conn.execute("DROP INDEX outbox_sms_provider")
            for table, column, _ in ADDED_COLUMNS:
                conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    return path


def tables(path: Path) -> dict[str, list[str]]:
    """Each table's column names, read without the code under test."""
    with closing(sqlite3.connect(path)) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: [c[1] for c in conn.execute(f"PRAGMA table_info({n})")] for n in sorted(names)}


def rows(path: Path, columns: dict[str, list[str]]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in rowid order, limited to the given columns."""
    with closing(sqlite3.connect(path)) as conn:
        return {
            table: conn.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY rowid").fetchall()
            for table, cols in columns.items()
        }


def schema(path: Path) -> dict[str, Any]:
    """Columns (name, type, not null, default, key) of each table, and every index and trigger."""
    with closing(sqlite3.connect(path)) as conn:
        objects = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE type IN ('index', 'trigger')"
            " AND sql IS NOT NULL ORDER BY name"
        ).fetchall()
        columns = {
            table: [c[1:] for c in conn.execute(f"PRAGMA table_info({table})")]
            for table in tables(path)
        }
        return {"columns": columns, "objects": objects}


def user_version(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def fresh_schema(tmp_path: Path) -> dict[str, Any]:
    """The schema of a new file made by today's code."""
    store = SqliteStore(tmp_path / "fresh" / "smspay.sqlite3")
    store.init()
    store.close()
    return schema(store.path)


def open_app(data_dir: Path, clock: FakeClock) -> Flask:
    """Today's code on that data_dir, with the fixture's master key."""
    settings = {
        "data_dir": str(data_dir),
        "master_key": MASTER_KEY,
        "mongodb_uri": "",
        "twilio_auth_token": TWILIO_TOKEN,
        "public_base_url": PUBLIC_URL,
        "sandbox_webhook_url": "",
    }
    app = create_app(settings, clock=clock)
    app.config["TESTING"] = True
    return app


def services(app: Flask) -> Services:
    svc: Services = app.extensions["smspay"]
    return svc


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(LEGACY_TIME + 3600)


@pytest.fixture
def opened() -> Iterator[list[Flask]]:
    """Apps opened by a test; their stores are closed at the end."""
    apps: list[Flask] = []
    yield apps
    for app in apps:
        services(app).store.close()


def legacy_phone(svc: Services, phone: str) -> Phone:
    """A phone of the fixture, its device key unwrapped under the fixture's master key."""
    key_id, next_counter = DEVICES[phone]
    device = svc.store.read(lambda uow: uow.get_device(key_id))
    assert device is not None and device.active and device.phone == phone
    key = svc.keyring.unwrap(device.wrapped_key, device_key_label(key_id))
    return Phone(phone, key_id, key, PINS[phone], next_counter=next_counter)


def balances(svc: Services) -> dict[str, int]:
    def read(uow: Any) -> dict[str, int]:
        users = {p: uow.balance(uow.get_user_by_phone(p).account) for p in BALANCES}
        return {**users, **{a: uow.balance(a) for a in SYSTEM}, "total": uow.total_balance()}

    result: dict[str, int] = svc.store.read(read)
    return result


@pytest.mark.parametrize("older", [False, True], ids=["v1", "older"])
def test_a_file_from_before_versions_is_migrated_and_keeps_working(
    older: bool, tmp_path: Path, clock: FakeClock, opened: list[Flask]
) -> None:
    data_dir = tmp_path / "var"
    path = legacy_file(data_dir, older)
    columns_before = tables(path)
    before = rows(path, columns_before)

    app = open_app(data_dir, clock)
    opened.append(app)
    svc = services(app)
    svc.store.init()

    assert user_version(path) == migrations.latest()
    after = rows(path, columns_before)
    version = str(migrations.latest()).encode()
    before["meta"] = [(k, version if k == "schema_version" else v) for k, v in before["meta"]]
    assert after == before  # not one value changed but the schema version
    new = [c for _, c, _ in ADDED_COLUMNS]
    outbox_extra = rows(path, {"outbox_sms": new})["outbox_sms"]
    assert outbox_extra == [("", "", "", None, None, None, 0)] * 6  # the columns' defaults
    assert schema(path) == fresh_schema(tmp_path)  # the same tables, columns and indexes
    with closing(sqlite3.connect(path)) as conn:  # the payees' rows, made from the file
        committed = conn.execute(
            "SELECT payer_id, payee, MAX(created_at), MIN(created_at), SUM(amount)"
            " FROM transactions WHERE payer_id IS NOT NULL"
            " AND payee IS NOT NULL AND state != 'FAILED'"
            " GROUP BY payer_id, payee ORDER BY 1, 2"
        ).fetchall()
        kept = conn.execute("SELECT * FROM payees_paid ORDER BY 1, 2").fetchall()
    assert committed and kept == committed
    if not older:  # even the text of every CREATE, as today's code writes it
        with closing(sqlite3.connect(path)) as conn:
            legacy_sql = conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name")
            with closing(sqlite3.connect(tmp_path / "fresh" / "smspay.sqlite3")) as fresh:
                fresh_sql = fresh.execute("SELECT name, sql FROM sqlite_master ORDER BY name")
                assert legacy_sql.fetchall() == fresh_sql.fetchall()

    # read through today's code: users, balances, histories
    assert balances(svc) == {**BALANCES, **SYSTEM, "total": 0}
    users = svc.store.read(lambda uow: [uow.get_user_by_phone(p) for p in BALANCES])
    assert [u.name for u in users] == ["Asha", "Ravi", "Meera"]
    assert [u.failed_pin_attempts for u in users] == [0, 1, 0]
    txns = svc.store.read(lambda uow: uow.search_transactions(limit=100, oldest_first=True))
    assert len(txns) == 8
    held = svc.store.read(lambda uow: uow.events("JMT4UWK8JB"))
    assert [e.state for e in held] == [TransactionState.PENDING, TransactionState.FLAGGED]
    assert held[-1].reason == "velocity: test hold"
    paid = svc.store.read(lambda uow: uow.entries("54W2W9PVFD"))
    assert [(p.account, p.amount) for p in paid[0].postings] == [
        ("user:u_143ccd565f30d72f", -25_000),
        ("user:u_6ea85513ef76fdb9", 25_000),
    ]

    # and it works: old device keys, the old gateway's secret, old PIN hashes and counts
    secret = admin.tasker_secret(svc, "shop-1")
    assert secret is not None
    gateway = SimpleNamespace(gateway_id="shop-1", gateway_secret=secret.decode())
    routes = Routes(app.test_client(), gateway, clock)  # type: ignore[arg-type]  # id, secret
    asha, ravi, meera = (legacy_phone(svc, p) for p in (ASHA, RAVI, MEERA))
    again = asha.seal(format_pay(RAVI, 25_000, "1234", int(clock.now())), counter=1)
    assert routes.twilio(ASHA, again)[1] == (  # that frame was processed before the upgrade
        "SMSPay: Paid Rs 250.00 to +91******5678. Ref 54W2W9PVFD. Bal Rs 750.00."
    )
    assert balances(svc) == {**BALANCES, **SYSTEM, "total": 0}
    five = asha.pay(RAVI, 500, at=clock.now())
    assert "Paid Rs 5.00" in routes.twilio(ASHA, five)[1]
    assert "Paid Rs 2.00" in routes.tasker(MEERA, meera.pay(ASHA, 200, at=clock.now()))[1]
    wrong = ravi.pay(MEERA, 100, pin="0000", at=clock.now())
    assert routes.tasker(RAVI, wrong)[1] == replies.wrong_pin(1)  # his earlier miss counts
    assert routes.tasker(ASHA, five)[1].startswith("SMSPay: Paid Rs 5.00")  # a replay
    payments.credit_wallet(svc, MEERA, 10_000, "test cash-in", actor="test")
    assert balances(svc) == {
        ASHA: BALANCES[ASHA] - 500 + 200,
        RAVI: BALANCES[RAVI] + 500,
        MEERA: BALANCES[MEERA] - 200 + 10_000,
        "system:cash_in": SYSTEM["system:cash_in"] - 10_000,
        "system:held": SYSTEM["system:held"],
        "total": 0,
    }
    # a new device key and SMS in the outbox are written to the migrated tables as well
    bundle = admin.provision_device(svc, ASHA)
    fresh = Phone(ASHA, bundle.key_id, bundle.key, "1234")
    assert "Paid Rs 1.00" in routes.twilio(ASHA, fresh.pay(MEERA, 100, at=clock.now()))[1]
    outbox = svc.store.read(lambda uow: uow.outbox(limit=100))
    assert outbox[-1].to == MEERA and outbox[-1].body.startswith("SMSPay: Received Rs 1.00")


def add_tag(conn: sqlite3.Connection) -> None:
    """A later, strict migration: run twice, it fails ("duplicate column name")."""
    conn.execute("ALTER TABLE users ADD COLUMN tag TEXT NOT NULL DEFAULT ''")


def _migrate_in_child(path: str, barrier: Any, strict_step: bool) -> tuple[int, int, int]:
    """One process starting on the file: wait for the other, then init and read back."""
    if strict_step:  # this process's code knows one more migration than the release does
        migrations.MIGRATIONS = (*migrations.MIGRATIONS, add_tag)
    store = SqliteStore(path)
    barrier.wait(timeout=60)
    store.init()
    total = store.read(lambda uow: uow.total_balance())
    users = store.read(lambda uow: uow.count("users"))
    store.close()
    return total, users, migrations.latest()


@pytest.mark.parametrize(
    ("older", "strict_step"),
    [(False, False), (True, False), (True, True)],
    ids=["v1", "older", "older+strict step"],
)
def test_two_processes_starting_together_migrate_the_file_once(
    older: bool, strict_step: bool, tmp_path: Path
) -> None:
    path = legacy_file(tmp_path / "var", older)
    columns = tables(path)
    before = rows(path, columns)
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(2) as pool:
        barrier = manager.Barrier(2)
        args = (str(path), barrier, strict_step)
        results = [pool.apply_async(_migrate_in_child, args) for _ in range(2)]
        latest = migrations.latest() + strict_step
        assert [r.get(timeout=120) for r in results] == [(0, 3, latest)] * 2
    assert user_version(path) == latest
    version = ("schema_version", str(latest).encode())
    meta = [version if key == "schema_version" else (key, value) for key, value in before["meta"]]
    assert rows(path, columns) == {**before, "meta": meta}
    new = [c for _, c, _ in ADDED_COLUMNS]
    assert rows(path, {"outbox_sms": new})["outbox_sms"] == [("", "", "", None, None, None, 0)] * 6
    if strict_step:
        assert rows(path, {"users": ["tag"]})["users"] == [("",)] * 3
    else:
        assert schema(path) == fresh_schema(tmp_path)


def test_a_file_from_a_newer_release_is_refused_and_left_unchanged(
    tmp_path: Path, clock: FakeClock
) -> None:
    data_dir = tmp_path / "var"
    path = legacy_file(data_dir)
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {migrations.latest() + 1}")
    image = path.read_bytes()

    store = SqliteStore(path)
    for attempt in (store.init, store.ping, lambda: store.atomic(lambda uow: uow.count("users"))):
        with pytest.raises(SchemaTooNew, match="newer than this release knows") as caught:
            attempt()
        assert isinstance(caught.value, StoreUnavailable)  # web answers 503, never a crash
    store.close()
    app = open_app(data_dir, clock)  # what the operator sees
    result = app.test_cli_runner().invoke(args=["db", "init"])
    assert result.exit_code != 0
    assert f"schema version {migrations.latest() + 1}, newer than this release" in result.output
    services(app).store.close()

    assert path.read_bytes() == image  # not even switched to WAL
    assert sorted(p.name for p in data_dir.iterdir() if p.name.startswith("smspay")) == [
        "smspay.sqlite3"
    ]


def test_init_again_is_a_no_op(tmp_path: Path) -> None:
    path = legacy_file(tmp_path / "var")
    first = SqliteStore(path)
    first.init()
    with closing(sqlite3.connect(path)) as watcher:  # data_version moves when others commit
        seen = watcher.execute("PRAGMA data_version").fetchone()[0]
        dump = list(watcher.iterdump())
        first.init()
        second = SqliteStore(path)  # another process starting later
        second.init()
        with closing(sqlite3.connect(path, isolation_level=None)) as conn:
            assert migrations.migrate(conn, path.name) == 0
        assert watcher.execute("PRAGMA data_version").fetchone()[0] == seen
        assert list(watcher.iterdump()) == dump
    for store in (first, second):
        store.close()
    assert user_version(path) == migrations.latest()


def test_migrations_run_in_order_once_each_and_a_failed_one_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = legacy_file(tmp_path / "var", older=True)
    ran: list[str] = []

    def tag(conn: sqlite3.Connection) -> None:
        ran.append("tag")
        add_tag(conn)

    def broken(conn: sqlite3.Connection) -> None:
        ran.append("broken")
        conn.execute("CREATE TABLE half_done (x)")
        raise sqlite3.OperationalError("disk I/O error")

    baseline = migrations.MIGRATIONS[0]
    monkeypatch.setattr(migrations, "MIGRATIONS", (baseline, tag, broken))
    before = schema(path)
    failing = SqliteStore(path)
    with pytest.raises(StoreUnavailable, match="disk I/O error"):
        failing.init()
    failing.close()
    assert ran == ["tag", "broken"]
    assert schema(path) == before and user_version(path) == 0  # the baseline's ALTERs undone too

    ran.clear()
    monkeypatch.setattr(migrations, "MIGRATIONS", (baseline, tag))
    store = SqliteStore(path)
    store.init()
    assert ran == ["tag"] and user_version(path) == 2
    assert "tag" in tables(path)["users"] and "channel" in tables(path)["outbox_sms"]
    assert store.read(lambda uow: uow.get_meta("schema_version")) == b"2"
    store.init()
    later = SqliteStore(path)
    later.init()
    assert ran == ["tag"]  # never again
    store.close()
    later.close()


def test_triggers_stay_whole_when_a_script_is_split() -> None:
    split = list(migrations.statements(INDEXES))
    triggers = [s for s in split if s.startswith("CREATE TRIGGER")]
    assert len(triggers) == 2 and all(t.endswith("END;") for t in triggers)
    assert all(sqlite3.complete_statement(s) for s in split)
    with pytest.raises(ValueError, match="incomplete"):
        list(migrations.statements("CREATE TABLE t (x); CREATE TRIGGER a BEFORE DELETE ON t BEGIN"))
