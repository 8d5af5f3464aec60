"""When the store fails: one StoreUnavailable on every backend, 503 on every route, nothing moved,
and a worker that waits and carries on.

SQLite's full disk is real: a tiny tmpfs filled to the last byte (the tests skip where mounting is
not allowed); a failed COMMIT there is followed by SQLite's own rollback, the path that used to
end in "cannot rollback - no transaction is active". MongoDB's outage is a throwaway server on
127.0.0.1 stopped mid-test and started again on the same files.
"""

from __future__ import annotations

import errno
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pymongo import MongoClient
from pymongo.errors import (
    AutoReconnect,
    ExecutionTimeout,
    NetworkTimeout,
    NotPrimaryError,
    OperationFailure,
    ProtocolError,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteConcernError,
    WriteError,
)

from app import create_app
from app.bootstrap import Services
from app.services import settlement
from app.worker import Worker
from gateway_clients.base import PayoutStatus
from storage.errors import StoreUnavailable
from storage.models import JobStatus, TransactionState
from storage.mongo import MongoStore
from storage.sqlite import SqliteStore
from tests.conftest import World
from tests.fakes import FakeGateway
from tests.functional.test_inbound import Routes
from tests.mongo_server import _free_port
from tests.support import (
    PUBLIC_URL,
    TWILIO_TOKEN,
    FakeClock,
    Phone,
    twilio_form,
    twilio_signature,
)

ASHA, RAVI, VPA = "+919876543210", "+919812345678", "ravi.k@okaxis"
NOON = 1795588200.0  # a payout and its status checks stay in one day
SETTLEMENT = {
    "payout.create": settlement.run_payout_create,
    "payout.poll": settlement.run_payout_poll,
}
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def wait_for(check: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# --- a disk that fills up -------------------------------------------------------------------


class TinyDisk:
    """A 2 MiB tmpfs: `fill()` takes every byte left, `make_room()` gives them back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    def fill(self) -> None:
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)
        for size in (512, 64, 1):  # the last partial page too
            try:
                with self.filler.open("ab") as f:
                    while True:
                        f.write(b"\0" * size)
                        f.flush()
            except OSError:
                pass

    def make_room(self) -> None:
        self.filler.unlink()


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[TinyDisk]:
    path = tmp_path / "disk"
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + done.stderr.decode(errors="replace")[:200])
    try:
        yield TinyDisk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOON)


@pytest.fixture
def fake(clock: FakeClock) -> FakeGateway:
    return FakeGateway(clock.now)


@pytest.fixture
def settings(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> dict[str, Any]:  # fmt: skip
    """The conftest's settings, the SQLite file on the tiny disk when the test asks for one."""
    data_dir = tmp_path / "var"
    if "disk" in request.fixturenames:
        data_dir = request.getfixturevalue("disk").path / "var"
    return {
        "data_dir": str(data_dir),
        "mongodb_uri": backend,
        "twilio_auth_token": TWILIO_TOKEN,
        "public_base_url": PUBLIC_URL,
        "sandbox_webhook_url": "",
    }


@pytest.fixture
def app(settings: dict[str, Any], clock: FakeClock, fake: FakeGateway) -> Iterator[Flask]:
    application = create_app(settings, clock=clock, gateway=fake)
    application.config["TESTING"] = True
    application.extensions["smspay"].store.init()
    yield application
    application.extensions["smspay"].store.close()


@pytest.fixture
def routes(client: FlaskClient, world: World, clock: FakeClock) -> Routes:
    return Routes(client, world, clock)


def rows(svc: Services) -> tuple[Any, ...]:
    """Everything a PAY or a job could write."""

    def read(uow: Any) -> tuple[Any, ...]:
        return (
            [(a.id, a.balance) for a in uow.dump("accounts")],
            uow.search_transactions(limit=1000),
            uow.inbound_for(ASHA),
            uow.outbox(1000),
            [(j.key, j.status, j.attempts) for j in uow.jobs(None, 1000)],
        )

    return svc.store.read(read)


@SQLITE_ONLY
def test_a_full_disk_answers_503_everywhere_moves_nothing_and_recovers_with_room(
    disk: TinyDisk, routes: Routes, world: World, client: FlaskClient, clock: FakeClock
) -> None:
    asha = world.user(ASHA, "1234", rupees=1000)
    world.user(RAVI, "4321")
    before = rows(world.svc)
    twilio_pay, tasker_pay = (
        asha.pay(RAVI, 100, at=clock.now()),
        asha.pay(RAVI, 200, at=clock.now()),
    )
    disk.fill()
    for route, body in (("twilio", twilio_pay), ("tasker", tasker_pay)):
        form_status, _ = routes.send(route, ASHA, body)
        assert form_status == 503
    r = client.post("/sms/tasker", data=b"{}", headers={"X-Gateway-Id": world.gateway_id})
    assert r.status_code in (403, 503)
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.headers["Retry-After"]
    assert rows(world.svc) == before  # no balance changed, no row half-written
    assert world.total() == 0

    disk.make_room()
    assert client.get("/readyz").status_code == 200
    assert "Paid Rs 1.00" in routes.send("twilio", ASHA, twilio_pay)[1]
    assert "Paid Rs 2.00" in routes.send("tasker", ASHA, tasker_pay)[1]
    assert world.balance(ASHA) == 100_000 - 300 and world.balance(RAVI) == 300
    assert world.total() == 0


@SQLITE_ONLY
def test_the_503_carries_retry_after_and_a_short_json_body(
    disk: TinyDisk, world: World, client: FlaskClient, clock: FakeClock
) -> None:
    asha = world.user(ASHA, "1234", rupees=1000)
    fields = twilio_form(ASHA, asha.pay(RAVI, 100, at=clock.now()))
    disk.fill()
    r = client.post(
        "/sms/twilio", data=fields, headers={"X-Twilio-Signature": twilio_signature(fields)}
    )
    assert r.status_code == 503 and r.headers["Retry-After"] == "30"
    assert r.get_json() == {"error": "temporarily unavailable, retry later"}


def test_a_commit_that_fails_on_a_full_disk_leaves_nothing_and_the_store_recovers(
    disk: TinyDisk,
) -> None:
    store = SqliteStore(disk.path / "store.sqlite3")
    store.init()
    store.atomic(lambda uow: uow.set_meta("before", b"x"))
    disk.fill()
    with pytest.raises(StoreUnavailable, match="full"):
        store.atomic(lambda uow: uow.set_meta("during", b"y" * 20_000))
    assert store.read(lambda uow: uow.get_meta("during")) is None  # reads still work
    with pytest.raises(StoreUnavailable):
        store.ping()  # not ready: no room to write
    disk.make_room()
    store.atomic(lambda uow: uow.set_meta("after", b"z"))
    assert store.read(lambda uow: (uow.get_meta("before"), uow.get_meta("after"))) == (b"x", b"z")
    store.ping()
    store.close()


class FailingCommit:
    """A connection whose next COMMIT fails as a full disk makes it fail, transaction rolled back.

    Wraps the store's real connection; SQLite's own rollback happens first (as it does on
    SQLITE_FULL), so the store's ROLLBACK finds no transaction.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.fail_next = True

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "COMMIT" and self.fail_next:
            self.fail_next = False
            self._conn.execute("ROLLBACK")
            exc = sqlite3.OperationalError("database or disk is full")
            exc.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
            raise exc
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def test_a_failed_commit_then_no_transaction_to_roll_back_is_store_unavailable(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "store.sqlite3")
    store.init()
    real = store._connect()
    store._local.conn = FailingCommit(real)
    with pytest.raises(StoreUnavailable, match="full"):
        store.atomic(lambda uow: uow.set_meta("lost", b"y"))
    assert store.read(lambda uow: uow.get_meta("lost")) is None
    store.atomic(lambda uow: uow.set_meta("kept", b"z"))
    assert store.read(lambda uow: uow.get_meta("kept")) == b"z"
    store.close()


@SQLITE_ONLY
def test_a_read_only_store_answers_503_and_recovers(
    routes: Routes, world: World, svc: Services, clock: FakeClock
) -> None:
    asha = world.user(ASHA, "1234", rupees=1000)
    world.user(RAVI, "4321")
    body = asha.pay(RAVI, 100, at=clock.now())
    before = rows(svc)
    assert isinstance(svc.store, SqliteStore)
    svc.store._connect().execute("PRAGMA query_only = ON")
    assert routes.send("tasker", ASHA, body)[0] == 503
    assert rows(svc) == before
    # the connection that failed to write was dropped: a new one writes again
    assert "Paid Rs 1.00" in routes.send("tasker", ASHA, body)[1]


@SQLITE_ONLY
def test_a_store_locked_beyond_the_busy_timeout_answers_503(
    routes: Routes, world: World, svc: Services, clock: FakeClock, client: FlaskClient
) -> None:
    asha = world.user(ASHA, "1234", rupees=1000)
    world.user(RAVI, "4321")
    body = asha.pay(RAVI, 100, at=clock.now())
    assert isinstance(svc.store, SqliteStore)
    real = svc.store
    impatient = SqliteStore(real.path, busy_timeout_ms=100)
    svc.__dict__["store"] = impatient
    other = sqlite3.connect(real.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        assert routes.send("twilio", ASHA, body)[0] == 503
        assert time.monotonic() - started < 5
        other.execute("ROLLBACK")
        assert "Paid Rs 1.00" in routes.send("twilio", ASHA, body)[1]
    finally:
        other.close()
        impatient.close()
        svc.__dict__["store"] = real
    assert world.balance(ASHA) == 100_000 - 100


def test_a_file_that_is_not_a_database_is_unavailable_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    path.write_bytes(b"this is not an SQLite file" * 200)
    store = SqliteStore(path)
    with pytest.raises(StoreUnavailable, match="not a database"):
        store.ping()
    with pytest.raises(StoreUnavailable):
        store.atomic(lambda uow: uow.set_meta("x", b"y"))


def sqlite_error(kind: type[sqlite3.Error], code: int) -> sqlite3.Error:
    exc = kind("from SQLite")
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (sqlite_error(sqlite3.OperationalError, sqlite3.SQLITE_FULL), True),
        (sqlite_error(sqlite3.OperationalError, sqlite3.SQLITE_IOERR_WRITE), True),
        (sqlite_error(sqlite3.OperationalError, sqlite3.SQLITE_BUSY), True),
        (sqlite_error(sqlite3.OperationalError, sqlite3.SQLITE_READONLY), True),
        (sqlite_error(sqlite3.OperationalError, sqlite3.SQLITE_CANTOPEN), True),
        (sqlite_error(sqlite3.DatabaseError, sqlite3.SQLITE_CORRUPT), True),
        (sqlite_error(sqlite3.DatabaseError, sqlite3.SQLITE_NOTADB), True),
        (sqlite_error(sqlite3.IntegrityError, sqlite3.SQLITE_CONSTRAINT_CHECK), False),
        (sqlite_error(sqlite3.ProgrammingError, sqlite3.SQLITE_MISUSE), False),
        (sqlite_error(sqlite3.DataError, sqlite3.SQLITE_TOOBIG), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_which_sqlite_errors_mean_the_store_is_unavailable(
    tmp_path: Path, error: sqlite3.Error, unavailable: bool
) -> None:
    store = SqliteStore(tmp_path / "store.sqlite3")

    def fails(uow: Any) -> None:
        uow.set_meta("half", b"written")
        raise error

    with pytest.raises(StoreUnavailable if unavailable else type(error)):
        store.atomic(fails)
    assert store.read(lambda uow: uow.get_meta("half")) is None
    store.close()


@pytest.mark.parametrize(
    "error",
    [
        ServerSelectionTimeoutError("no servers"),
        AutoReconnect("connection reset"),
        NetworkTimeout("timed out"),
        NotPrimaryError("not primary", {"code": 10107}),
        ExecutionTimeout("operation exceeded time limit", 50),
        OperationFailure(
            "transaction aborted", 251, {"errorLabels": ["TransientTransactionError"]}
        ),
        WriteConcernError("waiting for replication timed out", 64),
        ProtocolError("bad message"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_every_mongodb_failure_of_the_server_or_the_way_to_it_is_unavailable(
    error: PyMongoError,
) -> None:
    def boom() -> None:
        raise error

    with pytest.raises(StoreUnavailable):
        MongoStore._call(boom)


def test_a_document_mongodb_refuses_is_not_unavailability() -> None:
    def refused() -> None:
        raise WriteError("Document failed validation", 121)

    with pytest.raises(WriteError):
        MongoStore._call(refused)


# --- the worker -----------------------------------------------------------------------------


class Background:
    """A worker loop in a thread, stopped and joined at the end of the test."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.done: list[int] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.done.append(self.worker.run(idle_sleep=0.01, max_wait=0.2))

    def stop(self) -> None:
        self.worker.stop()
        self.thread.join(30)
        assert not self.thread.is_alive()


def pay_out(routes: Routes, asha: Phone, clock: FakeClock) -> str:
    status, text = routes.send("tasker", ASHA, asha.pay(VPA, 25_000, at=clock.now()))
    assert status == 200, text
    return text.split("Ref ")[1].split()[0].rstrip(".")


def settled(svc: Services, ref: str) -> bool:
    txn = svc.store.read(lambda uow: uow.get_transaction(ref))
    return txn is not None and txn.state is TransactionState.SUCCESS


def pending_jobs(svc: Services) -> list[str]:
    live = (JobStatus.PENDING, JobStatus.RUNNING)
    found = svc.store.read(lambda uow: uow.jobs(None, 1000))
    return [j.key for j in found if j.status in live and j.kind in SETTLEMENT]


@SQLITE_ONLY
def test_the_worker_survives_a_full_disk_and_drains_the_backlog_when_room_returns(
    disk: TinyDisk, routes: Routes, world: World, svc: Services, clock: FakeClock,
    fake: FakeGateway,
) -> None:  # fmt: skip
    asha = world.user(ASHA, "1234", rupees=1000)
    ref = pay_out(routes, asha, clock)
    total = world.total()
    disk.fill()
    background = Background(Worker(svc, SETTLEMENT, owner="w1", rng=random.Random(1)))
    try:
        time.sleep(1.0)  # many cycles, each failing to claim on the full disk
        assert background.thread.is_alive()
        assert fake.made() == 0
        disk.make_room()
        wait_for(lambda: fake.made() == 1)  # the payout goes out once room is back
        wait_for(lambda: pending_jobs(svc) == [f"payout.poll:{ref}:1"])
        fake.set_status(ref, PayoutStatus.PROCESSED, utr="UTR1")
        clock.advance(90)  # the status check settles it and writes the status SMS
        wait_for(lambda: settled(svc, ref))
    finally:
        background.stop()
    assert fake.made() == 1
    assert world.total() == total and world.balance(ASHA) == 75_000
    assert [m.reference for m in svc.store.read(lambda uow: uow.outbox(1000))].count(ref) == 1


# --- MongoDB down and back ------------------------------------------------------------------


class MongoProcess:
    """A throwaway MongoDB-compatible server on 127.0.0.1 with its files on disk."""

    def __init__(self, workdir: Path) -> None:
        self.workdir, self.port = workdir, _free_port()
        self.uri = f"mongodb://127.0.0.1:{self.port}/smspay_faults?directConnection=true"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = Path(sys.executable).parent / "secantusd-py"
        log = (self.workdir / "server.log").open("ab")
        self.proc = subprocess.Popen(
            [str(exe), "--host", "127.0.0.1", "--port", str(self.port),
             "--storage-path", str(self.workdir / "data"), "--log-level", "WARNING",
             "--cache-size", "64M"],
            cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 60
        while True:
            try:
                with MongoClient(self.uri, serverSelectionTimeoutMS=500) as client:
                    client.admin.command("ping")
                return
            except PyMongoError:
                assert self.proc.poll() is None, (self.workdir / "server.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


@pytest.fixture
def own_mongo(tmp_path: Path) -> Iterator[MongoProcess]:
    if os.environ.get("SMSPAY_TEST_MONGODB_URI"):
        pytest.skip("needs a throwaway server it may stop")
    server = MongoProcess(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_mongodb_down_answers_503_the_worker_waits_and_the_backlog_drains_when_it_is_back(
    own_mongo: MongoProcess, tmp_path: Path, clock: FakeClock, fake: FakeGateway
) -> None:
    app = create_app(
        {"data_dir": str(tmp_path / "var"), "mongodb_uri": own_mongo.uri,
         "twilio_auth_token": TWILIO_TOKEN, "public_base_url": PUBLIC_URL,
         "sandbox_webhook_url": ""},
        clock=clock, gateway=fake,
    )  # fmt: skip
    svc: Services = app.extensions["smspay"]
    store = svc.store
    assert isinstance(store, MongoStore)
    store._timeout_ms, store._transaction_seconds = 300, 3.0  # short waits while it is down
    store.init()
    client = app.test_client()
    world = World(svc)
    routes = Routes(client, world, clock)
    asha = world.user(ASHA, "1234", rupees=1000)
    ref = pay_out(routes, asha, clock)
    total = world.total()
    later = asha.pay(RAVI, 100, at=clock.now())

    own_mongo.stop()
    started = time.monotonic()
    assert routes.send("twilio", ASHA, later)[0] == 503
    assert client.get("/readyz").status_code == 503
    assert time.monotonic() - started < 20  # never the driver's two minutes
    background = Background(Worker(svc, SETTLEMENT, owner="w1", rng=random.Random(1)))
    try:
        time.sleep(1.0)
        assert background.thread.is_alive() and fake.made() == 0
        own_mongo.start()
        wait_for(lambda: fake.made() == 1, 60)
        wait_for(lambda: pending_jobs(svc) == [f"payout.poll:{ref}:1"], 60)
        fake.set_status(ref, PayoutStatus.PROCESSED, utr="UTR1")
        clock.advance(90)
        wait_for(lambda: settled(svc, ref), 60)
    finally:
        background.stop()
    assert client.get("/readyz").status_code == 200
    world.user(RAVI, "4321")
    assert "Paid Rs 1.00" in routes.send("twilio", ASHA, later)[1]
    assert fake.made() == 1 and world.total() == total
    assert world.balance(ASHA) == 75_000 - 100
    store.close()
