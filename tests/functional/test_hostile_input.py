"""Hostile input on the webhook routes: bounded parsers answer their documented 4xx (or a
gateway's 2xx "ignored"), never a 500, and nothing is stored or moved."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from tests.conftest import World
from tests.functional.test_inbound import ASHA
from tests.support import FakeClock, tasker_body, tasker_headers

WEBHOOK_SECRET = "hostile-input-test-webhook-secret"  # an obviously fake local value
HUGE_TIMESTAMPS = ["9" * 400, "1" * 5000, "0" * 40 + "1", "-1", "1e9", "１２３"]


def nested(depth: int) -> bytes:
    """A JSON document nested `depth` arrays deep inside an object."""
    return b'{"from": ' + b"[" * depth + b"]" * depth + b', "body": "HELP"}'


def with_timestamp(headers: dict[str, str], timestamp: str) -> dict[str, str]:
    """The same headers, signed correctly, but with another X-Timestamp."""
    return dict(headers, **{"X-Timestamp": timestamp})


@pytest.mark.parametrize("timestamp", HUGE_TIMESTAMPS)
def test_an_absurd_tasker_timestamp_is_a_bare_403_on_every_route(
    timestamp: str, client: FlaskClient, world: World, clock: FakeClock
) -> None:
    raw = tasker_body(ASHA, "HELP")
    good = tasker_headers(world.gateway_id, world.gateway_secret, raw, int(clock.now()))
    # the signature is over the absurd timestamp itself: only the timestamp rule can refuse it
    sig = hmac.new(
        world.gateway_secret.encode(), timestamp.encode() + b"." + raw, hashlib.sha256
    ).hexdigest()
    headers = dict(with_timestamp(good, timestamp), **{"X-Signature": sig})
    answers = [
        client.post("/sms/tasker", data=raw, headers=headers),
        client.get("/sms/tasker/outbox", headers=headers),
        client.post("/sms/tasker/outbox/1", data=raw, headers=headers),
    ]
    assert [(r.status_code, r.data) for r in answers] == [(403, b"")] * 3
    assert world.svc.store.read(lambda uow: uow.inbound_for(ASHA)) == []


@pytest.mark.parametrize("depth", [100, 5_000])
def test_deeply_nested_tasker_json_is_400(
    depth: int, client: FlaskClient, world: World, clock: FakeClock
) -> None:
    raw = nested(depth)
    headers = tasker_headers(world.gateway_id, world.gateway_secret, raw, int(clock.now()))
    r = client.post("/sms/tasker", data=raw, headers=headers)
    assert r.status_code == 400 and r.get_json()["error"]
    ack = client.post("/sms/tasker/outbox/1", data=raw, headers=headers)
    assert ack.status_code == 400 and ack.get_json()["error"]
    assert world.svc.store.read(lambda uow: uow.inbound_for(ASHA)) == []


@pytest.fixture
def sandbox_app(settings: dict[str, Any], clock: FakeClock) -> Flask:
    """The default (sandbox) rail with a known webhook secret, as an operator would set it."""
    application = create_app({**settings, "razorpay_webhook_secret": WEBHOOK_SECRET}, clock=clock)
    application.extensions["smspay"].store.init()
    return application


@pytest.mark.parametrize("depth", [100, 5_000])
def test_deeply_nested_gateway_webhook_is_ignored_with_200(depth: int, sandbox_app: Flask) -> None:
    body = b'{"event": "payout.processed", "payload": ' + b"[" * depth + b"]" * depth + b"}"
    signature = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    r = sandbox_app.test_client().post(
        "/webhooks/razorpay", data=body, headers={"X-Razorpay-Signature": signature}
    )
    assert r.status_code == 200 and r.get_json()["status"] == "ignored"
    svc = sandbox_app.extensions["smspay"]
    assert svc.store.read(lambda uow: uow.total_balance()) == 0
    svc.store.close()
