"""Operator commands: `flask --app wsgi <group> <command>`.

The store, users, devices, wallets, Tasker gateways, transactions and master keys are here;
settlement (worker, jobs, reconcile, sandbox), outbound SMS and staff have their own modules.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app import cli_settlement, cli_staff
from app.bootstrap import MASTER_KEY_FILE as KEY_FILE
from app.bootstrap import NEXT_MASTER_KEY_FILE, Services, write_key_file
from app.config import documented_settings, markdown_table
from app.services import admin, errors, holds, payments
from app.services.staff import cli_actor
from crypto.keys import (
    PIN_KEY_LABEL,
    KeyRing,
    MasterKey,
    UnwrapError,
    device_key_label,
    gateway_secret_label,
    generate_key,
)
from sms.instructions import format_rupees, parse_rupees
from storage import transfer
from storage.errors import StoreError, StoreUnavailable
from storage.models import (
    Device,
    MetaValue,
    Record,
    TaskerGateway,
    Transaction,
    TransactionState,
)

db_cli = AppGroup("db", help="The store.")
users_cli = AppGroup("users", help="Registered users.")
devices_cli = AppGroup("devices", help="Phones and their encryption keys.")
wallet_cli = AppGroup("wallet", help="Wallet balances.")
gateways_cli = AppGroup("gateways", help="Tasker phones that forward SMS.")
transactions_cli = AppGroup("transactions", help="Look transactions up.")
keys_cli = AppGroup("keys", help="Master keys.")


def _svc() -> Services:
    svc: Services = current_app.extensions["smspay"]
    return svc


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@db_cli.command("init")
def db_init() -> None:
    """Create the store's tables and indexes (idempotent) and the development master key."""
    svc = _svc()
    try:
        svc.store.init()
        svc.store.atomic(svc.pins)  # creates the dev master key file and the PIN key
    except StoreUnavailable as exc:
        raise _fail(exc) from exc
    click.echo(f"store ready: {svc.store!r}")


def _counts(summary: transfer.Summary) -> str:
    counts = ", ".join(f"{n} {kind}" for kind, n in summary.counts.items())
    return f"{counts}; total balance {format_rupees(summary.total_balance)}"


@db_cli.command("export")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path))
def db_export(out: Path) -> None:
    """Write every record of the store to a JSON-lines file (secrets stay wrapped)."""
    partial = out.with_name(out.name + ".partial")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            summary = transfer.write_export(_svc().store, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, out)  # never a half-written file under the final name
    except StoreError as exc:
        partial.unlink(missing_ok=True)
        raise _fail(exc) from exc
    click.echo(f"exported {summary.records} records to {out}: {_counts(summary)}")
    click.echo(
        "The master key is NOT in the file: device keys, gateway secrets and the PIN key stay"
        " wrapped under it, so the target must run with the same master key"
        " (SMSPAY_MASTER_KEY, or this DATA_DIR's master.key)."
    )


def _unwraps(svc: Services) -> Callable[[Record], None]:
    """A check that every wrapped secret in the file opens under this installation's keys."""

    def check(record: Record) -> None:
        if isinstance(record, MetaValue) and record.key == PIN_KEY_LABEL:
            blob, label, what = record.value, PIN_KEY_LABEL, "the PIN key"
        elif isinstance(record, Device):
            blob, label = record.wrapped_key, device_key_label(record.key_id)
            what = f"device key {record.key_id}"
        elif isinstance(record, TaskerGateway):
            blob, label = record.wrapped_secret, gateway_secret_label(record.id)
            what = f"the secret of gateway {record.id}"
        else:
            return
        try:
            svc.keyring.unwrap(blob, label)
        except UnwrapError as exc:
            raise transfer.TransferError(
                f"{what} does not unwrap under this installation's master key ({exc}); run the"
                " import with the source's master key"
            ) from None

    return check


@db_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def db_import(file: Path) -> None:
    """Load an export into this store, which must be empty; then check counts and balances."""
    svc = _svc()
    try:
        with file.open(encoding="utf-8") as f:
            expected = transfer.scan(f, check=_unwraps(svc))  # the whole file, before any write
        transfer.ensure_empty(svc.store)
        with (
            file.open(encoding="utf-8") as f,
            click.progressbar(length=expected.summary.records, label="importing") as bar,
        ):
            _, records = transfer.read_export(f)
            transfer.import_records(svc.store, records, bar.update)
        problems = transfer.verify(svc.store, expected)
    except StoreError as exc:
        raise _fail(exc) from exc
    if problems:
        for problem in problems:
            click.echo(f"MISMATCH {problem}", err=True)
        raise click.ClickException("the imported store does not match the file")
    click.echo(f"verified: {_counts(expected.summary)}; every account balance matches")


@users_cli.command("add")
@click.option("--phone", required=True, help="E.164 number, e.g. +919876543210.")
@click.option("--name", required=True)
@click.option("--pin", required=True, help="4 to 6 digits.")
def users_add(phone: str, name: str, pin: str) -> None:
    """Register a user with an empty wallet."""
    try:
        user = admin.register_user(_svc(), phone, name, pin)
    except errors.ServiceError as exc:
        raise _fail(exc) from exc
    click.echo(f"registered {user.name} ({user.phone}) as {user.id}")


@users_cli.command("usual-area")
@click.option("--phone", required=True)
@click.option("--at", "at", help="lat,lon in decimal degrees, e.g. 12.9716,77.5946.")
@click.option("--clear", is_flag=True, help="Learn the area from the user's payments again.")
@click.option("--reason", required=True, help="Why (goes into the audit log).")
def users_usual_area(phone: str, at: str | None, clear: bool, reason: str) -> None:
    """Set the usual area the geofence measures a user's payments from (docs/risk.md)."""
    if clear == bool(at):
        raise click.UsageError("give either --at lat,lon or --clear")
    try:
        area = None if clear else tuple(float(x) for x in (at or "").split(","))
        if area is not None and len(area) != 2:
            raise ValueError
    except ValueError:
        raise click.UsageError("--at is lat,lon in decimal degrees") from None
    try:
        user = holds.set_usual_area(_svc(), cli_actor(), phone, area, reason)
    except errors.ServiceError as exc:
        raise _fail(exc) from exc
    where = f"{user.area_lat},{user.area_lon}" if user.area_lat is not None else "learned"
    click.echo(f"usual area of {user.phone}: {where}")


@devices_cli.command("provision")
@click.option("--phone", required=True)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path))
def devices_provision(phone: str, out: Path) -> None:
    """Create a device key for a user's phone and write the bundle the phone app reads."""
    try:
        bundle = admin.provision_device(_svc(), phone)
    except errors.ServiceError as exc:
        raise _fail(exc) from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(bundle.to_json(), f, indent=2)
    click.echo(f"device key {bundle.key_id} for {phone} written to {out} (keep it secret)")


@wallet_cli.command("credit")
@click.option("--phone", required=True)
@click.option("--amount", required=True, help="Rupees, e.g. 500 or 500.00.")
@click.option("--reason", required=True, help="Why, e.g. 'cash-in at agent 17'.")
def wallet_credit(phone: str, amount: str, reason: str) -> None:
    """Credit a wallet against cash an agent took in."""
    try:
        txn = payments.credit_wallet(_svc(), phone, parse_rupees(amount), reason, actor="cli")
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--amount") from exc
    except errors.ServiceError as exc:
        raise _fail(exc) from exc
    click.echo(f"credited {format_rupees(txn.amount)} to {phone}, ref {txn.reference}")


@wallet_cli.command("balance")
@click.option("--phone", required=True)
def wallet_balance(phone: str) -> None:
    """Show a user's balance."""
    user = _svc().store.read(lambda uow: uow.get_user_by_phone(phone))
    if user is None:
        raise click.ClickException(f"no user has the number {phone}")
    balance = _svc().store.read(lambda uow: uow.balance(user.account))
    click.echo(format_rupees(balance))


@gateways_cli.command("add-tasker")
@click.option("--id", "gateway_id", required=True, help="A name for the phone, e.g. shop-1.")
def gateways_add_tasker(gateway_id: str) -> None:
    """Register a Tasker phone; its HMAC secret is printed once, alone on the last line."""
    try:
        secret = admin.add_tasker_gateway(_svc(), gateway_id)
    except errors.ServiceError as exc:
        raise _fail(exc) from exc
    click.echo(f"gateway {gateway_id} added; put this secret in its Tasker profile (shown once):")
    click.echo(secret)


def _row(t: Transaction) -> str:
    return (
        f"{t.reference}  {_when(t.created_at)}  {t.kind.value:8}  {format_rupees(t.amount):>14}  "
        f"{t.state.value:10}  {t.payer_phone or '-'} -> {t.payee or '-'}  {t.reason}"
    )


@transactions_cli.command("list")
@click.option("--phone", help="Only transactions this number paid or received.")
@click.option("--state", type=click.Choice([s.value for s in TransactionState]))
@click.option("--limit", default=20, show_default=True)
def transactions_list(phone: str | None, state: str | None, limit: int) -> None:
    """The newest transactions first."""
    rows = _svc().store.read(
        lambda uow: uow.search_transactions(
            phone=phone, state=TransactionState(state) if state else None, limit=limit
        )
    )
    for t in rows:
        click.echo(_row(t))
    if not rows:
        click.echo("no transactions")


@transactions_cli.command("show")
@click.argument("reference")
def transactions_show(reference: str) -> None:
    """One transaction with its history and ledger postings."""
    ref = reference.strip().upper()

    def load(uow):  # type: ignore[no-untyped-def]
        return uow.get_transaction(ref), uow.events(ref), uow.entries(ref)

    txn, events, entries = _svc().store.read(load)
    if txn is None:
        raise click.ClickException(f"no transaction {ref}")
    click.echo(_row(txn))
    if txn.note:
        click.echo(f"note: {txn.note}")
    if txn.lat is not None:
        click.echo(f"location: {txn.lat},{txn.lon}")
    if txn.risk:
        click.echo(f"risk: {txn.risk}")
    for e in events:
        click.echo(f"  {_when(e.at)}  {e.state.value:10}  {e.reason}")
    for entry in entries:
        for p in entry.postings:
            click.echo(f"  ledger #{entry.id}  {p.account:28} {p.amount:+d} paise")


@keys_cli.command("rotate-master")
def keys_rotate_master() -> None:
    """Re-wrap every stored secret under a new master key.

    With SMSPAY_MASTER_KEY set, the operator sets the new key there and the old one in
    SMSPAY_MASTER_KEY_PREVIOUS, then runs this. With the development key file, this makes the new
    key itself and swaps the files once everything is re-wrapped (safe to run again if stopped).
    """
    svc = _svc()
    if svc.settings.master_key:
        moved = admin.rewrap_all(svc)
        click.echo(f"re-wrapped {moved} secrets under the configured master key")
        return
    current, nxt = svc.settings.data_path / KEY_FILE, svc.settings.data_path / NEXT_MASTER_KEY_FILE
    write_key_file(nxt, MasterKey(generate_key()))  # kept if a stopped rotation left one
    new_key = MasterKey.from_b64(nxt.read_text())
    ring = KeyRing(new_key, [svc.keyring.primary, *svc.keyring.others()])
    moved = admin.rewrap_all(svc, ring)
    os.replace(nxt, current)
    click.echo(f"re-wrapped {moved} secrets; {current.name} now holds the new key")


@click.command("settings")
@click.option("--markdown", is_flag=True, help="The table of docs/configuration.md.")
def settings_cmd(markdown: bool) -> None:
    """Every SMSPAY_ setting with its default."""
    if markdown:
        click.echo(markdown_table(), nl=False)
        return
    for name, default, doc in documented_settings():
        click.echo(f"{name}={default}\n    {doc}")


def register_cli(app: Flask) -> None:
    """Attach the command groups to the app."""
    for group in (
        db_cli, users_cli, devices_cli, wallet_cli, gateways_cli, transactions_cli, keys_cli
    ):  # fmt: skip
        app.cli.add_command(group)
    app.cli.add_command(settings_cmd)
    cli_settlement.register(app.cli)
    cli_staff.register(app.cli)
