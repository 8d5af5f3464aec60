"""Operator commands for outbound SMS."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from flask import current_app
from flask.cli import AppGroup

from app.bootstrap import Services
from sms.numbers import mask_phone

sms_cli = AppGroup("sms", help="Status SMS the service sends.")


@sms_cli.command("outbox")
@click.option("--phone", help="Only SMS to this number.")
@click.option("--limit", default=50, show_default=True)
@click.option("--full", is_flag=True, help="Show full numbers and texts (they carry balances).")
def sms_outbox(phone: str | None, limit: int, full: bool) -> None:
    """Outbound SMS, oldest first, with their delivery status."""
    svc: Services = current_app.extensions["smspay"]
    rows = [
        m
        for m in svc.store.read(lambda uow: uow.outbox(limit=10_000))
        if phone is None or m.to == phone
    ][-limit:]
    for m in rows:
        when = datetime.fromtimestamp(m.created_at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        to = m.to if full else mask_phone(m.to)
        text = m.body if full else f"({len(m.body)} characters)"
        click.echo(f"{m.id:>6} {when} {m.status:11} {m.channel or '-':7} {to} {text} {m.error}")
    if not rows:
        click.echo("no SMS")


def register(app_cli: click.Group) -> None:
    """Attach the SMS commands to the Flask CLI."""
    app_cli.add_command(sms_cli)
