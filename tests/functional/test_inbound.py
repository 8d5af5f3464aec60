"""The inbound webhooks end to end through Flask's test client, on a real SQLite file.

Every route test runs for Twilio and for Tasker. Each unhappy path asserts that no balance moved.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.bootstrap import Services
from app.services import admin
from app.services.admin import GATEWAY_SECRET_SECONDS
from app.services.inbound import GATEWAY_TOUCH_SECONDS
from crypto.keys import gateway_secret_label
from sms import replies
from tests.conftest import World
from tests.support import (
    FakeClock,
    Phone,
    reply_text,
    tasker_body,
    tasker_headers,
    twilio_form,
    twilio_signature,
)

ASHA, RAVI, MEERA = "+919876543210", "+919812345678", "+919800000001"


class Routes:
    """Deliver an SMS body the way Twilio or the Tasker phone would."""

    def __init__(self, client: FlaskClient, world: World, clock: FakeClock) -> None:
        self.client, self.world, self.clock = client, world, clock

    def twilio(self, sender: str, body: str, sid: str | None = None) -> tuple[int, str]:
        form = twilio_form(sender, body, sid)
        r = self.client.post(
            "/sms/twilio", data=form, headers={"X-Twilio-Signature": twilio_signature(form)}
        )
        return r.status_code, reply_text(r.data) if r.status_code == 200 else r.get_data(True)

    def tasker(self, sender: str, body: str) -> tuple[int, str]:
        raw = tasker_body(sender, body)
        headers = tasker_headers(
            self.world.gateway_id, self.world.gateway_secret, raw, int(self.clock.now())
        )
        r = self.client.post("/sms/tasker", data=raw, headers=headers)
        if r.status_code != 200:
            return r.status_code, r.get_data(True)
        data: dict[str, Any] = r.get_json()
        assert data["to"] == sender
        return r.status_code, data["reply"]

    def send(self, route: str, sender: str, body: str) -> tuple[int, str]:
        return self.twilio(sender, body) if route == "twilio" else self.tasker(sender, body)


@pytest.fixture
def routes(client: FlaskClient, world: World, clock: FakeClock) -> Routes:
    return Routes(client, world, clock)


@pytest.fixture
def asha(world: World) -> Phone:
    return world.user(ASHA, "1234", rupees=1000, name="Asha")


@pytest.fixture
def ravi(world: World) -> Phone:
    return world.user(RAVI, "4321", rupees=0, name="Ravi")


def balances(world: World) -> tuple[int, int]:
    return world.balance(ASHA), world.balance(RAVI)


ROUTES = pytest.mark.parametrize("route", ["twilio", "tasker"])


@ROUTES
def test_valid_payment_moves_money_once_and_replies(
    route: str, routes: Routes, world: World, asha: Phone, ravi: Phone, clock: FakeClock
) -> None:
    total = world.total()
    status, text = routes.send(route, ASHA, asha.pay(RAVI, 25_000, at=clock.now(), note="tea"))
    assert status == 200
    assert text.startswith("SMSPay: Paid Rs 250.00 to +91******5678. Ref ")
    assert text.endswith("Bal Rs 750.00.")
    assert balances(world) == (75_000, 25_000)
    assert world.total() == total
    ref = text.split("Ref ")[1][:10]

    def details(uow: Any) -> tuple[Any, ...]:
        return uow.get_transaction(ref), uow.events(ref), uow.entries(ref), uow.outbox()

    txn, events, entries, outbox = world.svc.store.read(details)
    assert txn.state.value == "SUCCESS" and txn.amount == 25_000 and txn.note == "tea"
    assert txn.channel == route
    assert [e.state.value for e in events] == ["PENDING", "SUCCESS"]
    assert len(entries) == 1 and sum(p.amount for p in entries[0].postings) == 0
    payee_sms = [m for m in outbox if m.reference == ref]
    assert len(payee_sms) == 1 and payee_sms[0].to == RAVI
    assert payee_sms[0].body.startswith("SMSPay: Received Rs 250.00 from +91******3210.")
    assert "Bal Rs 250.00" in payee_sms[0].body


@ROUTES
def test_unsigned_or_badly_signed_requests_get_bare_403_and_store_nothing(
    route: str, client: FlaskClient, world: World, asha: Phone, ravi: Phone, clock: FakeClock
) -> None:
    body = asha.pay(RAVI, 100, at=clock.now())
    if route == "twilio":
        form = twilio_form(ASHA, body)
        good = twilio_signature(form)
        flipped = ("y" if good[0] == "x" else "x") + good[1:]  # always differs from the real one
        attempts: list[dict[str, str]] = [{}, {"X-Twilio-Signature": flipped}]
        wrong_url = twilio_signature(form, "https://evil.example.com/sms/twilio")
        attempts.append({"X-Twilio-Signature": wrong_url})
        tampered = dict(form, Body=body + "A")
        responses = [client.post("/sms/twilio", data=form, headers=h) for h in attempts]
        responses.append(
            client.post("/sms/twilio", data=tampered, headers={"X-Twilio-Signature": good})
        )
    else:
        raw = tasker_body(ASHA, body)
        good = tasker_headers(world.gateway_id, world.gateway_secret, raw, int(clock.now()))
        variants = [
            {k: v for k, v in good.items() if k != "X-Signature"},
            dict(good, **{"X-Signature": "0" * 64}),
            dict(good, **{"X-Gateway-Id": "unknown-phone"}),
            tasker_headers(world.gateway_id, "wrong-secret", raw, int(clock.now())),
        ]
        responses = [client.post("/sms/tasker", data=raw, headers=h) for h in variants]
        responses.append(client.post("/sms/tasker", data=raw + b" ", headers=good))
    for r in responses:
        assert r.status_code == 403
        assert r.data == b""
    assert balances(world) == (100_000, 0)
    assert world.svc.store.read(lambda uow: uow.inbound_for(ASHA)) == []


def test_tasker_timestamp_outside_window_is_refused(
    client: FlaskClient, world: World, asha: Phone, ravi: Phone, clock: FakeClock
) -> None:
    raw = tasker_body(ASHA, asha.pay(RAVI, 100, at=clock.now()))
    for skew in (-301, 301):
        headers = tasker_headers(
            world.gateway_id, world.gateway_secret, raw, int(clock.now()) + skew
        )
        assert client.post("/sms/tasker", data=raw, headers=headers).status_code == 403
    ok = tasker_headers(world.gateway_id, world.gateway_secret, raw, int(clock.now()) - 299)
    assert client.post("/sms/tasker", data=raw, headers=ok).status_code == 200
    assert balances(world) == (100_000 - 100, 100)


def test_same_twilio_message_sid_is_processed_once(
    routes: Routes, world: World, asha: Phone, ravi: Phone, clock: FakeClock
) -> None:
    body = asha.pay(RAVI, 10_000, at=clock.now())
    sid = "SM" + "ab" * 16
    first = routes.twilio(ASHA, body, sid)
    again = routes.twilio(ASHA, body, sid)
    assert first == again and first[0] == 200 and "Paid Rs 100.00" in first[1]
    assert balances(world) == (90_000, 10_000)
    inbound = world.svc.store.read(lambda uow: uow.inbound_for(ASHA))
    assert len(inbound) == 1 and inbound[0].deliveries == 2


@pytest.mark.parametrize(
    "first_route,second_route",
    [("tasker", "tasker"), ("twilio", "tasker"), ("tasker", "twilio"), ("twilio", "twilio")],
)
def test_same_frame_twice_settles_once_with_the_same_reply(
    first_route: str,
    second_route: str,
    routes: Routes,
    world: World,
    asha: Phone,
    ravi: Phone,
    clock: FakeClock,
) -> None:
    body = asha.pay(RAVI, 10_000, at=clock.now())
    first = routes.send(first_route, ASHA, body)
    second = routes.send(second_route, ASHA, body)  # a new MessageSid on Twilio
    assert first == second and "Paid Rs 100.00" in first[1]
    assert balances(world) == (90_000, 10_000)
    outcomes = sorted(r.outcome for r in world.svc.store.read(lambda uow: uow.inbound_for(ASHA)))
    assert outcomes == ["duplicate", "paid"]


@ROUTES
def test_counter_older_than_the_window_is_refused(
    route: str, routes: Routes, world: World, asha: Phone, ravi: Phone, clock: FakeClock
) -> None:
    old = asha.pay(RAVI, 100, at=clock.now())  # counter 1, never delivered
    asha.next_counter = 70
    assert "Paid" in routes.send(route, ASHA, asha.pay(RAVI, 100, at=clock.now()))[1]
    status, text = routes.send(route, ASHA, old)
    assert (status, text) == (200, replies.REPLAYED)
    assert balances(world) == (100_000 - 100, 100)


@ROUTES
def test_out_of_order_within_the_window_is_accepted_once(
    route: str, routes: Routes, world: World, asha: Phone, ravi: Phone, clock: FakeClock
) -> None:
    early = asha.pay(RAVI, 100, at=clock.now())
    late = asha.pay(RAVI, 200, at=clock.now())
    assert "Paid Rs 2.00" in routes.send(route, ASHA, late)[1]
    assert "Paid Rs 1.00" in routes.send(route, ASHA, early)[1]
    assert balances(world) == (100_000 - 300, 300)


@ROUTES
def test_tampered_frame_is_unreadable_and_does_not_move_the_window(
    route: str, routes: Routes, world: World, asha: Phone, ravi: Phone, clock: FakeClock
) -> None:
    good = asha.pay(RAVI, 100, at=clock.now())
    i = 20
    flipped = good[:i] + ("A" if good[i] != "A" else "B") + good[i + 1 :]
    assert routes.send(route, ASHA, flipped) == (200, replies.UNREADABLE)
    assert balances(world) == (100_000, 0)
    # the forged frame carried the same counter; the genuine one still goes through
    assert "Paid Rs 1.00" in routes.send(route, ASHA, good)[1]


@ROUTES
def test_frame_from_another_phone_is_unreadable(
    route: str, routes: Routes, world: World, asha: Phone, ravi: Phone, clock: FakeClock
) -> None:
    body = asha.pay(RAVI, 100, at=clock.now())
    assert routes.send(route, RAVI, body) == (200, replies.UNREADABLE)
    assert balances(world) == (100_000, 0)
    # and the genuine sender can still use that counter
    assert "Paid" in routes.send(route, ASHA, body)[1]


@ROUTES
def test_unknown_sender_is_told_to_register(
    route: str, routes: Routes, world: World, asha: Phone, clock: FakeClock
) -> None:
    body = asha.pay(RAVI, 100, at=clock.now())
    assert routes.send(route, MEERA, body) == (200, replies.UNKNOWN_SENDER)
    assert world.balance(ASHA) == 100_000


@ROUTES
def test_wrong_pin_three_times_locks_then_unlocks_after_24h(
    route: str, routes: Routes, world: World, asha: Phone, ravi: Phone, clock: FakeClock
) -> None:
    r1 = routes.send(route, ASHA, asha.pay(RAVI, 100, pin="9999", at=clock.now()))
    r2 = routes.send(route, ASHA, asha.pay(RAVI, 100, pin="9998", at=clock.now()))
    r3 = routes.send(route, ASHA, asha.pay(RAVI, 100, pin="9997", at=clock.now()))
    assert r1[1] == replies.wrong_pin(2) and r2[1] == replies.wrong_pin(1)
    assert "locked until" in r3[1]
    # the right PIN does not help while locked, and does not count as an attempt
    locked = routes.send(route, ASHA, asha.pay(RAVI, 100, at=clock.now()))
    assert "locked until" in locked[1]
    assert balances(world) == (100_000, 0)
    user = world.svc.store.read(lambda uow: uow.get_user_by_phone(ASHA))
    assert user.locked_until == pytest.approx(clock.now() + 86_400)
    clock.advance(86_401)
    assert "Paid Rs 1.00" in routes.send(route, ASHA, asha.pay(RAVI, 100, at=clock.now()))[1]
    assert balances(world) == (100_000 - 100, 100)


def test_a_right_pin_resets_the_wrong_pin_count(
    routes: Routes, world: World, asha: Phone, ravi: Phone, clock: FakeClock
) -> None:
    for _ in range(2):
        routes.tasker(ASHA, asha.balance(pin="0000", at=clock.now()))
    assert routes.tasker(ASHA, asha.balance(at=clock.now()))[1] == replies.balance(100_000)
    assert routes.tasker(ASHA, asha.balance(pin="0000", at=clock.now()))[1] == replies.wrong_pin(2)


@ROUTES
def test_insufficient_balance_is_refused_and_recorded(
    route: str, routes: Routes, world: World, asha: Phone, ravi: Phone, clock: FakeClock
) -> None:
    status, text = routes.send(route, ASHA, asha.pay(RAVI, 100_001, at=clock.now()))
    assert status == 200 and "failed: not enough balance" in text and "No money moved." in text
    assert balances(world) == (100_000, 0)
    ref = text.split("Ref ")[1][:10]
    txn = world.svc.store.read(lambda uow: uow.get_transaction(ref))
    assert txn.state.value == "FAILED" and txn.reason == "insufficient_funds"


@ROUTES
def test_over_the_per_payment_cap(
    route: str, routes: Routes, world: World, ravi: Phone, clock: FakeClock
) -> None:
    rich = world.user(ASHA, "1234", rupees=50_000)
    status, text = routes.send(route, ASHA, rich.pay(RAVI, 1_000_001, at=clock.now()))
    assert "above the limit of Rs 10000.00 per payment" in text
    assert balances(world) == (5_000_000, 0)
    new_payee = routes.send(route, ASHA, rich.pay(RAVI, 1_000_000, at=clock.now()))[1]
    assert "new payee limit Rs 1000.00 for 24 h" in new_payee  # Ravi was never paid before
    assert "Paid Rs 1.00" in routes.send(route, ASHA, rich.pay(RAVI, 100, at=clock.now()))[1]
    clock.advance(86_400)  # a day later Ravi is a known payee: the cap is the one for everyone
    assert (
        "Paid Rs 10000.00" in routes.send(route, ASHA, rich.pay(RAVI, 1_000_000, at=clock.now()))[1]
    )


@ROUTES
def test_over_the_daily_cap(
    route: str,
    routes: Routes,
    world: World,
    ravi: Phone,
    clock: FakeClock,
) -> None:
    world.svc.settings = dataclasses.replace(world.svc.settings, limit_per_day_paise=30_000)
    asha = world.user(ASHA, "1234", rupees=1000)
    assert "Paid" in routes.send(route, ASHA, asha.pay(RAVI, 20_000, at=clock.now()))[1]
    text = routes.send(route, ASHA, asha.pay(RAVI, 10_001, at=clock.now()))[1]
    assert "daily limit reached (Rs 100.00 left today)" in text
    assert balances(world) == (80_000, 20_000)
    clock.advance(86_400)  # a new local day
    assert "Paid" in routes.send(route, ASHA, asha.pay(RAVI, 10_001, at=clock.now()))[1]


@ROUTES
def test_payee_not_registered_and_self_payment_are_refused(
    route: str, routes: Routes, world: World, asha: Phone, clock: FakeClock
) -> None:
    text = routes.send(route, ASHA, asha.pay(MEERA, 100, at=clock.now()))[1]
    assert "failed: payee is not registered with SMS Pay" in text
    text = routes.send(route, ASHA, asha.pay(ASHA, 100, at=clock.now()))[1]
    assert "failed: you cannot pay yourself" in text
    assert world.balance(ASHA) == 100_000


@ROUTES
def test_balance_status_help_and_plain_text(
    route: str, routes: Routes, world: World, asha: Phone, ravi: Phone, clock: FakeClock
) -> None:
    assert routes.send(route, ASHA, asha.balance(at=clock.now()))[1] == replies.balance(100_000)
    paid = routes.send(route, ASHA, asha.pay(RAVI, 100, at=clock.now()))[1]
    ref = paid.split("Ref ")[1][:10]
    status = routes.send(route, ASHA, asha.status(ref.lower(), at=clock.now()))[1]
    assert status == f"SMSPay: Ref {ref}: Rs 1.00 to +91******5678 is SUCCESS."
    seen_by_payee = routes.send(route, RAVI, ravi.status(ref, at=clock.now()))[1]
    assert seen_by_payee == f"SMSPay: Ref {ref}: Rs 1.00 from +91******3210 is SUCCESS."
    meera = world.user(MEERA)
    assert routes.send(route, MEERA, meera.status(ref, at=clock.now()))[1] == (
        replies.status_not_found(ref)
    )
    assert routes.send(route, ASHA, " help ")[1] == replies.HELP
    assert routes.send(route, ASHA, "hello, how do I pay?")[1] == replies.USAGE
    assert routes.send(route, MEERA, "HELP")[1] == replies.HELP


@ROUTES
def test_instruction_that_is_too_old_is_refused(
    route: str, routes: Routes, world: World, asha: Phone, ravi: Phone, clock: FakeClock
) -> None:
    text = routes.send(route, ASHA, asha.pay(RAVI, 100, at=clock.now() - 86_401))[1]
    assert text == replies.EXPIRED
    assert balances(world) == (100_000, 0)


@ROUTES
def test_sms_longer_than_one_segment_is_unreadable(
    route: str, routes: Routes, world: World, asha: Phone, ravi: Phone, clock: FakeClock
) -> None:
    body = asha.pay(RAVI, 100, at=clock.now())
    assert routes.send(route, ASHA, body + "AAAA" * 2) == (200, replies.UNREADABLE)
    assert routes.send(route, ASHA, "SP1 " + "A" * 200) == (200, replies.UNREADABLE)
    assert balances(world) == (100_000, 0)


@ROUTES
def test_a_frame_with_another_case_or_version_gets_the_one_opaque_reply(
    route: str, routes: Routes, world: World, asha: Phone, ravi: Phone, clock: FakeClock
) -> None:
    body = asha.pay(RAVI, 100, at=clock.now())
    for variant in ("sp1" + body[3:], "SP2" + body[3:], "Sp1 " + body[4:].lower()):
        assert routes.send(route, ASHA, variant) == (200, replies.UNREADABLE)
    assert balances(world) == (100_000, 0)


def test_malformed_twilio_form_is_400_with_a_reason(client: FlaskClient, world: World) -> None:
    for drop in ("Body", "From", "MessageSid"):
        form = twilio_form(ASHA, "HELP")
        del form[drop]
        r = client.post(
            "/sms/twilio", data=form, headers={"X-Twilio-Signature": twilio_signature(form)}
        )
        assert r.status_code == 400
        assert r.get_json()["error"]
    crowded = {**twilio_form(ASHA, "HELP"), **{f"X{i}": "" for i in range(100)}}
    r = client.post(
        "/sms/twilio", data=crowded, headers={"X-Twilio-Signature": twilio_signature(crowded)}
    )
    assert (r.status_code, r.get_json()["error"]) == (400, "more than 100 fields")
    as_json = twilio_form(ASHA, "HELP")  # Twilio's fields, but not as the form Twilio signs
    r = client.post(
        "/sms/twilio", json=as_json, headers={"X-Twilio-Signature": twilio_signature(as_json)}
    )
    assert r.status_code == 403
    assert world.svc.store.read(lambda uow: uow.inbound_for(ASHA)) == []


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"[]", json.dumps({"body": "HELP"}).encode(),
     json.dumps({"from": "12345", "body": "HELP"}).encode(),
     json.dumps({"from": ASHA}).encode(),
     json.dumps({"from": ASHA, "body": "HELP", "received_at": "yesterday"}).encode()],
)  # fmt: skip
def test_malformed_tasker_json_is_400_with_a_reason(
    raw: bytes, client: FlaskClient, world: World, clock: FakeClock
) -> None:
    headers = tasker_headers(world.gateway_id, world.gateway_secret, raw, int(clock.now()))
    r = client.post("/sms/tasker", data=raw, headers=headers)
    assert r.status_code == 400
    assert r.get_json()["error"]
    assert world.svc.store.read(lambda uow: uow.inbound_for(ASHA)) == []


@ROUTES
def test_store_that_is_down_answers_503_so_the_provider_retries(
    route: str, routes: Routes, world: World, asha: Phone, ravi: Phone, clock: FakeClock,
    tmp_path: Any,
) -> None:  # fmt: skip
    from storage.mongo import MongoStore
    from storage.sqlite import SqliteStore

    body = asha.pay(RAVI, 100, at=clock.now())
    real = world.svc.store
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    down = (
        MongoStore("mongodb://127.0.0.1:9/x?directConnection=true", timeout_ms=300)
        if isinstance(real, MongoStore)
        else SqliteStore(blocker / "db.sqlite3")
    )
    world.svc.__dict__["store"] = down
    try:
        status, _ = routes.send(route, ASHA, body)
    finally:
        world.svc.__dict__["store"] = real
        down.close()
    assert status == 503
    # nothing was lost: the retry, once the store is back, pays once
    assert "Paid Rs 1.00" in routes.send(route, ASHA, body)[1]
    assert balances(world) == (100_000 - 100, 100)


def test_health(client: FlaskClient, svc: Services) -> None:
    from app.worker import Worker

    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json()["worker"] == "none"  # ready: SMS wait for a worker
    Worker(svc, {}).heartbeat()
    assert client.get("/readyz").get_json() == {"status": "ready", "workers": 1}


def test_errors_are_short_json_and_keep_their_headers(client: FlaskClient) -> None:
    r = client.get("/sms/twilio")
    assert r.status_code == 405 and "POST" in r.headers["Allow"]
    assert r.get_json() == {"error": r.get_json()["error"]} and r.get_json()["error"]
    r = client.post("/sms/tasker", data=b"x" * 20_000, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.is_json


def test_a_tasker_phone_is_marked_seen_at_most_once_in_the_touch_interval(
    routes: Routes, svc: Services, world: World, asha: Phone, ravi: Phone, clock: FakeClock
) -> None:
    def seen() -> float | None:
        gateway = svc.store.read(lambda uow: uow.get_gateway(world.gateway_id))
        assert gateway is not None
        return gateway.last_seen_at

    first = clock.now()
    assert routes.tasker(ASHA, asha.balance())[0] == 200
    assert seen() == first
    clock.advance(GATEWAY_TOUCH_SECONDS - 1)
    assert routes.tasker(ASHA, asha.balance())[0] == 200
    assert seen() == first  # written a moment ago by this process: not again
    clock.advance(1)
    assert routes.tasker(ASHA, asha.balance())[0] == 200
    assert seen() == clock.now()


def test_a_tasker_phones_secret_is_used_for_a_minute_then_read_again(
    client: FlaskClient, svc: Services, world: World, asha: Phone, clock: FakeClock
) -> None:
    """A process keeps a phone's secret for GATEWAY_SECRET_SECONDS after reading it: a secret
    changed in the store (by hand, or a rotation to come) is taken up within that time."""

    def balance(secret: str) -> int:
        raw = tasker_body(ASHA, asha.balance(at=clock.now()))
        headers = tasker_headers(world.gateway_id, secret, raw, int(clock.now()))
        return client.post("/sms/tasker", data=raw, headers=headers).status_code

    assert balance(world.gateway_secret) == 200
    new = bytes(range(32))
    wrapped = svc.keyring.wrap(new, gateway_secret_label(world.gateway_id))
    svc.store.atomic(lambda uow: uow.set_gateway_secret(world.gateway_id, wrapped))
    clock.advance(GATEWAY_SECRET_SECONDS - 1)
    assert (balance(world.gateway_secret), balance(new.hex())) == (200, 403)
    clock.advance(1)
    assert (balance(world.gateway_secret), balance(new.hex())) == (403, 200)


def test_an_unknown_tasker_phone_is_not_remembered_so_it_works_once_added(
    client: FlaskClient, svc: Services, world: World, asha: Phone, clock: FakeClock
) -> None:
    raw = tasker_body(ASHA, asha.balance(at=clock.now()))

    def post(secret: str) -> int:
        headers = tasker_headers("shop-2", secret, raw, int(clock.now()))
        return client.post("/sms/tasker", data=raw, headers=headers).status_code

    assert post("0" * 64) == 403
    secret = admin.add_tasker_gateway(svc, "shop-2")
    assert post(secret) == 200
    assert set(svc.gateway_secrets) == {"shop-2"}  # ids that matched nothing take no memory


def test_the_same_frame_through_both_routes_at_once_settles_once(
    client: FlaskClient, world: World, asha: Phone, ravi: Phone, clock: FakeClock
) -> None:
    body = asha.pay(RAVI, 10_000, at=clock.now())
    start = threading.Barrier(2)
    answers: dict[str, tuple[int, str]] = {}

    def deliver(route: str) -> None:
        own = Routes(client.application.test_client(), world, clock)
        start.wait()
        answers[route] = own.send(route, ASHA, body)

    threads = [threading.Thread(target=deliver, args=(r,)) for r in ("twilio", "tasker")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers["twilio"] == answers["tasker"] and "Paid Rs 100.00" in answers["tasker"][1]
    assert balances(world) == (90_000, 10_000)
    outcomes = sorted(r.outcome for r in world.svc.store.read(lambda uow: uow.inbound_for(ASHA)))
    assert outcomes == ["duplicate", "paid"]
