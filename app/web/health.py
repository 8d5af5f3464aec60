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
    """Readiness: the store answers (503 otherwise, from the app's error handler). It reports
    whether a worker was heard from within the quiet window; with SMSPAY_READYZ_NEEDS_WORKER=1
    none is a 503 too (a deploy check), while by default a web process without workers still
    takes SMS in (they wait in the outbox), so a load balancer keeps it in rotation."""
    svc = services()
    svc.store.ping()
    found = workers.workers(svc)
    running = [w for w in found if w.state == "running"]
    if running:
        return {"status": "ready", "workers": len(running)}, 200
    body: dict[str, Any] = {
        "status": "ready",
        "workers": 0,
        "worker": "quiet" if found else "none",
        "quiet_seconds": svc.settings.worker_quiet_seconds,
        "last_beat_at": max((w.last_beat_at for w in found), default=None),
    }
    if svc.settings.readyz_needs_worker:
        return {**body, "status": "no worker"}, 503
    return body, 200
