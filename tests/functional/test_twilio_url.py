"""Which URL the Twilio signature is checked against: the configured public URL, or the
request's own URL, rebuilt from X-Forwarded-* only when SMSPAY_TRUSTED_PROXIES says how many
proxies to trust."""

from __future__ import annotations

from typing import Any

import pytest

from app import create_app
from tests.support import TWILIO_TOKEN, FakeClock, reply_text, twilio_form, twilio_signature

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "pay.example.com",
             "X-Forwarded-For": "203.0.113.9"}  # fmt: skip


def post(settings: dict[str, Any], signed_url: str, headers: dict[str, str]) -> Any:
    app = create_app({**settings, "twilio_auth_token": TWILIO_TOKEN}, clock=FakeClock())
    form = twilio_form("+919876543210", "HELP")
    sig = twilio_signature(form, signed_url)
    response = app.test_client().post(
        "/sms/twilio", data=form, headers={"X-Twilio-Signature": sig, **headers}
    )
    app.extensions["smspay"].store.close()
    return response


@pytest.fixture
def base(tmp_path: Any) -> dict[str, Any]:
    return {"data_dir": str(tmp_path / "var")}


def test_public_base_url_is_authoritative(base: dict[str, Any]) -> None:
    settings = {**base, "public_base_url": "https://pay.example.com/"}
    ok = post(settings, "https://pay.example.com/sms/twilio", {})
    assert ok.status_code == 200 and "SMS Pay app" in reply_text(ok.data)
    # forwarded headers cannot talk the service into another URL
    assert post(settings, "http://evil.example.com/sms/twilio", FORWARDED).status_code == 403


def test_forwarded_headers_are_ignored_without_trusted_proxies(base: dict[str, Any]) -> None:
    assert post(base, "https://pay.example.com/sms/twilio", FORWARDED).status_code == 403
    assert post(base, "http://localhost/sms/twilio", FORWARDED).status_code == 200


def test_one_trusted_proxy_rebuilds_the_public_url(base: dict[str, Any]) -> None:
    settings = {**base, "trusted_proxies": 1}
    assert post(settings, "https://pay.example.com/sms/twilio", FORWARDED).status_code == 200
    assert post(settings, "http://localhost/sms/twilio", FORWARDED).status_code == 403
