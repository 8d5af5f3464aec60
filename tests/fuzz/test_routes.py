"""The webhook routes under fuzzed, correctly signed input: a documented status, never a 5xx."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st

from app import create_app
from app.services import admin
from tests.fuzz.strategies import BODIES, HEADER, TEXT
from tests.support import TWILIO_TOKEN, FakeClock, tasker_headers, twilio_form, twilio_signature

WEBHOOK_SECRET = "fuzz-webhook-secret-not-real"


def header(value: str) -> str:
    """A value that can travel in an HTTP header (latin-1, no line breaks), as a client sends it."""
    raw = value.encode("utf-8", "replace").decode("latin-1")
    return "".join(c for c in raw if c not in "\r\n\x00")


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Flask, str]]:
    """One installation on an SQLite file for the whole module (parsers do not need more)."""
    settings: dict[str, Any] = {
        "data_dir": str(tmp_path_factory.mktemp("fuzz") / "var"),
        "twilio_auth_token": TWILIO_TOKEN,
        "public_base_url": "https://pay.example.com",
        "razorpay_webhook_secret": WEBHOOK_SECRET,
        "sandbox_webhook_url": "",
    }
    app = create_app(settings, clock=FakeClock())
    svc = app.extensions["smspay"]
    svc.store.init()
    secret = admin.add_tasker_gateway(svc, "fuzz-phone")
    yield app, secret
    assert svc.store.read(lambda uow: uow.total_balance()) == 0
    svc.store.close()


@given(body=BODIES)
def test_tasker_route(fuzz_app: tuple[Flask, str], body: bytes) -> None:
    app, secret = fuzz_app
    now = int(app.extensions["smspay"].clock.now())
    headers = tasker_headers("fuzz-phone", secret, body, now)
    r = app.test_client().post("/sms/tasker", data=body, headers=headers)
    assert r.status_code in (200, 400, 413)
    ack = app.test_client().post("/sms/tasker/outbox/1", data=body, headers=headers)
    assert ack.status_code in (400, 404, 409, 413)


@given(timestamp=HEADER, gateway=HEADER, signature=HEADER)
def test_tasker_headers(
    fuzz_app: tuple[Flask, str], timestamp: str | None, gateway: str | None, signature: str | None
) -> None:
    app, _ = fuzz_app
    headers = {
        k: header(v)
        for k, v in {"X-Timestamp": timestamp, "X-Gateway-Id": gateway, "X-Signature": signature}
        .items() if v is not None
    }  # fmt: skip
    for r in (
        app.test_client().post("/sms/tasker", data=b"{}", headers=headers),
        app.test_client().get("/sms/tasker/outbox", headers=headers),
    ):
        assert r.status_code == 403


@given(sender=TEXT, body=TEXT)
def test_twilio_route(fuzz_app: tuple[Flask, str], sender: str, body: str) -> None:
    app, _ = fuzz_app
    form = twilio_form(sender, body)
    signature = twilio_signature(form)
    r = app.test_client().post("/sms/twilio", data=form, headers={"X-Twilio-Signature": signature})
    assert r.status_code in (200, 400)


@given(body=BODIES, event_id=st.one_of(st.none(), TEXT))
def test_gateway_webhook_route(
    fuzz_app: tuple[Flask, str], body: bytes, event_id: str | None
) -> None:
    app, _ = fuzz_app
    headers = {"X-Razorpay-Signature": hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256)
               .hexdigest()}  # fmt: skip
    if event_id:
        headers["X-Razorpay-Event-Id"] = header(event_id)
    r = app.test_client().post("/webhooks/razorpay", data=body, headers=headers)
    assert r.status_code in (200, 413)
