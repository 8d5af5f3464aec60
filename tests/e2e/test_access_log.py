"""gunicorn's access log, written by the production config, never carries a full phone number."""

from __future__ import annotations

import time

import requests

from tests.e2e.conftest import Server

NUMBERS = ("919876543210", "919812345678")


def test_staff_lookups_by_number_are_logged_with_the_number_masked(server: Server) -> None:
    paths = [
        "/api/v1/users/%2B919876543210",
        "/api/v1/transactions?phone=%2B919812345678",
        "/console/users/+919876543210",
    ]
    for path in paths:
        requests.get(server.url + path, timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # gunicorn writes the line after the response
        text = server.access_log.read_text()
        if all(p.split("?")[0].rsplit("/", 1)[0] in text for p in paths) and text.count("\n") >= 3:
            break
        time.sleep(0.1)
    assert "/api/v1/users/%2B91******3210" in text
    assert "phone=%2B91******5678" in text
    assert "/console/users/+91******3210" in text
    assert not any(number in text for number in NUMBERS)
