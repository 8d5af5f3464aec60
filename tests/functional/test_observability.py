"""What operators see: /readyz with worker heartbeats, /metrics against the store, the dashboard's
workers (the multiprocess request counts are checked on a real gunicorn in tests/e2e)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from app.bootstrap import Services
from app.services import staff, workers
from app.worker import Worker
from storage.errors import StoreUnavailable
from storage.models import JobStatus, StaffRole, TransactionState
from storage.sqlite.store import SqliteStore
from tests.conftest import World
from tests.functional.test_console import HTTPS, PASSWORD, sign_in
from tests.functional.test_inbound import ASHA, RAVI, Routes
from tests.support import FakeClock, Phone

VPA = "ravi.k@okaxis"


def samples(
    client: FlaskClient, **headers: str
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics parsed by prometheus-client's own parser: (name, sorted labels) -> value."""
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.data
    assert r.content_type.startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(r.get_data(True)):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def named(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str
) -> dict[Any, float]:
    """The samples of one metric, keyed by their label values."""
    return {tuple(v for _, v in labels): value for (n, labels), value in found.items() if n == name}


def beat(svc: Services, owner: str = "box:1:a") -> Worker:
    worker = Worker(svc, {}, owner=owner)
    worker.heartbeat()
    return worker


@pytest.fixture
def routes(client: FlaskClient, world: World, clock: FakeClock) -> Routes:
    return Routes(client, world, clock)


@pytest.fixture
def strict(settings: dict[str, Any], clock: FakeClock) -> Iterator[tuple[FlaskClient, Services]]:
    """An installation whose /readyz needs a worker (SMSPAY_READYZ_NEEDS_WORKER=1)."""
    app = create_app({**settings, "readyz_needs_worker": 1}, clock=clock)
    svc: Services = app.extensions["smspay"]
    svc.store.init()
    yield app.test_client(), svc
    svc.store.close()


def test_readyz_needs_a_worker_heard_from_within_the_quiet_window_when_told_to(
    strict: tuple[FlaskClient, Services], clock: FakeClock
) -> None:
    client, svc = strict
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.get_json() == {
        "status": "no worker", "workers": 0, "worker": "none", "quiet_seconds": 60,
        "last_beat_at": None,
    }  # fmt: skip
    beat(svc)
    assert client.get("/readyz").get_json() == {"status": "ready", "workers": 1}
    clock.advance(61)  # no beat for longer than SMSPAY_WORKER_QUIET_SECONDS
    r = client.get("/readyz")
    assert r.status_code == 503 and r.get_json()["status"] == "no worker"
    assert r.get_json()["last_beat_at"] == clock.now() - 61
    beat(svc, "box:2:b")  # another worker, or the same one again
    assert client.get("/readyz").status_code == 200


def test_a_worker_that_stopped_says_so_and_is_not_counted(
    strict: tuple[FlaskClient, Services],
) -> None:
    client, svc = strict
    worker = beat(svc)
    worker.stop()
    assert worker.run() == 0  # stopped before it began: only the goodbye beat
    assert client.get("/readyz").status_code == 503
    (w,) = workers.workers(svc)
    assert w.state == "stopped"


def test_by_default_readyz_reports_a_missing_or_quiet_worker_but_stays_ready(
    client: FlaskClient, svc: Services, clock: FakeClock
) -> None:
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.get_json()["worker"] == "none" and r.get_json()["workers"] == 0
    beat(svc)
    assert client.get("/readyz").get_json() == {"status": "ready", "workers": 1}
    clock.advance(61)
    r = client.get("/readyz")
    assert r.status_code == 200 and r.get_json()["worker"] == "quiet"


def test_metrics_report_what_the_store_holds(
    client: FlaskClient, routes: Routes, svc: Services, world: World, clock: FakeClock
) -> None:
    asha: Phone = world.user(ASHA, "1234", rupees=1000, name="Asha")
    ravi: Phone = world.user(RAVI, "4321", name="Ravi")
    assert "Paid" in routes.twilio(ASHA, asha.pay(RAVI, 2_500, at=clock.now()))[1]
    routes.tasker(ASHA, asha.pay(VPA, 25_000, at=clock.now()))  # a payout: a job for the worker
    routes.tasker(RAVI, ravi.pay(ASHA, 50_000, at=clock.now()))  # refused: insufficient funds
    svc.store.atomic(lambda uow: uow.enqueue_job("test", "t1", {}, clock.now() - 30, clock.now()))
    job = svc.store.atomic(lambda uow: uow.claim_job("w", clock.now(), 60, ["test"]))
    assert job is not None
    svc.store.atomic(lambda uow: uow.bury_job("t1", "w", "gave up", clock.now()))
    beat(svc)
    clock.advance(7)

    found = samples(client)
    assert found[("smspay_store_up", ())] == 1
    txns = named(found, "smspay_transactions_today")
    states = {s: 0 for s in TransactionState}
    for t in svc.store.read(lambda uow: uow.search_transactions(limit=100)):
        states[t.state] += 1
    assert txns == {(s.value,): float(n) for s, n in states.items()}
    assert states[TransactionState.SUCCESS] == 2 and states[TransactionState.FAILED] == 1
    paise = named(found, "smspay_transactions_today_paise")
    assert paise[("SUCCESS",)] == 100_000 + 2_500  # the cash-in and the payment
    assert named(found, "smspay_transactions_failed_today") == {("insufficient_funds",): 1}

    groups = svc.store.read(lambda uow: uow.job_groups())
    assert named(found, "smspay_jobs") == {(g.kind, g.status.value): g.count for g in groups}
    assert ("payout.create", "pending") in named(found, "smspay_jobs")
    assert found[("smspay_jobs_dead", ())] == 1
    pending = [g.oldest_run_after for g in groups if g.status is JobStatus.PENDING]
    assert found[("smspay_jobs_oldest_due_seconds", ())] == max(0, clock.now() - min(pending))

    outbox = svc.store.read(lambda uow: uow.sms_counts())
    assert outbox and named(found, "smspay_outbox_sms") == {(k,): v for k, v in outbox.items()}

    assert named(found, "smspay_workers") == {("running",): 1, ("quiet",): 0, ("stopped",): 0}
    host = workers.workers(svc)[0].host
    assert named(found, "smspay_worker_seconds_since_heartbeat") == {(host, "box:1:a"): 7}


def test_metrics_count_requests_by_route_and_status(client: FlaskClient) -> None:
    before = named(samples(client), "smspay_http_requests_total")
    for _ in range(3):
        client.get("/healthz")
    client.get("/nowhere")
    assert client.post("/sms/twilio", data={"From": "+919876543210"}).status_code == 403
    assert client.put("/healthz").status_code == 405
    after = named(samples(client), "smspay_http_requests_total")
    assert after[("GET", "/healthz", "200")] - before.get(("GET", "/healthz", "200"), 0) == 3
    refused = ("POST", "/sms/twilio", "403")  # refused in its view: still under its route
    assert after[refused] - before.get(refused, 0) == 1
    wrong_method = ("PUT", "(unmatched)", "405")
    assert after[wrong_method] - before.get(wrong_method, 0) == 1
    unmatched = ("GET", "(unmatched)", "404")
    assert after[unmatched] - before.get(unmatched, 0) == 1
    assert after[("GET", "/metrics", "200")] - before.get(("GET", "/metrics", "200"), 0) == 1


def test_metrics_may_require_a_bearer_token(settings: dict[str, Any], clock: FakeClock) -> None:
    app = create_app({**settings, "metrics_token": "s3cret-scrape"}, clock=clock)
    app.extensions["smspay"].store.init()
    client = app.test_client()
    try:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-scrape"}):
            r = client.get("/metrics", headers=headers)
            assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
        assert samples(client, Authorization="Bearer s3cret-scrape")[("smspay_store_up", ())] == 1
    finally:
        app.extensions["smspay"].store.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # it only sees StoreUnavailable
def test_metrics_say_the_store_is_down_without_failing(
    client: FlaskClient, svc: Services, tmp_path: Path
) -> None:
    from storage.sqlite import SqliteStore

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    real, down = svc.store, SqliteStore(blocker / "db.sqlite3")
    svc.__dict__["store"] = down
    try:
        found = samples(client)
    finally:
        svc.__dict__["store"] = real
    assert found[("smspay_store_up", ())] == 0
    assert not named(found, "smspay_workers")


def test_the_dashboard_and_the_api_show_a_quiet_worker(
    client: FlaskClient, svc: Services, clock: FakeClock
) -> None:
    beat(svc, "box:1:old")
    clock.advance(120)
    beat(svc, "box:2:new")
    staff.add_staff(svc, "sam", StaffRole.SUPPORT, "test")
    staff.set_password(svc, "sam", PASSWORD, "test")
    page = sign_in(client, "sam").get("/console/", base_url=HTTPS).get_data(True)
    table = page.split('id="workers"')[1].split("</table>")[0]
    rows = table.split("<tr>")[2:]
    assert "box:2:new" in rows[0] and "running" in rows[0]
    assert "box:1:old" in rows[1] and "quiet" in rows[1]
    _, token = staff.add_staff(svc, "ops", StaffRole.SUPPORT, "test")
    k = client.get("/api/v1/kpis", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert [(w["owner"], w["state"]) for w in k["workers"]] == [
        ("box:2:new", "running"),
        ("box:1:old", "quiet"),
    ]
    assert k["workers"][1]["seconds_since_beat"] == 120


def test_the_sqlite_wal_size_is_reported(client: FlaskClient, svc: Services) -> None:
    if not isinstance(svc.store, SqliteStore):
        assert not any(name == "smspay_store_wal_bytes" for name, _ in samples(client))
        return
    svc.store.atomic(lambda uow: uow.set_meta("probe", b"1" * 5000))
    found = samples(client)
    on_disk = Path(f"{svc.store.path}-wal").stat().st_size
    assert on_disk > 5000
    assert found[("smspay_store_wal_bytes", ())] == on_disk


def test_a_wal_that_cannot_be_looked_at_leaves_the_rest_of_the_scrape(
    client: FlaskClient, svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not isinstance(svc.store, SqliteStore):
        pytest.skip("the WAL is the SQLite store's")

    def refuse() -> int:
        raise StoreUnavailable("cannot read the size of smspay.sqlite3-wal: permission denied")

    monkeypatch.setattr(svc.store, "wal_bytes", refuse)
    found = samples(client)
    assert found[("smspay_store_up", ())] == 1
    assert not any(name == "smspay_store_wal_bytes" for name, _ in found)


def test_sqlite_batches_and_their_write_lock_times_are_counted(
    client: FlaskClient, svc: Services
) -> None:
    if not isinstance(svc.store, SqliteStore):
        pytest.skip("group commit is the SQLite store's")
    before = samples(client)
    for i in range(3):
        svc.store.atomic(lambda uow, i=i: uow.set_meta(f"probe{i}", b"1"))
    after = samples(client)

    def grew(name: str) -> float:
        key = (name, (("store", "sqlite"),))
        return after.get(key, 0) - before.get(key, 0)

    assert grew("smspay_store_batches_total") == 3  # one at a time: three transactions
    assert grew("smspay_store_batch_units_total") == 3
    held = grew("smspay_store_write_lock_held_seconds_total")
    assert held > 0
    # one thread's CPU over the time it held the lock: more than nothing, never more than that
    assert 0 < grew("smspay_store_write_lock_cpu_seconds_total") <= held + 1e-3
    assert ("smspay_store_write_lock_wait_seconds_total", (("store", "sqlite"),)) in after
