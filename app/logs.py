"""Structured logs: one JSON object per line, a request id on every line a request causes, and
phone numbers masked in every message (docs/security.md).

The request id comes from the caller's `X-Request-Id` (when it is a short token) or is made here;
it is returned as a response header, so a support agent can find a sender's request in the logs.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import UTC, datetime

from flask import Flask, Response, request

from app.request_id import REQUEST_ID
from sms.numbers import mask_numbers_in

REQUEST_ID_HEADER = "X-Request-Id"
# The SMS webhooks leave (route, outcome, reference) here for the request's access line
# (app/access_log.py): one log line per SMS.
SMS_ENVIRON_KEY = "smspay.sms"
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # anything else is replaced, not logged


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request id, exception."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON, numbers masked."""
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": mask_numbers_in(record.getMessage()),
        }
        if request_id := REQUEST_ID.get():
            line["request_id"] = request_id
        if record.exc_info:
            line["exc"] = mask_numbers_in(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False)


class MaskingTextFormatter(logging.Formatter):
    """Plain text for a terminal (SMSPAY_LOG_FORMAT=text), numbers masked all the same."""

    def format(self, record: logging.LogRecord) -> str:
        """The usual text line, with the request id if there is one."""
        request_id = REQUEST_ID.get()
        text = super().format(record) + (f" [{request_id}]" if request_id else "")
        return mask_numbers_in(text)


def configure(level: str, fmt: str) -> None:
    """Log to stderr in `fmt` unless the process already configured logging (like basicConfig)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(MaskingTextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)


def new_request_id(offered: str | None) -> str:
    """The caller's id if it is a short plain token, else a fresh one."""
    if offered and VALID_REQUEST_ID.fullmatch(offered):
        return offered
    return uuid.uuid4().hex


def install_request_ids(app: Flask) -> None:
    """Give every request an id: in each log line it causes, and in the X-Request-Id response."""

    @app.before_request
    def _take_request_id() -> None:
        REQUEST_ID.set(new_request_id(request.headers.get(REQUEST_ID_HEADER)))

    @app.after_request
    def _return_request_id(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = REQUEST_ID.get()
        return response

    @app.teardown_request
    def _forget_request_id(_: BaseException | None) -> None:
        REQUEST_ID.set("")
