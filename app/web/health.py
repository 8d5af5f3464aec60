"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from app.services import workers
from app.web import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[dict[str, str], int]:
    """Liveness: the process answers. `?ready` is not needed; see /readyz."""
    return {"status": "ok"}, 200


@bp.get("/readyz")
def readyz() -> tuple[dict[str, Any], int]:
    """Readiness: the store answers (503 otherwise, from the app's error handler) and, unless
    SMSPAY_READYZ_NEEDS_WORKER=0, a worker has sent a heartbeat within the quiet window."""
    svc = services()
    svc.store.ping()
    if not svc.settings.readyz_needs_worker:
        return {"status": "ready"}, 200
    found = workers.workers(svc)
    running = [w for w in found if w.state == "running"]
    if not running:
        last = max((w.last_beat_at for w in found), default=None)
        quiet = svc.settings.worker_quiet_seconds
        return {"status": "no worker", "quiet_seconds": quiet, "last_beat_at": last}, 503
    return {"status": "ready", "workers": len(running)}, 200
