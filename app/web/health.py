"""Liveness and readiness."""

from __future__ import annotations

from flask import Blueprint

from app.web import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[dict[str, str], int]:
    """Liveness: the process answers. `?ready` is not needed; see /readyz."""
    return {"status": "ok"}, 200


@bp.get("/readyz")
def readyz() -> tuple[dict[str, str], int]:
    """Readiness: the store answers."""
    services().store.ping()
    return {"status": "ready"}, 200
