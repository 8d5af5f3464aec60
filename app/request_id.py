"""The id of the request (or job) the current code runs for: on every log line it causes, and in
the payload of every job it queues, so a job's log lines name the request that started it."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="")


def traced(payload: dict[str, Any]) -> dict[str, Any]:
    """A job's payload with the current request id (unchanged outside a request or job)."""
    request_id = REQUEST_ID.get()
    return {**payload, "request_id": request_id} if request_id else payload
