"""gunicorn's logs as production writes them: JSON lines with request ids, and never a full phone
number (the access log included)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import requests

from tests.e2e.conftest import Server

NUMBERS = ("919876543210", "919812345678")


def lines_once_written(path: Path, request_ids: list[str]) -> list[dict[str, object]]:
    """The JSON lines of a log, once it has a line for each of `request_ids` (gunicorn writes
    after responding, so a line of an earlier request may still come after a later one's: a
    count of lines would be satisfied by it)."""
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        seen = {line.get("request_id") for line in lines}
        if seen.issuperset(request_ids) or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def test_staff_lookups_by_number_are_logged_with_the_number_masked(server: Server) -> None:
    before = len(server.access_log.read_text().splitlines())
    paths = [
        "/api/v1/users/%2B919876543210",
        "/api/v1/transactions?phone=%2B919812345678",
        "/console/users/+919876543210",
    ]
    ids = [
        requests.get(
            server.url + p, timeout=10, headers={"X-Request-Id": f"e2e-{i}"}, allow_redirects=False
        )
        .headers["X-Request-Id"]
        for i, p in enumerate(paths)
    ]  # fmt: skip
    assert ids == ["e2e-0", "e2e-1", "e2e-2"]
    lines = lines_once_written(server.access_log, ids)[before:]
    by_id = {line.get("request_id"): line for line in lines}
    assert str(by_id["e2e-0"]["request"]).startswith("GET /api/v1/users/%2B91******3210 ")
    assert "phone=%2B91******5678" in str(by_id["e2e-1"]["request"])
    assert by_id["e2e-2"]["request"] == "GET /console/users/+91******3210 HTTP/1.1"
    assert all(line["logger"] == "gunicorn.access" for line in lines)
    text = server.access_log.read_text()
    assert not any(number in text for number in NUMBERS)


def test_the_service_logs_json_lines_with_the_request_id(server: Server) -> None:
    log = server.data_dir.parent / "gunicorn.log"
    r = requests.post(
        server.url + "/sms/twilio",
        data={"From": "+919876543210", "Body": "HELP"},
        headers={"X-Request-Id": "e2e-refused"},
        timeout=10,
    )
    assert r.status_code == 403
    deadline = time.monotonic() + 10
    while "e2e-refused" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(x["logger"] == "gunicorn.error" for x in lines)  # gunicorn's own lines are JSON
    ours = [x for x in lines if "request_id" in x]
    (refusal,) = [x for x in ours if x["request_id"] == "e2e-refused"]
    assert refusal["level"] == "WARNING" and "refused" in str(refusal["msg"])
    assert "9876543210" not in log.read_text()
