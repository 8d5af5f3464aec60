"""Every request has an id: taken from X-Request-Id or made, returned, and on each log line."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from app.logs import JsonFormatter
from tests.conftest import World
from tests.functional.test_inbound import ASHA
from tests.support import FakeClock, tasker_body, tasker_headers


class Lines(logging.Handler):
    """Collects the JSON lines the production formatter writes."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    logger = logging.getLogger("app")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def test_the_callers_request_id_is_kept_returned_and_logged(
    client: FlaskClient, lines: Lines
) -> None:
    r = client.post(
        "/sms/twilio", data={"From": "+919876543210"}, headers={"X-Request-Id": "edge-42.a:b"}
    )
    assert r.status_code == 403 and r.headers["X-Request-Id"] == "edge-42.a:b"
    (line,) = [x for x in lines.lines if "refused" in str(x["msg"])]
    assert line["request_id"] == "edge-42.a:b" and line["level"] == "WARNING"


@pytest.mark.parametrize("offered", [None, "", "x" * 65, "bad id", "id\u00e9", "a;b"])
def test_a_missing_or_odd_request_id_is_replaced_by_a_fresh_one(
    offered: str | None, client: FlaskClient, lines: Lines
) -> None:
    headers = {} if offered is None else {"X-Request-Id": offered}
    first = client.get("/healthz", headers=headers).headers["X-Request-Id"]
    second = client.get("/healthz", headers=headers).headers["X-Request-Id"]
    assert len(first) == 32 and int(first, 16) >= 0 and first != second


def test_log_lines_outside_a_request_carry_no_request_id(client: FlaskClient, lines: Lines) -> None:
    client.get("/healthz", headers={"X-Request-Id": "r-1"})
    logging.getLogger("app.test").warning("after the request, from +919876543210")
    assert lines.lines[-1] == {
        **lines.lines[-1],
        "msg": "after the request, from +91******3210",
        "logger": "app.test",
    }
    assert "request_id" not in lines.lines[-1]


def test_the_jobs_a_request_queues_carry_its_id_and_so_do_the_jobs_they_queue(
    client: FlaskClient, world: World, clock: FakeClock
) -> None:
    from app.jobs import HANDLERS
    from app.worker import Worker

    asha = world.user(ASHA, "1234", rupees=1000, name="Asha")
    raw = tasker_body(ASHA, asha.pay("ravi.k@okaxis", 10_000, at=clock.now()))
    headers = tasker_headers(world.gateway_id, world.gateway_secret, raw, int(clock.now()))
    r = client.post("/sms/tasker", data=raw, headers={**headers, "X-Request-Id": "req-payout-1"})
    assert r.status_code == 200 and "Sending Rs 100.00" in r.get_json()["reply"]
    svc = world.svc
    (create,) = [j for j in svc.store.read(lambda uow: uow.jobs()) if j.kind == "payout.create"]
    assert create.payload["request_id"] == "req-payout-1"
    Worker(svc, {"payout.create": HANDLERS["payout.create"]}).run_once()
    polls = [j for j in svc.store.read(lambda uow: uow.jobs()) if j.kind == "payout.poll"]
    assert polls and {j.payload["request_id"] for j in polls} == {"req-payout-1"}
