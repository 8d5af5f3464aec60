"""App-wide error answers: a store that cannot be reached (503) and HTTP errors as JSON.

The staff API and the console map the service layer's refusals themselves.
"""

from __future__ import annotations

import json
import logging

from flask import Flask, Response
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from storage.errors import StoreUnavailable

log = logging.getLogger(__name__)


def register(app: Flask) -> None:
    """Install the error handlers."""

    @app.errorhandler(StoreUnavailable)
    def store_unavailable(exc: StoreUnavailable) -> tuple[dict[str, str], int, dict[str, str]]:
        log.error("store unavailable: %s", exc)
        return {"error": "temporarily unavailable, retry later"}, 503, {"Retry-After": "30"}

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> BaseResponse:
        if exc.code == 403:  # authentication failures get a bare 403
            return Response(status=403)
        response = exc.get_response()  # keeps the headers the error carries (Allow, ...)
        response.set_data(json.dumps({"error": exc.description or exc.name}))
        response.content_type = "application/json"
        return response
