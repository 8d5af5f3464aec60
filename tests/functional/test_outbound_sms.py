"""Outbound status SMS end to end: the outbox, the worker, each channel, on both backends.

The store, the worker and the routes are real. Twilio's REST API is faked only with `responses`
replaying the documented bodies in tests/fixtures/twilio/ (each test names its fixtures); Twilio's
status callbacks are signed with the SDK's own RequestValidator; the Tasker phones sign like the
profile in docs/tasker.md. Time is a FakeClock, and the worker runs one job at a time.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.bootstrap import Services
from app.jobs import HANDLERS, ON_DEAD
from app.services import admin
from app.worker import Worker
from storage.models import Job, JobStatus, OutboundSms
from tests.conftest import World
from tests.functional.test_inbound import Routes
from tests.support import (
    ACCOUNT_SID,
    PUBLIC_URL,
    SERVICE_NUMBER,
    FakeClock,
    Phone,
    tasker_headers,
    twilio_signature,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "twilio"
MESSAGES_URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
STATUS_URL = PUBLIC_URL + "/sms/twilio/status"
# The message the Twilio fixtures describe: to this number, with this text, SID ...aa01,
# created by Twilio at 12:00:03 on 20 Aug 2025; our clock starts just before.
TO = "+919876543210"
BODY = "SMS Pay: paid Rs 250.00 to 98******10. Txn 7KQ2M9XH4P. Bal Rs 1250.00"
SID = "SM0000000000000000000000000000aa01"
T0 = datetime(2025, 8, 20, 12, 0, 0, tzinfo=UTC).timestamp()
ASHA, RAVI = "+919876543210", "+919812345678"
TWILIO = {"sms_channel": "twilio", "twilio_account_sid": ACCOUNT_SID, "twilio_from": SERVICE_NUMBER}
TASKER = {"sms_channel": "tasker"}


@pytest.fixture
def channel_settings() -> dict[str, Any]:
    """The outbound channel's settings (each class below picks its own)."""
    return {}


@pytest.fixture
def tweaks(request: pytest.FixtureRequest) -> dict[str, Any]:
    """More settings for one test (parametrize it indirectly)."""
    return dict(getattr(request, "param", {}))


@pytest.fixture
def settings(
    settings: dict[str, Any], channel_settings: dict[str, Any], tweaks: dict[str, Any]
) -> dict[str, Any]:
    return {**settings, **channel_settings, **tweaks}


def load(name: str, **changes: Any) -> dict[str, Any]:
    """A Twilio fixture's body without its `_source` note, with some fields changed."""
    body: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    body.pop("_source")
    return {**body, **changes}


def queue_sms(svc: Services, to: str = TO, body: str = BODY) -> str:
    """Put one SMS in the outbox (with its `sms.send` job), as a state change would; its id."""
    now = svc.clock.now()
    svc.store.atomic(lambda uow: uow.enqueue_sms(OutboundSms(to, body, now)))
    newest = svc.store.read(lambda uow: uow.outbox())[-1]
    assert newest.id is not None and newest.body == body
    return newest.id


def sms(svc: Services, sms_id: str) -> OutboundSms:
    found = svc.store.read(lambda uow: uow.get_sms(sms_id))
    assert found is not None
    return found


def sms_job(svc: Services, sms_id: str) -> Job:
    jobs = svc.store.read(lambda uow: uow.jobs())
    (job,) = [j for j in jobs if j.kind == "sms.send" and j.payload == {"id": sms_id}]
    return job


def run_worker(svc: Services) -> int:
    """Run every job that is due now, one at a time; how many ran."""
    worker = Worker(svc, HANDLERS, owner="worker-1", rng=random.Random(7))
    ran = 0
    while worker.run_once():
        ran += 1
        assert ran < 100, "the worker never ran out of due jobs"
    return ran


def run_until_settled(svc: Services, clock: FakeClock) -> None:
    """Run the worker, moving the clock to each retry's time, until no job is waiting."""
    for _ in range(20):
        run_worker(svc)
        waiting = svc.store.read(lambda uow: uow.jobs(JobStatus.PENDING))
        if not waiting:
            return
        clock.t = max(clock.t, min(j.run_after for j in waiting))
    raise AssertionError("jobs kept waiting")


def creates(api: responses.RequestsMock) -> list[Any]:
    """Every Message create request the SDK made."""
    return [c for c in api.calls if c.request.method == "POST"]


def created(api: responses.RequestsMock) -> int:
    """How many Message create requests Twilio accepted (201)."""
    return sum(1 for c in creates(api) if getattr(c.response, "status_code", 0) == 201)


# --- the log channel (the embedded default) ---------------------------------------------------


@pytest.fixture
def asha(world: World) -> Phone:
    return world.user(ASHA, "1234", rupees=1000, name="Asha")


@pytest.fixture
def ravi(world: World) -> Phone:
    return world.user(RAVI, "4321", rupees=0, name="Ravi")


def pay(client: FlaskClient, world: World, clock: FakeClock, payer: Phone) -> str:
    """Asha pays Ravi Rs 250 through the Tasker inbound route; the payer's reply text."""
    status, reply = Routes(client, world, clock).tasker(
        ASHA, payer.pay(RAVI, 25_000, at=clock.now())
    )
    assert status == 200, reply
    return reply


def payee_sms(svc: Services, reply: str) -> OutboundSms:
    """The payee's SMS for the payment whose reply this is."""
    ref = reply.split("Ref ")[1][:10]
    (found,) = [m for m in svc.store.read(lambda uow: uow.outbox()) if m.reference == ref]
    assert found.to == RAVI
    return found


def test_log_channel_marks_the_payees_sms_sent_once(
    client: FlaskClient,
    world: World,
    svc: Services,
    clock: FakeClock,
    asha: Phone,
    ravi: Phone,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sms.log_channel")
    queued = payee_sms(svc, pay(client, world, clock, asha))
    assert queued.status == "pending" and queued.provider_id == ""
    assert queued.id is not None
    run_worker(svc)
    done = sms(svc, queued.id)
    assert (done.status, done.channel, done.attempts) == ("sent", "log", 1)
    assert done.provider_id == "log-" + queued.id
    assert sms_job(svc, queued.id).status == JobStatus.DONE

    # Again, and with a stray second job for the same SMS: nothing more goes out.
    assert run_worker(svc) == 0
    now = clock.now()
    svc.store.atomic(lambda uow: uow.enqueue_job("sms.send", "stray", {"id": queued.id}, now, now))
    assert run_worker(svc) == 1
    assert sms(svc, queued.id) == done
    sends = [r for r in caplog.records if f"key={queued.id} " in r.getMessage()]
    assert len(sends) == 1
    assert RAVI not in caplog.text and queued.body not in caplog.text


# --- Twilio -------------------------------------------------------------------------------------


@pytest.fixture
def twilio_api() -> Iterator[responses.RequestsMock]:
    """Twilio's REST API: every call must be registered, and every registered one made."""
    with responses.RequestsMock() as api:
        yield api


class TestTwilio:
    @pytest.fixture
    def channel_settings(self) -> dict[str, Any]:
        return TWILIO

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock(T0)

    def test_sends_once_with_the_documented_form(
        self, svc: Services, clock: FakeClock, twilio_api: responses.RequestsMock
    ) -> None:
        twilio_api.add(responses.POST, MESSAGES_URL, json=load("message_create_queued"), status=201)
        sms_id = queue_sms(svc)
        run_worker(svc)
        (call,) = creates(twilio_api)
        assert parse_qs(call.request.body) == {
            "To": [TO],
            "From": [SERVICE_NUMBER],
            "Body": [BODY],
            "StatusCallback": [STATUS_URL],
        }
        sent = sms(svc, sms_id)
        assert (sent.status, sent.channel, sent.provider_id, sent.error) == (
            "sent",
            "twilio",
            SID,
            "",
        )
        clock.advance(3600)
        assert run_worker(svc) == 0
        assert len(twilio_api.calls) == 1

    def test_a_5xx_is_retried_and_the_message_created_once(
        self, svc: Services, clock: FakeClock, twilio_api: responses.RequestsMock
    ) -> None:
        twilio_api.add(responses.POST, MESSAGES_URL, json=load("error_20500_internal"), status=500)
        twilio_api.add(responses.GET, MESSAGES_URL, json=load("messages_list_empty"))
        twilio_api.add(responses.POST, MESSAGES_URL, json=load("message_create_queued"), status=201)
        sms_id = queue_sms(svc)
        run_worker(svc)
        assert sms(svc, sms_id).status == "sending"  # outcome unknown: not sent, not failed
        run_until_settled(svc, clock)
        assert [c.request.method for c in twilio_api.calls] == ["POST", "GET", "POST"]
        assert created(twilio_api) == 1
        sent = sms(svc, sms_id)
        assert (sent.status, sent.provider_id) == ("sent", SID)
        job = sms_job(svc, sms_id)
        assert (job.status, job.attempts) == (JobStatus.DONE, 2)

    def test_a_message_twilio_never_takes_is_failed_when_its_job_dies(
        self, svc: Services, clock: FakeClock, twilio_api: responses.RequestsMock
    ) -> None:
        twilio_api.add(responses.POST, MESSAGES_URL, json=load("error_20500_internal"), status=500)
        twilio_api.add(responses.GET, MESSAGES_URL, json=load("messages_list_empty"))
        sms_id = queue_sms(svc)
        worker = Worker(svc, HANDLERS, owner="worker-1", rng=random.Random(7), on_dead=ON_DEAD)
        for _ in range(svc.settings.worker_max_attempts):
            assert worker.run_once()
            waiting = svc.store.read(lambda uow: uow.jobs(JobStatus.PENDING))
            if waiting:
                clock.t = max(clock.t, min(j.run_after for j in waiting))
        assert sms_job(svc, sms_id).status is JobStatus.DEAD
        failed = sms(svc, sms_id)
        assert failed.status == "failed" and failed.error.startswith("gave up: ")
        assert created(twilio_api) == 0

    def test_an_invalid_number_fails_for_good_with_the_code(
        self, svc: Services, clock: FakeClock, twilio_api: responses.RequestsMock
    ) -> None:
        twilio_api.add(
            responses.POST, MESSAGES_URL, json=load("error_21211_invalid_to"), status=400
        )
        sms_id = queue_sms(svc)
        run_until_settled(svc, clock)
        clock.advance(86_400)
        assert run_worker(svc) == 0
        assert len(twilio_api.calls) == 1
        failed = sms(svc, sms_id)
        assert failed.status == "failed" and failed.provider_id == ""
        assert failed.error.startswith("21211 ") and "not a valid phone number" in failed.error
        assert TO not in failed.error  # Twilio's text repeats the number: masked
        job = sms_job(svc, sms_id)
        assert (job.status, job.attempts) == (JobStatus.DONE, 1)

    def test_a_timeout_after_twilio_accepted_is_found_not_resent(
        self, svc: Services, clock: FakeClock, twilio_api: responses.RequestsMock
    ) -> None:
        twilio_api.add(responses.POST, MESSAGES_URL, body=requests.exceptions.ReadTimeout("read"))
        twilio_api.add(responses.GET, MESSAGES_URL, json=load("messages_list"))
        sms_id = queue_sms(svc)
        run_worker(svc)
        assert sms(svc, sms_id).status == "sending"
        run_until_settled(svc, clock)
        assert [c.request.method for c in twilio_api.calls] == ["POST", "GET"]
        lookup = parse_qs(urlsplit(str(twilio_api.calls[1].request.url)).query)
        assert lookup["To"] == [TO] and lookup["From"] == [SERVICE_NUMBER]
        found = sms(svc, sms_id)
        assert (found.status, found.provider_id) == ("sent", SID)

    @pytest.mark.parametrize("tweaks", [{"twilio_messages_per_second": 1}], indirect=True)
    def test_the_rate_limit_defers_without_counting_an_attempt(
        self, svc: Services, clock: FakeClock, twilio_api: responses.RequestsMock
    ) -> None:
        twilio_api.add(responses.POST, MESSAGES_URL, json=load("message_create_queued"), status=201)
        second = load("message_create_queued", sid=SID[:-1] + "2")
        twilio_api.add(responses.POST, MESSAGES_URL, json=second, status=201)
        ids = [queue_sms(svc), queue_sms(svc, body=BODY + " (2)")]
        run_worker(svc)
        assert created(twilio_api) == 1
        waiting = [i for i in ids if sms(svc, i).status == "pending"]
        assert len(waiting) == 1
        deferred = sms_job(svc, waiting[0])
        assert deferred.status == JobStatus.PENDING and deferred.attempts == 0
        assert deferred.run_after == pytest.approx(T0 + 1)
        assert sms(svc, waiting[0]).attempts == 0

        clock.advance(0.5)
        assert run_worker(svc) == 0 and created(twilio_api) == 1
        clock.advance(0.5)
        run_worker(svc)
        assert created(twilio_api) == 2
        assert [sms(svc, i).status for i in ids] == ["sent", "sent"]
        assert sms_job(svc, waiting[0]).attempts == 1


# --- Twilio status callbacks --------------------------------------------------------------------


def post_status(
    client: FlaskClient, form: dict[str, str], signed: dict[str, str] | None = None
) -> TestResponse:
    """POST a status callback, signed over `signed` (default: the form itself)."""
    signature = twilio_signature(signed if signed is not None else form, STATUS_URL)
    return client.post("/sms/twilio/status", data=form, headers={"X-Twilio-Signature": signature})


class TestStatusCallbacks:
    @pytest.fixture
    def channel_settings(self) -> dict[str, Any]:
        return TWILIO

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock(T0)

    @pytest.fixture
    def sent_id(self, svc: Services) -> Iterator[str]:
        """An SMS the worker handed to Twilio, which answered with SID ...aa01."""
        with responses.RequestsMock() as api:
            api.add(responses.POST, MESSAGES_URL, json=load("message_create_queued"), status=201)
            sms_id = queue_sms(svc)
            run_worker(svc)
        assert sms(svc, sms_id).status == "sent"
        yield sms_id

    def test_delivered_is_recorded(self, client: FlaskClient, svc: Services, sent_id: str) -> None:
        r = post_status(client, load("status_callback_delivered"))
        assert r.status_code == 200
        assert sms(svc, sent_id).status == "delivered"

    def test_a_tampered_callback_gets_a_bare_403_and_changes_nothing(
        self, client: FlaskClient, svc: Services, sent_id: str
    ) -> None:
        signed = load("status_callback_undelivered")
        before = sms(svc, sent_id)
        tampered = {k: v for k, v in signed.items() if k != "ErrorCode"}
        tampered.update(MessageStatus="delivered", SmsStatus="delivered")
        wrong_url = twilio_signature(signed, PUBLIC_URL + "/sms/twilio")
        answers = [
            post_status(client, tampered, signed=signed),
            client.post("/sms/twilio/status", data=signed),
            client.post(
                "/sms/twilio/status", data=signed, headers={"X-Twilio-Signature": wrong_url}
            ),
        ]
        assert [(r.status_code, r.data) for r in answers] == [(403, b"")] * 3
        assert sms(svc, sent_id) == before

    def test_an_unknown_message_sid_is_404(
        self, client: FlaskClient, svc: Services, sent_id: str
    ) -> None:
        before = sms(svc, sent_id)
        r = post_status(client, load("status_callback_delivered", MessageSid="SM" + "f" * 32))
        assert r.status_code == 404
        assert sms(svc, sent_id) == before

    def test_out_of_order_reports_never_go_back(
        self, client: FlaskClient, svc: Services, sent_id: str
    ) -> None:
        assert post_status(client, load("status_callback_delivered")).status_code == 200
        assert post_status(client, load("status_callback_sent")).status_code == 200
        assert post_status(client, load("status_callback_messaging_service")).status_code == 200
        assert sms(svc, sent_id).status == "delivered"

    def test_undelivered_records_twilios_error_code(
        self, client: FlaskClient, svc: Services, sent_id: str
    ) -> None:
        assert post_status(client, load("status_callback_sent")).status_code == 200
        assert sms(svc, sent_id).status == "sent"
        assert post_status(client, load("status_callback_undelivered")).status_code == 200
        report = sms(svc, sent_id)
        assert report.status == "undelivered" and "30003" in report.error

    def test_partially_delivered_counts_as_delivered(
        self, client: FlaskClient, svc: Services, sent_id: str
    ) -> None:
        form = {**load("status_callback_delivered"), "MessageStatus": "partially_delivered"}
        form["SmsStatus"] = "partially_delivered"
        assert post_status(client, form).status_code == 200
        assert sms(svc, sent_id).status == "delivered"


# --- the Tasker phones' outbox ------------------------------------------------------------------


class TaskerPhone:
    """One Android phone running the outbox profile of docs/tasker.md."""

    def __init__(self, client: FlaskClient, clock: FakeClock, gateway_id: str, secret: str) -> None:
        self.client, self.clock, self.id, self.secret = client, clock, gateway_id, secret

    def headers(self, body: bytes, skew: int = 0) -> dict[str, str]:
        return tasker_headers(self.id, self.secret, body, int(self.clock.now()) + skew)

    def poll(self, limit: int = 5) -> list[dict[str, str]]:
        """GET the outbox; the messages now leased to this phone."""
        r = self.client.get(f"/sms/tasker/outbox?limit={limit}", headers=self.headers(b""))
        assert r.status_code == 200, r.data
        messages: list[dict[str, str]] = r.get_json()["messages"]
        return messages

    def ack(self, sms_id: str, status: str = "sent", reason: str = "") -> TestResponse:
        data: dict[str, str] = {"status": status}
        if reason:
            data["reason"] = reason
        raw = json.dumps(data).encode()
        return self.client.post(f"/sms/tasker/outbox/{sms_id}", data=raw, headers=self.headers(raw))


def last_seen(svc: Services, gateway_id: str) -> float | None:
    """When the service last heard from a Tasker phone."""
    gateway = svc.store.read(lambda uow: uow.get_gateway(gateway_id))
    assert gateway is not None
    return gateway.last_seen_at


class TestTaskerOutbox:
    @pytest.fixture
    def channel_settings(self) -> dict[str, Any]:
        return TASKER

    @pytest.fixture
    def phones(self, client: FlaskClient, svc: Services, clock: FakeClock) -> list[TaskerPhone]:
        return [
            TaskerPhone(client, clock, name, admin.add_tasker_gateway(svc, name))
            for name in ("phone-a", "phone-b")
        ]

    def test_two_phones_get_the_message_exactly_once(
        self, svc: Services, phones: list[TaskerPhone]
    ) -> None:
        a, b = phones
        sms_id = queue_sms(svc)
        assert a.poll() == []  # not yet: the worker has not marked it for the phones
        run_worker(svc)
        assert a.poll() == [{"id": sms_id, "to": TO, "body": BODY}]
        assert b.poll() == [] and a.poll() == []
        held = sms(svc, sms_id)
        assert (held.status, held.channel, held.lease_gateway, held.attempts) == (
            "sending",
            "tasker",
            "phone-a",
            1,
        )

    def test_acks_from_the_holder_and_from_others(
        self, svc: Services, phones: list[TaskerPhone]
    ) -> None:
        a, b = phones
        sms_id = queue_sms(svc)
        run_worker(svc)
        a.poll()
        assert b.ack(sms_id).status_code == 409
        r = a.ack(sms_id)
        assert (r.status_code, r.get_json()) == (200, {"status": "sent"})
        sent = sms(svc, sms_id)
        assert (sent.status, sent.provider_id) == ("sent", "tasker:phone-a")
        assert b.ack(sms_id).status_code == 409  # it never held it
        assert b.ack(sms_id, "failed", "no signal").status_code == 409
        assert a.ack(sms_id).get_json() == {"status": "sent"}  # the holder may repeat itself
        assert sms(svc, sms_id) == sent
        for unknown in ("0" * 24, "999999", "nope"):
            assert a.ack(unknown).status_code == 404

    def test_bad_signatures_and_stale_timestamps_get_a_bare_403(
        self, client: FlaskClient, svc: Services, clock: FakeClock, phones: list[TaskerPhone]
    ) -> None:
        a, b = phones
        sms_id = queue_sms(svc)
        run_worker(svc)
        wrong_secret = TaskerPhone(client, clock, "phone-a", b.secret)
        unknown = TaskerPhone(client, clock, "phone-c", a.secret)
        polls = [
            a.headers(b"", skew=-301),
            a.headers(b"", skew=301),
            wrong_secret.headers(b""),
            unknown.headers(b""),
            {k: v for k, v in a.headers(b"").items() if k != "X-Signature"},
            a.headers(b"x"),
        ]
        answers = [client.get("/sms/tasker/outbox", headers=h) for h in polls]
        assert [(r.status_code, r.data) for r in answers] == [(403, b"")] * len(polls)
        untouched = sms(svc, sms_id)
        assert untouched.status == "pending" and untouched.lease_gateway is None
        assert last_seen(svc, "phone-a") is None

        assert [m["id"] for m in a.poll()] == [sms_id]
        raw = b'{"status": "sent"}'
        acks = [
            a.headers(raw, skew=-301),
            wrong_secret.headers(raw),
            a.headers(b'{"status": "failed"}'),
        ]
        answers = [client.post(f"/sms/tasker/outbox/{sms_id}", data=raw, headers=h) for h in acks]
        assert [(r.status_code, r.data) for r in answers] == [(403, b"")] * len(acks)
        assert sms(svc, sms_id).status == "sending"

    @pytest.mark.parametrize("tweaks", [{"tasker_max_attempts": 3}], indirect=True)
    def test_a_failed_send_is_offered_again_until_the_limit(
        self, svc: Services, phones: list[TaskerPhone]
    ) -> None:
        a, b = phones
        sms_id = queue_sms(svc)
        run_worker(svc)
        for phone, other, outcome in [(a, b, "pending"), (b, a, "pending"), (a, b, "failed")]:
            assert [m["id"] for m in phone.poll()] == [sms_id]
            assert other.poll() == []
            r = phone.ack(sms_id, "failed", "generic failure")
            assert (r.status_code, r.get_json()) == (200, {"status": outcome})
        assert a.poll() == [] and b.poll() == []
        failed = sms(svc, sms_id)
        assert (failed.status, failed.error, failed.attempts) == ("failed", "generic failure", 3)

    def test_a_message_not_acked_before_the_lease_ends_is_offered_again(
        self, svc: Services, clock: FakeClock, phones: list[TaskerPhone]
    ) -> None:
        a, b = phones
        sms_id = queue_sms(svc)
        run_worker(svc)
        assert [m["id"] for m in a.poll()] == [sms_id]
        clock.advance(svc.settings.tasker_lease_seconds)
        assert b.poll() == []  # the lease has not ended yet
        clock.advance(1)
        assert [m["id"] for m in b.poll()] == [sms_id]
        assert a.ack(sms_id).status_code == 409  # too late: phone-b holds it now
        assert b.ack(sms_id).get_json() == {"status": "sent"}
        sent = sms(svc, sms_id)
        assert (sent.status, sent.provider_id, sent.attempts) == ("sent", "tasker:phone-b", 2)

    def test_a_message_no_phone_ever_acks_is_failed_after_its_attempts(
        self, svc: Services, clock: FakeClock, phones: list[TaskerPhone]
    ) -> None:
        a, b = phones
        sms_id = queue_sms(svc)
        run_worker(svc)
        for n in range(svc.settings.tasker_max_attempts):
            assert [m["id"] for m in (a if n % 2 else b).poll()] == [sms_id]
            clock.advance(svc.settings.tasker_lease_seconds + 1)  # the holder went quiet
        assert a.poll() == [] and b.poll() == []
        failed = sms(svc, sms_id)
        assert (failed.status, failed.error) == ("failed", "no phone acknowledged it")

    @pytest.mark.parametrize("tweaks", [{"tasker_sms_per_hour": 2}], indirect=True)
    def test_a_phone_sends_no_more_than_its_hourly_limit(
        self, svc: Services, clock: FakeClock, phones: list[TaskerPhone]
    ) -> None:
        a = phones[0]
        ids = [queue_sms(svc, body=f"{BODY} #{n}") for n in range(3)]
        assert a.poll() == [] and a.poll() == []  # nothing is for the phones yet: costs nothing
        run_worker(svc)
        assert [m["id"] for m in a.poll()] == ids[:2]
        assert [a.ack(i).status_code for i in ids[:2]] == [200, 200]
        assert a.poll() == []
        clock.advance(3599)  # never more than 2 in any hour
        assert a.poll() == []
        clock.advance(1)  # the first two leave the window
        assert [m["id"] for m in a.poll()] == ids[2:]
        assert a.poll() == []

    def test_a_poll_is_the_phones_heartbeat(
        self, svc: Services, clock: FakeClock, phones: list[TaskerPhone]
    ) -> None:
        assert last_seen(svc, "phone-a") is None
        clock.advance(42)
        assert phones[0].poll() == []
        assert last_seen(svc, "phone-a") == clock.now() and last_seen(svc, "phone-b") is None


# --- end to end ---------------------------------------------------------------------------------


class TestEndToEnd:
    @pytest.fixture
    def channel_settings(self) -> dict[str, Any]:
        return TASKER

    def test_the_payees_sms_goes_out_through_the_tasker_outbox(
        self,
        client: FlaskClient,
        world: World,
        svc: Services,
        clock: FakeClock,
        asha: Phone,
        ravi: Phone,
    ) -> None:
        reply = pay(client, world, clock, asha)
        assert reply.startswith("SMSPay: Paid Rs 250.00 to +91******5678. Ref ")
        assert reply.endswith("Bal Rs 750.00.")
        ref = reply.split("Ref ")[1][:10]
        run_worker(svc)
        shop = TaskerPhone(client, clock, world.gateway_id, world.gateway_secret)
        offered = shop.poll(limit=10)
        (to_ravi,) = [m for m in offered if m["to"] == RAVI]
        assert to_ravi["body"].startswith("SMSPay: Received Rs 250.00 from +91******3210.")
        assert ref in to_ravi["body"] and "Bal Rs 250.00" in to_ravi["body"]
        assert ASHA not in to_ravi["body"]
        # The payer's answer went back inline; it is not sent a second time.
        assert not [m for m in offered if m["body"].startswith("SMSPay: Paid")]
        assert shop.ack(to_ravi["id"]).get_json() == {"status": "sent"}
        assert sms(svc, to_ravi["id"]).status == "sent"
