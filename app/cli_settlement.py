"""Operator commands for settlement: the worker, its jobs, reconciliation, and the sandbox."""

from __future__ import annotations

import json
from datetime import date, datetime

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from app import cli_sms
from app.bootstrap import Services
from app.jobs import HANDLERS, ON_DEAD
from app.services.reconcile import reconcile_day
from app.services.settlement import handle_gateway_event
from app.worker import Worker
from storage.models import JobStatus

jobs_cli = AppGroup("jobs", help="The durable outbox of jobs the worker runs.")
sandbox_cli = AppGroup("sandbox", help="Play the payer or the bank in the sandbox gateway.")


def _svc() -> Services:
    svc: Services = current_app.extensions["smspay"]
    return svc


@click.command("worker")
@with_appcontext
@click.option("--once", is_flag=True, help="Run the jobs that are due now, then stop.")
@click.option("--max-jobs", type=int, help="Stop after this many jobs.")
def worker_cmd(once: bool, max_jobs: int | None) -> None:
    """Run outbox jobs (payouts, status checks, payment links) until SIGTERM."""
    worker = Worker(_svc(), HANDLERS, on_dead=ON_DEAD)
    if once:
        count = 0
        while (max_jobs is None or count < max_jobs) and worker.run_once():
            count += 1
        click.echo(f"ran {count} jobs")
        return
    worker.install_signal_handlers()
    click.echo(f"worker {worker.owner} started")
    count = worker.run(max_jobs=max_jobs)
    click.echo(f"worker {worker.owner} stopped after {count} jobs")


@jobs_cli.command("list")
@click.option("--status", type=click.Choice([s.value for s in JobStatus]))
@click.option("--limit", default=50, show_default=True)
def jobs_list(status: str | None, limit: int) -> None:
    """Jobs, oldest first (dead ones need a look)."""
    rows = _svc().store.read(lambda uow: uow.jobs(JobStatus(status) if status else None, limit))
    for j in rows:
        click.echo(f"{j.key:40} {j.status.value:8} attempts={j.attempts} {j.last_error}")
    if not rows:
        click.echo("no jobs")


@jobs_cli.command("retry")
@click.argument("key")
def jobs_retry(key: str) -> None:
    """Give a dead job a fresh set of attempts."""
    svc = _svc()
    if not svc.store.atomic(lambda uow: uow.revive_job(key, svc.clock.now())):
        raise click.ClickException(f"no dead job {key}")
    click.echo(f"{key} will run again")


@click.command("reconcile")
@with_appcontext
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), help="Local day (default today).")
def reconcile_cmd(day: datetime | None) -> None:
    """Compare a day's payouts and top-ups with the gateway's own records."""
    svc = _svc()
    when: date = (day or datetime.fromtimestamp(svc.clock.now(), svc.tz)).date()
    with click.progressbar(length=0, label=f"reconciling {when}") as bar:

        def progress(done: int, total: int) -> None:
            bar.length = total
            bar.update(done - bar.pos)

        report = reconcile_day(svc, when, progress)
    click.echo(f"{report['checked']} checked, {len(report['mismatches'])} mismatches")
    for m in report["mismatches"]:
        click.echo(json.dumps(m))
    if report["mismatches"]:
        raise SystemExit(1)


@sandbox_cli.command("pay-link")
@click.argument("reference")
def sandbox_pay_link(reference: str) -> None:
    """Pay a top-up link in full, as the user would (sandbox only)."""
    svc = _svc()
    gateway = svc.gateway
    if gateway.name != "sandbox":
        raise click.ClickException("only the sandbox gateway can play the payer")
    signed = gateway.link_paid_event(reference.upper())  # type: ignore[attr-defined]
    if signed is None:
        raise click.ClickException(f"no payment link for {reference}")
    event = gateway.parse_webhook(*signed)
    assert event is not None
    click.echo(f"{reference}: {handle_gateway_event(svc, event)}")


def register(app_cli: click.Group) -> None:
    """Attach these commands to the Flask CLI."""
    app_cli.add_command(worker_cmd)
    app_cli.add_command(jobs_cli)
    app_cli.add_command(reconcile_cmd)
    app_cli.add_command(sandbox_cli)
    cli_sms.register(app_cli)
