"""A route that cannot work for want of a setting says so at start, and says why it refuses."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from app import create_app
from tests.support import FakeClock, twilio_form, twilio_signature


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_missing_twilio_token_is_a_warning_at_start_and_the_reason_of_each_403(
    settings: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        app = create_app({**settings, "twilio_auth_token": ""}, clock=FakeClock())
    assert "SMSPAY_TWILIO_AUTH_TOKEN is unset" in caplog.text
    app.extensions["smspay"].store.init()
    caplog.clear()
    form = twilio_form("+919876543210", "HELP")
    client = app.test_client()
    with caplog.at_level(logging.WARNING):
        for path in ("/sms/twilio", "/sms/twilio/status"):
            r = client.post(path, data=form, headers={"X-Twilio-Signature": twilio_signature(form)})
            assert (r.status_code, r.data) == (403, b"")
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 2 and all("SMSPAY_TWILIO_AUTH_TOKEN is unset" in m for m in refusals)
    app.extensions["smspay"].store.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_complete_setup_starts_without_warnings(
    settings: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        create_app(settings, clock=FakeClock())
    assert [r for r in caplog.records if r.name == "app.config"] == []
