"""Phone numbers masked in free text (log lines, request lines) as they are in replies."""

from __future__ import annotations

import json
import logging
import sys
from datetime import timedelta
from types import SimpleNamespace

import pytest
from gunicorn.config import Config

from app.access_log import MaskingLogger, access_line
from app.logs import SMS_ENVIRON_KEY, JsonFormatter
from sms.numbers import mask_numbers_in, mask_phone


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("/api/v1/users/%2B919876543210", "/api/v1/users/%2B91******3210"),
        ("/users/+919876543210/x", "/users/+91******3210/x"),
        ("phone=%2b14155550123&limit=5", "phone=%2b14*****0123&limit=5"),
        ("from 919876543210 to 9812345678", "from ********3210 to ******5678"),
        (
            "ref 7K3M9QXA2B amount 25000 at 1790000000.5",
            "ref 7K3M9QXA2B amount 25000 at ******0000.5",
        ),
        ("no numbers here", "no numbers here"),
        ("1234567", "1234567"),
    ],
)
def test_numbers_in_text_are_masked_like_mask_phone(text: str, masked: str) -> None:
    assert mask_numbers_in(text) == masked


def test_a_masked_e164_number_reads_as_mask_phone_writes_it() -> None:
    assert mask_numbers_in("+919876543210") == mask_phone("+919876543210")


def test_the_access_log_masks_numbers_in_every_field() -> None:
    logger = MaskingLogger(Config())
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/api/v1/users/%2B919876543210?phone=%2B919812345678",
        "PATH_INFO": "/api/v1/users/+919876543210",
        "QUERY_STRING": "phone=%2B919812345678",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_REFERER": "https://pay.example.com/console/users/+919876543210",
        "REMOTE_ADDR": "127.0.0.1",
    }
    resp = SimpleNamespace(status="200 OK", sent=10, headers=[])
    req = SimpleNamespace(headers=[("X-Lookup", "+919876543210")])
    atoms = logger.atoms(resp, req, environ, timedelta(milliseconds=3))
    line = logger.cfg.access_log_format % atoms
    assert "GET /api/v1/users/%2B91******3210?phone=%2B91******5678 HTTP/1.1" in line
    assert atoms["U"] == "/api/v1/users/+91******3210" and atoms["{x-lookup}i"] == "+91******3210"
    assert "9876543210" not in str(dict(atoms)) and "9812345678" not in str(dict(atoms))


def test_json_log_lines_mask_numbers_in_the_message_and_the_traceback() -> None:
    formatter = JsonFormatter()
    try:
        raise ValueError("no user +919876543210")
    except ValueError:
        record = logging.LogRecord(
            "app.x", logging.ERROR, __file__, 1, "lookup %s failed", ("+919812345678",), None
        )
        record.exc_info = sys.exc_info()
    line = json.loads(formatter.format(record))
    assert line["msg"] == "lookup +91******5678 failed" and line["level"] == "ERROR"
    assert "+91******3210" in line["exc"] and "9876543210" not in json.dumps(line)
    assert line["ts"].endswith("+00:00") and "request_id" not in line


def test_the_json_access_line_has_the_request_id_and_no_full_number() -> None:
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/api/v1/users/%2B919876543210?phone=%2B919812345678",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_USER_AGENT": "probe +919876543210",
    }
    resp = SimpleNamespace(status="200 OK", sent=10, headers=[("X-Request-Id", "abc")])
    line = json.loads(access_line(resp, environ, timedelta(milliseconds=3)))
    assert line["status"] == 200 and line["request_id"] == "abc" and line["ms"] == 3
    assert line["request"] == "GET /api/v1/users/%2B91******3210?phone=%2B91******5678 HTTP/1.1"
    assert line["agent"] == "probe +91******3210" and line["bytes"] == 10
    assert "9876543210" not in json.dumps(line) and "9812345678" not in json.dumps(line)


def test_gunicorns_own_lines_are_json_too() -> None:
    logger = MaskingLogger(Config())
    assert logger.error_log.handlers
    assert all(isinstance(h.formatter, JsonFormatter) for h in logger.error_log.handlers)


def test_an_sms_access_line_says_its_route_outcome_and_reference() -> None:
    environ = {
        "REQUEST_METHOD": "POST",
        "RAW_URI": "/sms/tasker",
        "SERVER_PROTOCOL": "HTTP/1.1",
        SMS_ENVIRON_KEY: ("tasker", "paid", "7K3M9QXA2B"),
    }
    resp = SimpleNamespace(status="200 OK", sent=120, headers=[])
    line = json.loads(access_line(resp, environ, timedelta(milliseconds=4)))
    assert (line["sms_route"], line["outcome"], line["reference"]) == (
        "tasker",
        "paid",
        "7K3M9QXA2B",
    )
