"""gunicorn's access log: one JSON object a line with the request id (SMSPAY_LOG_FORMAT=json, the
default) or gunicorn's usual text, and phone numbers masked either way (staff look users up by
number in paths and query strings; docs/security.md promises masked numbers in every log)."""

from __future__ import annotations

import json
import os
import traceback
from datetime import UTC, datetime, timedelta
from typing import Any

from gunicorn.glogging import Logger

from app.logs import SMS_ENVIRON_KEY, JsonFormatter
from sms.numbers import mask_numbers_in


class MaskingLogger(Logger):  # type: ignore[misc]  # gunicorn ships no type hints
    """gunicorn's logger whose access lines never carry a full phone number, and whose own
    lines (start, stop, worker timeouts) are JSON like the service's when the format is json."""

    def setup(self, cfg: Any) -> None:
        """gunicorn's handlers, with the service's JSON formatter on its error log."""
        super().setup(cfg)
        if os.environ.get("SMSPAY_LOG_FORMAT", "json") != "text":
            for handler in self.error_log.handlers:
                handler.setFormatter(JsonFormatter())

    def atoms(
        self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta
    ) -> dict[str, Any]:
        """Every text field of the access line, numbers masked."""
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        for name, value in atoms.items():
            if isinstance(value, str):
                atoms[name] = mask_numbers_in(value)
        return atoms

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta) -> None:
        """One access line: JSON unless SMSPAY_LOG_FORMAT=text."""
        if os.environ.get("SMSPAY_LOG_FORMAT", "json") == "text":
            super().access(resp, req, environ, request_time)
            return
        if not self.access_log_enabled:
            return
        try:
            self.access_log.info("%s", access_line(resp, environ, request_time))
        except Exception:  # a log line must never fail a request (gunicorn does the same)
            self.error(traceback.format_exc())


def access_line(resp: Any, environ: dict[str, Any], request_time: timedelta) -> str:
    """The JSON access line, built from the few fields it shows (gunicorn's `atoms` would
    copy and mask every header and environ entry): the request line and the user agent are
    the fields that may carry a phone number, and are masked. For an inbound SMS it is the
    one INFO line: it also says the route, the outcome and the transaction reference."""
    status = str(resp.status).split(None, 1)[0]
    request = f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}"
    line: dict[str, object] = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "level": "INFO",
        "logger": "gunicorn.access",
        "remote": environ.get("REMOTE_ADDR", "-"),
        "request": mask_numbers_in(request),
        "status": int(status) if status.isdigit() else status,
        "bytes": getattr(resp, "sent", None),
        "ms": request_time.seconds * 1000 + request_time.microseconds // 1000,
        "agent": mask_numbers_in(environ.get("HTTP_USER_AGENT", "-")),
    }
    for name, value in resp.headers:
        if name.lower() == "x-request-id":
            line["request_id"] = value
    if sms := environ.get(SMS_ENVIRON_KEY):
        line["sms_route"], line["outcome"], line["reference"] = sms
    return json.dumps(line, ensure_ascii=False)
