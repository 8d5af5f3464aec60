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
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flask import Flask

from app.request_id import REQUEST_ID
from sms.numbers import mask_numbers_in

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID_ENVIRON = "HTTP_X_REQUEST_ID"  # the header as WSGI names it
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


class RequestIds:
    """WSGI middleware: every request runs with its id (REQUEST_ID, on each log line it causes)
    and answers it in X-Request-Id. A middleware, as the request counters are (CountedRequests in
    app/web/metrics.py), rather than Flask hooks: docs/performance.md, item 46."""

    def __init__(self, wsgi_app: WSGIApplication) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request_id = new_request_id(environ.get(REQUEST_ID_ENVIRON))

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers.append((REQUEST_ID_HEADER, request_id))
            return start_response(status, headers, exc_info)

        token = REQUEST_ID.set(request_id)
        try:
            return self.wsgi_app(environ, start)
        finally:
            REQUEST_ID.reset(token)  # the view has run: what is left is sending the body


def install_request_ids(app: Flask) -> None:
    """Give every request an id: in each log line it causes, and in the X-Request-Id response."""
    app.wsgi_app = RequestIds(app.wsgi_app)  # type: ignore[method-assign]
