"""HTTP entry points: SMS webhooks and the Tasker outbox, gateway webhooks, the staff API and
console, health. Views verify, parse, call one service function, reply."""

from __future__ import annotations

from flask import current_app

from app.bootstrap import Services


def services() -> Services:
    """The composition root of the running app."""
    svc: Services = current_app.extensions["smspay"]
    return svc
