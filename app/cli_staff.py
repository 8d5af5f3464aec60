"""Operator commands for staff accounts: `flask --app wsgi staff ...`."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from flask import current_app
from flask.cli import AppGroup

from app.bootstrap import Services
from app.services import errors
from app.services import staff as staff_service
from storage.models import StaffRole

staff_cli = AppGroup("staff", help="Support staff and admins: accounts, API tokens, passwords.")


def _svc() -> Services:
    svc: Services = current_app.extensions["smspay"]
    return svc


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%MZ")


@staff_cli.command("add")
@click.option("--name", required=True, help="A sign-in name, e.g. asha.k")
@click.option("--role", required=True, type=click.Choice([r.value for r in StaffRole]))
def staff_add(name: str, role: str) -> None:
    """Create a staff member; their API token is printed once, alone on the last line."""
    try:
        member, token = staff_service.add_staff(
            _svc(), name, StaffRole(role), staff_service.cli_actor()
        )
    except errors.ServiceError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{member.name} added as {member.role.value}. Console password: "
               f"`staff password --name {member.name}`.")  # fmt: skip
    click.echo("API token (shown once; only its hash is kept):")
    click.echo(token)


@staff_cli.command("token")
@click.option("--name", required=True)
def staff_token(name: str) -> None:
    """Issue another API token; printed once, alone on the last line."""
    try:
        token = staff_service.issue_token(_svc(), name, staff_service.cli_actor())
    except errors.ServiceError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"new API token for {name} (shown once):")
    click.echo(token)


@staff_cli.command("revoke")
@click.option("--token-prefix", "prefix", help="The first 12 characters of one token.")
@click.option("--name", help="Revoke every token of this staff member and their console access.")
def staff_revoke(prefix: str | None, name: str | None) -> None:
    """Revoke one API token, or everything a staff member holds."""
    try:
        count = staff_service.revoke(_svc(), staff_service.cli_actor(), name=name, prefix=prefix)
    except errors.ServiceError as exc:
        raise click.ClickException(str(exc)) from exc
    if name:
        click.echo(f"revoked {count} tokens of {name}; their console sessions have ended")
    elif count:
        click.echo(f"revoked token {prefix}")
    else:
        raise click.ClickException(f"no active token starts with {prefix}")


@staff_cli.command("password")
@click.option("--name", required=True)
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="Prompted for when left out (better: it stays out of the shell history).",
)
def staff_password(name: str, password: str) -> None:
    """Set a staff member's console password (kept as a scrypt hash)."""
    try:
        staff_service.set_password(_svc(), name, password, staff_service.cli_actor())
    except errors.ServiceError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"console password set for {name}; their older sessions have ended")


@staff_cli.command("list")
def staff_list() -> None:
    """Staff members, their roles and tokens (by prefix)."""
    rows = staff_service.staff_list(_svc())
    for row in rows:
        m = row.member
        console = "console password set" if m.password_hash else "no console access"
        click.echo(f"{m.name:24} {m.role.value:8} {console}")
        for t in row.tokens:
            state = f"revoked {_when(t.revoked_at)}" if t.revoked_at else "active"
            click.echo(f"    token {t.prefix}…  issued {_when(t.created_at)}  {state}")
    if not rows:
        click.echo("no staff yet: flask --app wsgi staff add --name NAME --role admin")


def register(app_cli: click.Group) -> None:
    """Attach the staff commands to the Flask CLI."""
    app_cli.add_command(staff_cli)
