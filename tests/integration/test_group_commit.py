"""Group commit on the SQLite store (storage/sqlite/group_commit.py): the units of work threads
submit together share one transaction and one fsync, each caller is answered only after the
COMMIT that covers it, a failing unit is undone alone, a failed COMMIT fails the whole batch,
a process killed in the middle of batches loses nothing it acknowledged, and the edges around
them fail cleanly: a `-lock` file that cannot be opened, a sync with no WAL, a failed checkpoint."""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from storage.errors import StoreUnavailable
from storage.sqlite import checkpoints
from storage.sqlite.checkpoints import EVERY_UNITS, Checkpointer
from storage.sqlite.group_commit import MAX_BATCH, Unit
from storage.sqlite.store import SqliteStore
from storage.sqlite.unit_of_work import SqliteUnitOfWork

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "store.sqlite3")
    s.init()
    yield s
    s.close()


def batches_of(store: SqliteStore) -> list[int]:
    """Record the size of every batch the store commits, units gathered once it held the
    writers' lock included (the store's own code still runs)."""
    sizes: list[int] = []
    real = store._run_batch

    def spy(units: list[Unit[Any]]) -> None:
        try:
            real(units)
        finally:
            sizes.append(len(units))

    store._run_batch = spy  # type: ignore[method-assign]
    return sizes


def queued_behind_a_held_batch(
    store: SqliteStore,
    units: list[Callable[[SqliteUnitOfWork], Any]],
    setup: Callable[[], None] = lambda: None,
) -> list[Any]:
    """Submit `units` from threads while a first unit holds the writer, so they queue and are
    committed as one batch; each thread's outcome (a value or the exception it raised)."""
    held, release = threading.Event(), threading.Event()

    def hold(uow: SqliteUnitOfWork) -> None:
        held.set()
        assert release.wait(10)

    outcomes: list[Any] = [None] * len(units)

    def call(i: int) -> None:
        setup()  # in the submitting thread (its connection leads if it is handed the lead)
        try:
            outcomes[i] = store.atomic(units[i])
        except Exception as exc:
            outcomes[i] = exc

    first = threading.Thread(target=store.atomic, args=(hold,))
    first.start()
    assert held.wait(10)
    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(units))]
    for t in threads:
        t.start()
    while len(store._group._queue) < len(units):  # type: ignore[union-attr]
        threading.Event().wait(0.005)
    release.set()
    for t in [first, *threads]:
        t.join(10)
    return outcomes


def meta(store: SqliteStore, key: str) -> bytes | None:
    return store.read(lambda uow: uow.get_meta(key))


def put(key: str) -> Callable[[SqliteUnitOfWork], str]:
    def unit(uow: SqliteUnitOfWork) -> str:
        uow.set_meta(key, b"1")
        return key

    return unit


def test_units_submitted_together_share_one_commit(store: SqliteStore) -> None:
    sizes = batches_of(store)
    outcomes = queued_behind_a_held_batch(store, [put(f"k{i}") for i in range(10)])
    assert outcomes == [f"k{i}" for i in range(10)]
    assert sizes == [1, 10]  # the holding unit alone, then the ten queued behind it together
    assert all(meta(store, f"k{i}") == b"1" for i in range(10))


def test_units_queued_while_the_leader_waits_for_the_writers_lock_join_its_batch(
    store: SqliteStore,
) -> None:
    """Another process holds the writers' lock (here another open file of the `-lock` file,
    which flock treats alike): the first unit's thread leads and waits for the lock; the units
    submitted meanwhile are committed in its batch once the lock is free, not in a second one."""
    sizes = batches_of(store)
    answered: list[str] = []
    threads = [
        threading.Thread(target=lambda k=k: answered.append(store.atomic(put(k))))
        for k in ("lead", "a", "b", "c")
    ]
    with checkpoints.writers_locked(f"{store.path}-lock"):
        threads[0].start()
        while store._group is None or not store._group._leading or store._group._queue:
            time.sleep(0.005)  # the leader took its batch of one and waits for the lock
        for t in threads[1:]:
            t.start()
        while len(store._group._queue) < 3:
            time.sleep(0.005)
        assert answered == []
    for t in threads:
        t.join(10)
    assert sorted(answered) == ["a", "b", "c", "lead"]
    assert sizes == [4]  # one transaction, one sync
    assert all(meta(store, k) == b"1" for k in ("lead", "a", "b", "c"))


def test_a_batch_gathers_no_more_than_max_batch_units(store: SqliteStore) -> None:
    sizes = batches_of(store)
    outcomes = queued_behind_a_held_batch(store, [put(f"k{i}") for i in range(MAX_BATCH + 6)])
    assert outcomes == [f"k{i}" for i in range(MAX_BATCH + 6)]
    assert sizes == [1, MAX_BATCH, 6]


def test_a_failing_unit_in_a_batch_does_not_undo_its_neighbours(store: SqliteStore) -> None:
    def fails(uow: SqliteUnitOfWork) -> None:
        uow.set_meta("bad", b"1")
        raise ValueError("refused")

    sizes = batches_of(store)
    outcomes = queued_behind_a_held_batch(store, [put("before"), fails, put("after")])
    assert sizes == [1, 3]
    assert outcomes[0] == "before" and outcomes[2] == "after"
    assert isinstance(outcomes[1], ValueError)
    assert meta(store, "before") == b"1" and meta(store, "after") == b"1"
    assert meta(store, "bad") is None  # undone alone


def sqlite_temp_files() -> list[str]:
    """The temporary files SQLite has open in this process (named etilqs_*, unlinked at once)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if "etilqs_" in target:
            found.append(target)
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="lists open files through /proc")
def test_a_batch_keeps_the_originals_of_the_pages_its_units_change_in_memory(
    store: SqliteStore,
) -> None:
    """A unit of a batch runs in a SAVEPOINT, for which SQLite keeps the original of every page
    the unit changes; past 64 KiB of them it would write them to a temporary file (two writes
    a page, inside the writers' lock) unless its temporary storage is memory."""
    sizes = batches_of(store)
    store.atomic(lambda uow: [uow.set_meta(f"k{i}", bytes(1000)) for i in range(400)])
    open_files: list[str] = []

    def rewrite(uow: SqliteUnitOfWork) -> None:
        for i in range(400):  # about 100 pages that existed before the savepoint
            uow.set_meta(f"k{i}", bytes([1]) * 1000)
        open_files.extend(sqlite_temp_files())

    assert queued_behind_a_held_batch(store, [rewrite, rewrite]) == [None, None]
    assert sizes == [1, 1, 2]  # the fill, the holding unit, then the two as one batch
    assert open_files == []


def test_a_unit_that_submits_another_is_refused_not_deadlocked(store: SqliteStore) -> None:
    with pytest.raises(RuntimeError, match="do not nest"):
        store.atomic(lambda uow: store.atomic(put("inner")))
    assert meta(store, "inner") is None


class FailingCommit:
    """A connection whose COMMIT fails once (for every thread sharing `left`), as a full disk
    does: SQLite rolls the transaction back."""

    def __init__(self, conn: sqlite3.Connection, left: list[int]) -> None:
        self._conn, self._left = conn, left

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "COMMIT" and self._left[0]:
            self._left[0] -= 1
            self._conn.execute("ROLLBACK")
            exc = sqlite3.OperationalError("database or disk is full")
            exc.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
            raise exc
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def test_a_failed_commit_fails_every_unit_of_the_batch(store: SqliteStore) -> None:
    """Nobody is told a unit was done when the COMMIT that would have covered it failed."""
    left = [1]  # the next COMMIT on a failing connection fails, whichever thread leads

    def failing_connection() -> None:
        store._local.conn = FailingCommit(store._connect(), left)

    sizes = batches_of(store)
    outcomes = queued_behind_a_held_batch(
        store, [put(k) for k in ("a", "b", "c")], setup=failing_connection
    )
    assert sizes == [1, 3] and left == [0]
    assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
    assert all(meta(store, k) is None for k in ("a", "b", "c"))


CRASHING_WRITER = textwrap.dedent(
    """
    import sys, threading
    from storage.sqlite.store import SqliteStore

    store = SqliteStore(sys.argv[1])
    store.init()
    lock = threading.Lock()

    def writer(t):
        i = 0
        while True:
            key = f"{t}-{i}"
            def unit(uow, key=key):
                uow.set_meta("a:" + key, b"1")
                uow.set_meta("b:" + key, b"1")
            store.atomic(unit)
            with lock:  # acknowledged only after the COMMIT covering it returned
                sys.stdout.write(key + "\\n")
                sys.stdout.flush()
            i += 1

    for t in range(8):
        threading.Thread(target=writer, args=(t,), daemon=True).start()
    threading.Event().wait()
    """
)


def test_a_process_killed_mid_batch_loses_nothing_it_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "crash.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHING_WRITER, str(path)],
        cwd=ROOT, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.stdout is not None
    acked = []
    try:
        while len(acked) < 400:
            line = proc.stdout.readline()
            assert line, "the writer stopped before it was killed"
            acked.append(line.decode().strip())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    acked += [x.decode().strip() for x in proc.stdout.read().splitlines()]
    proc.stdout.close()
    conn = sqlite3.connect(path)
    keys = {row[0] for row in conn.execute("SELECT key FROM meta")}
    conn.close()
    written = {k[2:] for k in keys if k[:2] in ("a:", "b:")}
    assert all(f"a:{k}" in keys and f"b:{k}" in keys for k in written)  # whole units only
    assert set(acked) <= written  # nothing acknowledged was lost


INCREMENTS = textwrap.dedent(
    """
    import sys, threading
    from storage.sqlite.store import SqliteStore

    store = SqliteStore(sys.argv[1])

    def bump(uow):
        n = int(uow.get_meta("n") or b"0")
        uow.set_meta("n", str(n + 1).encode())

    threads = [threading.Thread(target=lambda: [store.atomic(bump) for _ in range(50)])
               for _ in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
    """
)


def test_two_processes_batching_at_once_lose_no_update(store: SqliteStore) -> None:
    """Read-modify-write units from two processes of four threads each: every one counted."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, "-c", INCREMENTS, str(store.path)], cwd=ROOT, env=env)
        for _ in range(2)
    ]
    assert [p.wait(120) for p in procs] == [0, 0]
    assert meta(store, "n") == b"400"


def test_the_wal_is_checkpointed_by_a_thread_not_by_a_commit(
    store: SqliteStore, tmp_path: Path
) -> None:
    """Commits never copy the WAL into the database (autocheckpoint off); the checkpoint thread
    does, soon after enough units: a copy of the database file alone then holds them all."""
    assert store._connect().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    for i in range(EVERY_UNITS + 10):
        store.atomic(put(f"c{i}"))

    def in_main_file() -> int:
        copy = tmp_path / "main-only.sqlite3"
        copy.write_bytes(store.path.read_bytes())  # without its -wal: what was checkpointed
        conn = sqlite3.connect(copy)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM meta WHERE key LIKE 'c%'").fetchone()[0])
        except sqlite3.DatabaseError:  # no table checkpointed yet, or the copy was taken
            return 0  # while the checkpoint wrote the file (torn): look again
        finally:
            conn.close()

    deadline = time.monotonic() + 10
    while in_main_file() < EVERY_UNITS and time.monotonic() < deadline:
        time.sleep(0.05)
    assert in_main_file() >= EVERY_UNITS


def test_the_wal_starts_again_under_writes_that_never_pause(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Threads that write without a pause leave no moment at which a passive checkpoint has
    copied every frame, so SQLite never starts the WAL again and it grows with every commit;
    the checkpoint thread's last round under the writers' lock lets it start again, so the file
    stays about RESTART_FRAMES long."""
    monkeypatch.setattr(checkpoints, "EVERY_UNITS", 20)
    monkeypatch.setattr(checkpoints, "RESTART_FRAMES", 100)
    value = os.urandom(3000)  # a page of its own each
    stop = time.monotonic() + 20

    def write(name: str) -> None:
        for i in range(500):
            if time.monotonic() > stop:
                return
            store.atomic(lambda uow, i=i: uow.set_meta(f"{name}{i}", value))

    threads = [threading.Thread(target=write, args=(f"w{t}:",)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    written = store.read(lambda uow: uow.get_meta("w0:499"))
    assert written == value  # all 2,000 units ran: at least 2,000 frames were written
    frame = 24 + 4096
    assert os.path.getsize(f"{store.path}-wal") < 600 * frame  # started again, many times


def test_a_wal_a_long_read_let_grow_is_cut_back_when_it_starts_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read held open keeps the checkpoint from copying the frames written after it began,
    so the WAL grows past its usual length; once the read ends and a checkpoint copies them,
    the next writer starts the WAL again and cuts the file back to WAL_SIZE_LIMIT."""
    monkeypatch.setattr(checkpoints, "WAL_SIZE_LIMIT", 64 * 1024)
    store = SqliteStore(tmp_path / "store.sqlite3")
    store.init()
    reader = sqlite3.connect(store.path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM meta").fetchone()
    value = os.urandom(3000)
    for i in range(300):
        store.atomic(lambda uow, i=i: uow.set_meta(f"r{i}", value))
    grown = os.path.getsize(f"{store.path}-wal")
    assert grown > 1_000_000
    reader.execute("COMMIT")
    reader.close()
    Checkpointer(store._open, f"{store.path}-lock").checkpoint()
    store.atomic(put("after"))
    assert os.path.getsize(f"{store.path}-wal") <= 64 * 1024
    assert meta(store, "r299") == value and meta(store, "after") == b"1"
    store.close()


def test_a_last_checkpoint_round_that_cannot_take_the_writers_lock_is_logged(
    store: SqliteStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The lock file cannot be opened (a directory in its place): the passive rounds ran, the
    failure is a warning, nothing raises, and writers go on."""
    monkeypatch.setattr(checkpoints, "RESTART_FRAMES", 1)
    store.atomic(put("before"))
    in_the_way = tmp_path / "not-a-lock-file"
    in_the_way.mkdir()
    Checkpointer(store._open, str(in_the_way)).checkpoint()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("WAL checkpoint failed" in w for w in warnings), warnings
    assert store.atomic(put("after")) == "after"


def test_a_unit_is_answered_only_after_the_wal_holding_it_is_synced(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """COMMIT does not sync (synchronous = NORMAL): a sync of the WAL that begins after the
    COMMIT of a unit's batch ends before the unit is answered (the store's code runs; the spies
    only note when each step happened)."""
    assert store._connect().execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    events: list[tuple[str, Any]] = []
    real_sync, real_run_batch = os.fdatasync, store._run_batch
    syncs = itertools.count()

    def sync(fd: int) -> None:
        n = next(syncs)
        events.append(("sync begins", n))
        real_sync(fd)
        events.append(("sync ends", n))

    def run_batch(units: list[Unit[Any]]) -> None:
        real_run_batch(units)
        events.append(("committed", {unit.value for unit in units}))

    monkeypatch.setattr(os, "fdatasync", sync)
    store._run_batch = run_batch  # type: ignore[method-assign]

    def write(key: str) -> None:
        store.atomic(put(key))
        events.append(("answered", key))

    threads = [threading.Thread(target=write, args=(f"s{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    answers = {key: i for i, (what, key) in enumerate(events) if what == "answered"}
    assert len(answers) == 8
    for key, answered in answers.items():
        (committed,) = [i for i, (what, keys) in enumerate(events) if what == "committed"
                        and key in keys]  # fmt: skip
        begun = {n for what, n in events[committed:answered] if what == "sync begins"}
        ended = {n for what, n in events[committed:answered] if what == "sync ends"}
        assert begun & ended, (key, events)
    assert all(meta(store, f"s{i}") == b"1" for i in range(8))


def test_a_batch_whose_every_unit_failed_is_not_synced(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing of it was committed and nobody is answered as done: no fsync is spent on it."""
    real_sync, synced = os.fdatasync, []

    def sync(fd: int) -> None:
        synced.append(fd)
        real_sync(fd)

    def fails(uow: SqliteUnitOfWork) -> None:
        uow.set_meta("bad", b"1")
        raise ValueError("refused")

    monkeypatch.setattr(os, "fdatasync", sync)
    sizes = batches_of(store)
    outcomes = queued_behind_a_held_batch(store, [fails, fails, fails])
    assert sizes == [1, 3] and all(isinstance(o, ValueError) for o in outcomes)
    assert len(synced) == 1  # the holding unit's batch only
    assert meta(store, "bad") is None


def test_a_failed_wal_sync_answers_no_unit_of_its_batch_as_done(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk refused to sync: the batch is committed but perhaps not on disk, so no caller
    hears it was done (each gets StoreUnavailable; an SMS sent again finds its frame and the
    same answer); the next batch syncs and is answered."""
    real_sync = os.fdatasync
    failing = [True]

    def sync(fd: int) -> None:
        if failing[0]:
            raise OSError(5, "Input/output error")
        real_sync(fd)

    monkeypatch.setattr(os, "fdatasync", sync)
    outcomes: list[Any] = [None] * 6

    def write(i: int) -> None:
        try:
            outcomes[i] = store.atomic(put(f"w{i}"))
        except StoreUnavailable as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
    assert "Input/output error" in str(outcomes[0])
    assert meta(store, "w0") == b"1"  # committed, perhaps not on disk: not answered as done
    failing[0] = False
    assert store.atomic(put("after")) == "after"


def test_the_next_batch_is_written_while_the_last_one_waits_for_the_disk(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A's sync is slow (held here): B's unit, submitted meanwhile in the same process, is led,
    committed, synced and answered; A is answered only once its own sync returned."""
    real_sync = os.fdatasync
    syncing, disk = threading.Event(), threading.Event()
    first = [True]

    def slow_once(fd: int) -> None:
        if first[0]:
            first[0] = False
            syncing.set()
            assert disk.wait(10)
        real_sync(fd)

    monkeypatch.setattr(os, "fdatasync", slow_once)
    answered: list[str] = []
    a = threading.Thread(target=lambda: answered.append(store.atomic(put("a"))))
    a.start()
    assert syncing.wait(10)
    assert store.atomic(put("b")) == "b"  # not held behind A's sync
    assert answered == []  # A committed (B may have read it) but is not on disk yet
    disk.set()
    a.join(10)
    assert answered == ["a"]


def test_a_lock_file_that_cannot_be_opened_leaves_the_store_unavailable_until_it_can(
    tmp_path: Path,
) -> None:
    """The writers' `-lock` file beside the database cannot be opened (here: a directory took
    its name): a unit of work fails with StoreUnavailable and writes nothing; once the file can
    be opened, the same store writes again."""
    store = SqliteStore(tmp_path / "store.sqlite3")
    store.init()
    in_the_way = tmp_path / "store.sqlite3-lock"
    in_the_way.mkdir()
    try:
        with pytest.raises(StoreUnavailable, match="cannot open store.sqlite3-lock"):
            store.atomic(put("refused"))
        assert meta(store, "refused") is None
        in_the_way.rmdir()
        assert store.atomic(put("later")) == "later"
        assert meta(store, "later") == b"1" and meta(store, "refused") is None
    finally:
        store.close()


def test_a_batch_synced_when_no_wal_exists_is_answered(store: SqliteStore) -> None:
    """No WAL file at sync time (nothing was ever written through one, or SQLite removed it
    when the last connection closed): there is nothing to sync, and the batch is answered."""
    store.atomic(put("k"))
    store.close()  # the last connection: SQLite checkpoints the WAL and deletes it
    wal = Path(f"{store.path}-wal")
    assert not wal.exists()
    unit: Unit[Any] = Unit(lambda uow: None)
    unit.succeed("done")
    store._sync_wal([unit])  # what group commit calls after the batch's COMMIT
    assert unit.outcome() == "done"


def test_a_checkpoint_that_fails_is_logged_and_raises_into_no_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A database the checkpoint thread cannot open, or a checkpoint SQLite refuses, is logged
    as a warning and raises nothing (the thread's next round tries again; writers never wait
    on it)."""
    not_a_database = tmp_path / "garbage.sqlite3"
    not_a_database.write_bytes(b"this is not an SQLite file" * 200)
    attempts: list[str] = []

    def refuse() -> sqlite3.Connection:
        attempts.append("open")
        raise StoreUnavailable("cannot open garbage.sqlite3")

    def garbage() -> sqlite3.Connection:
        attempts.append("checkpoint")
        return sqlite3.connect(not_a_database)

    Checkpointer(refuse).checkpoint()
    Checkpointer(garbage).checkpoint()
    assert attempts == ["open", "checkpoint"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("cannot open the database" in w for w in warnings), warnings
    assert any("WAL checkpoint failed" in w for w in warnings), warnings
    good = SqliteStore(tmp_path / "good.sqlite3")
    good.init()
    good.atomic(put("k"))
    Checkpointer(good._open).checkpoint()  # a working database: no warning
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == len(warnings)
    good.close()
