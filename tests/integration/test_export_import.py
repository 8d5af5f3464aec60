"""Moving a whole installation between SQLite and MongoDB with `db export` / `db import`.

Data is made through the service layer and the signed webhooks, moved to the other backend (same
master key), and must come out the same: records, order, balances, histories, and working keys.
"""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from app import create_app
from app.bootstrap import Services
from app.services import admin
from sms import replies
from storage import models, record_json, transfer
from storage.models import OutboundSms, TransactionState
from tests.conftest import EVERY_STORE, World, b64
from tests.functional.test_inbound import ASHA, MEERA, RAVI, Routes
from tests.mongo_server import database_uri, drop_database
from tests.support import FakeClock, Phone

GENERATED_IDS = ("ledger_entries", "inbound_sms", "outbox_sms")  # new ids in every store


class Installations:
    """Empty installations made on demand; each is closed (and its database dropped) at the end."""

    def __init__(self, settings: dict[str, Any], mongo_base_uri: str, clock: FakeClock) -> None:
        self.settings, self.mongo_base_uri, self.clock = settings, mongo_base_uri, clock
        self.apps: list[Flask] = []

    def new(self, backend: str, **overrides: Any) -> Flask:
        """A fresh store on `backend`; by default in the source's data_dir (its master key file)."""
        uri = database_uri(self.mongo_base_uri) if backend == "mongo" else ""
        app = create_app({**self.settings, "mongodb_uri": uri, **overrides}, clock=self.clock)
        self.apps.append(app)
        ok(app.test_cli_runner(), "db", "init")
        return app

    def restart(self, app: Flask) -> Flask:
        """The same installation in a new process (no cached PIN key)."""
        same = app.config["SETTINGS"]
        config = {"data_dir": same.data_dir, "mongodb_uri": same.mongodb_uri}
        fresh = create_app(
            {**self.settings, **config, "master_key": same.master_key}, clock=self.clock
        )
        self.apps.append(fresh)
        return fresh

    def close(self) -> None:
        dropped = set()
        for app in self.apps:
            services(app).store.close()
            uri = app.config["SETTINGS"].mongodb_uri
            if uri and uri not in dropped:
                drop_database(uri)
                dropped.add(uri)


@pytest.fixture
def installations(
    settings: dict[str, Any], mongo_base_uri: str, clock: FakeClock
) -> Iterator[Installations]:
    made = Installations(settings, mongo_base_uri, clock)
    yield made
    made.close()


def services(app: Flask) -> Services:
    svc: Services = app.extensions["smspay"]
    return svc


def other(backend: str) -> str:
    return "sqlite" if backend else "mongo"


def ok(runner: FlaskCliRunner, *args: str) -> str:
    result = runner.invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output


def fails(runner: FlaskCliRunner, *args: str) -> str:
    result = runner.invoke(args=list(args))
    assert result.exit_code != 0, result.output
    return result.output


def populate(world: World, routes: Routes, clock: FakeClock) -> dict[str, Phone]:
    """Users, payments both ways and through both routes, refusals, a redelivery, old devices."""
    asha = world.user(ASHA, "1234", rupees=1000, name="Asha")
    ravi = world.user(RAVI, "4321", name="Ravi")
    clock.advance(60)
    world.user(MEERA, "5555", rupees=50, name="Meera")
    bundle = admin.provision_device(world.svc, MEERA)  # her first device stops working
    meera = Phone(MEERA, bundle.key_id, bundle.key, "5555")
    admin.add_tasker_gateway(world.svc, "shop-2")
    clock.advance(60)
    assert "Paid Rs 250.00" in routes.twilio(ASHA, asha.pay(RAVI, 25_000, at=clock.now()))[1]
    clock.advance(5)
    assert "Paid Rs 40.00" in routes.tasker(RAVI, ravi.pay(ASHA, 4_000, at=clock.now()))[1]
    body, sid = asha.pay(MEERA, 1_000, at=clock.now(), note="rent"), "SM" + "ab" * 16
    first = routes.twilio(ASHA, body, sid)
    assert routes.twilio(ASHA, body, sid) == first  # a Twilio retry: processed once
    assert routes.tasker(MEERA, meera.pay(ASHA, 100, pin="0000", at=clock.now()))[1] == (
        replies.wrong_pin(2)
    )
    assert "not enough balance" in routes.tasker(RAVI, ravi.pay(ASHA, 999_999, at=clock.now()))[1]
    assert routes.twilio(MEERA, "HELP") == (200, replies.HELP)
    clock.advance(30)
    assert "Paid Rs 1.00" in routes.tasker(MEERA, meera.pay(RAVI, 100, at=clock.now()))[1]
    assert routes.twilio(RAVI, ravi.balance(pin="0000", at=clock.now()))[1] == replies.wrong_pin(2)
    return {ASHA: asha, RAVI: ravi, MEERA: meera}


def export(app: Flask, path: Path) -> list[dict[str, Any]]:
    """`db export` through the CLI; returns the file's lines as JSON."""
    out = ok(app.test_cli_runner(), "db", "export", "--out", str(path))
    assert "NOT in the file" in out and "same master key" in out
    return [json.loads(line) for line in path.read_text().splitlines()]


def normalised(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Export lines with the ids each store generates for itself left out (an `sms.send` job is
    keyed by its message's id, so its key goes too)."""

    def plain(line: dict[str, Any]) -> dict[str, Any]:
        record = line.get("record", {})
        if line.get("kind") in GENERATED_IDS:
            return {**line, "record": {**record, "id": None}}
        if line.get("kind") == "jobs" and record["kind"] == "sms.send":
            payload = {**record["payload"], "id": None}
            return {**line, "record": {**record, "id": None, "key": None, "payload": payload}}
        return line

    return [plain(line) for line in lines]


def everything(svc: Services) -> dict[str, Any]:
    """What the service layer reads back, generated ids left out."""

    def read(uow: Any) -> dict[str, Any]:
        # by reference: transactions() leaves the order of equal times to the backend
        txns = sorted(uow.search_transactions(limit=1000), key=lambda t: t.reference)
        return {
            "users": [uow.get_user_by_phone(p) for p in (ASHA, RAVI, MEERA)],
            "balances": [uow.balance(u.account) for u in map(uow.get_user_by_phone, (ASHA, RAVI))],
            "total": uow.total_balance(),
            "transactions": txns,
            "events": [uow.events(t.reference) for t in txns],
            "postings": [[e.postings for e in uow.entries(t.reference)] for t in txns],
            "inbound": [
                [(r.route, r.outcome, r.reply, r.deliveries, r.counter) for r in uow.inbound_for(p)]
                for p in (ASHA, RAVI, MEERA)
            ],  # fmt: skip
            "devices": uow.devices(),
            "gateways": uow.gateways(),
            "outbox": [(m.to, m.body, m.reference, m.status) for m in uow.outbox(1000)],
        }

    return svc.store.read(read)


@pytest.fixture
def routes(client: Any, world: World, clock: FakeClock) -> Routes:
    return Routes(client, world, clock)


def test_cli_round_trip_to_the_other_backend_and_back(
    app: Flask,
    backend: str,
    world: World,
    routes: Routes,
    clock: FakeClock,
    installations: Installations,
    tmp_path: Path,
) -> None:
    phones = populate(world, routes, clock)
    before = everything(world.svc)
    first = export(app, tmp_path / "first.jsonl")
    header = first[0]
    assert header["format"] == "smspay-export" and header["version"] == 1
    assert header["counts"]["users"] == 3 and header["counts"]["devices"] == 4
    assert header["counts"]["inbound_sms"] == 8 and header["counts"]["meta"] == 1
    assert header["total_balance"] == world.total() == 0  # the cash-in account balances it

    middle = installations.new(other(backend))
    out = ok(middle.test_cli_runner(), "db", "import", str(tmp_path / "first.jsonl"))
    assert "verified: 1 meta, 3 users, 4 accounts" in out and "every account balance" in out
    assert normalised(export(middle, tmp_path / "second.jsonl")) == normalised(first)
    moved_there = services(installations.restart(middle))
    assert everything(moved_there) == before
    # SQLite's payees_paid is not exported: its triggers make it as the transactions arrive
    assert window_payees(moved_there) == window_payees(world.svc) != {}

    # back to a new store of the source's kind, in another data_dir: the key comes from the setting
    key = b64(services(app).keyring.primary.material)
    last = installations.new(
        "mongo" if backend else "sqlite", data_dir=str(tmp_path / "elsewhere"), master_key=key
    )
    ok(last.test_cli_runner(), "db", "import", str(tmp_path / "second.jsonl"))
    assert normalised(export(last, tmp_path / "third.jsonl")) == normalised(first)

    # the moved installation works: device keys, gateway secrets, replay windows, PINs
    target = installations.restart(last)
    moved = Routes(target.test_client(), world, clock)
    asha, ravi, meera = phones[ASHA], phones[RAVI], phones[MEERA]
    clock.advance(60)
    assert "Paid Rs 3.00" in moved.twilio(ASHA, asha.pay(RAVI, 300, at=clock.now()))[1]
    assert "Paid Rs 2.00" in moved.tasker(MEERA, meera.pay(ASHA, 200, at=clock.now()))[1]
    assert moved.tasker(RAVI, ravi.balance(pin="0000", at=clock.now()))[1] == (
        replies.wrong_pin(1)  # the wrong-PIN count came along
    )
    assert moved.tasker(ASHA, asha.sent[0]) == (200, first_reply(before, ASHA))  # a replay
    after = everything(services(target))
    assert after["balances"] == [before["balances"][0] - 300 + 200, before["balances"][1] + 300]
    assert after["total"] == 0


def window_payees(svc: Services) -> dict[str, set[str]]:
    """Each payer's payees of committed payments, as the velocity rule reads them."""

    def read(uow: Any) -> dict[str, set[str]]:
        ids = {phone: uow.get_user_by_phone(phone).id for phone in (ASHA, RAVI, MEERA)}
        paid = {phone: uow.payees_paid_since(i, 0, 100) for phone, i in ids.items()}
        return {phone: payees for phone, payees in paid.items() if payees}

    result: dict[str, set[str]] = svc.store.read(read)
    return result


def first_reply(everything_before: dict[str, Any], phone: str) -> str:
    """The reply a phone's first processed instruction got (inbound lists are newest first)."""
    index = (ASHA, RAVI, MEERA).index(phone)
    return str(everything_before["inbound"][index][-1][2])


def test_import_refuses_a_store_that_is_not_empty_and_changes_nothing(
    app: Flask,
    backend: str,
    world: World,
    routes: Routes,
    clock: FakeClock,
    installations: Installations,
    tmp_path: Path,
) -> None:
    populate(world, routes, clock)
    export(app, tmp_path / "all.jsonl")
    target = installations.new(other(backend))
    admin.register_user(services(target), "+919811111111", "Early", "2468")
    before = export(target, tmp_path / "before.jsonl")
    out = fails(target.test_cli_runner(), "db", "import", str(tmp_path / "all.jsonl"))
    assert "not empty (1 users, 1 accounts)" in out
    assert export(target, tmp_path / "after.jsonl") == before
    # the source itself is not empty either
    assert "not empty" in fails(app.test_cli_runner(), "db", "import", str(tmp_path / "all.jsonl"))


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def edit_header(lines: list[str], change: Callable[[dict[str, Any]], None]) -> list[str]:
    header = json.loads(lines[0])
    change(header)
    return [json.dumps(header) + "\n", *lines[1:]]


def bad_base64(lines: list[str]) -> list[str]:
    i = next(n for n, line in enumerate(lines) if '"kind":"devices"' in line)
    row = json.loads(lines[i])
    row["record"]["wrapped_key"] = "not base64!"
    return [*lines[:i], json.dumps(row) + "\n", *lines[i + 1 :]]


def swapped_kinds(lines: list[str]) -> list[str]:
    i = next(n for n, line in enumerate(lines) if '"kind":"accounts"' in line)
    return [lines[0], lines[i], *lines[1:i], *lines[i + 1 :]]


def more_users(header: dict[str, Any]) -> None:
    header["counts"]["users"] += 1


def more_money(header: dict[str, Any]) -> None:
    header["total_balance"] += 100


CORRUPTIONS: dict[str, tuple[Callable[[list[str]], list[str]], str]] = {
    "truncated": (lambda ls: [*ls[:-1], ls[-1][: len(ls[-1]) // 2]], "not valid JSON"),
    "line lost": (lambda ls: ls[:-1], "incomplete or edited"),
    "header counts": (lambda ls: edit_header(ls, more_users), "4 users (the header says 5)"),
    "header total": (lambda ls: edit_header(ls, more_money), "the header says 100"),
    "not an export": (lambda ls: ['{"hello": 1}\n', *ls[1:]], "line 1: not an smspay-export"),
    "empty": (lambda ls: [], "the file is empty"),
    "bad base64": (bad_base64, "devices.wrapped_key must be base64"),
    "out of order": (swapped_kinds, "meta after accounts"),
    "duplicate": (lambda ls: [*ls[:3], ls[2], *ls[3:]], "appears twice"),
    "unknown kind": (
        lambda ls: [*ls, '{"kind": "secrets", "record": {}}\n'],
        'expected {"kind": one of',
    ),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_a_corrupted_file_fails_clearly_and_changes_nothing(
    corruption: str,
    app: Flask,
    backend: str,
    world: World,
    installations: Installations,
    tmp_path: Path,
) -> None:
    for phone in (ASHA, RAVI, MEERA):
        world.user(phone, rupees=100)
    world.user("+919811111111")
    good = tmp_path / "good.jsonl"
    export(app, good)
    change, message = CORRUPTIONS[corruption]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(change(lines_of(good))))
    target = installations.new(other(backend))
    out = fails(target.test_cli_runner(), "db", "import", str(bad))
    assert message in out
    empty = services(target).store.read(transfer.summarize)
    assert empty.records == 1 and empty.total_balance == 0  # only db init's PIN key


def test_secrets_under_another_master_key_are_refused_before_any_write(
    app: Flask, backend: str, world: World, installations: Installations, tmp_path: Path
) -> None:
    world.user(ASHA, rupees=10)
    export(app, tmp_path / "all.jsonl")
    stranger = b64(bytes(range(32)))
    target = installations.new(
        other(backend), data_dir=str(tmp_path / "elsewhere"), master_key=stranger
    )
    out = fails(target.test_cli_runner(), "db", "import", str(tmp_path / "all.jsonl"))
    assert "does not unwrap under this installation's master key" in out
    assert services(target).store.read(transfer.summarize).records == 1


def test_the_export_is_private_and_holds_no_plain_secret(
    app: Flask, world: World, tmp_path: Path
) -> None:
    phone = world.user(ASHA, "1234", rupees=10)
    path = tmp_path / "all.jsonl"
    export(app, path)
    text = path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "all.jsonl.partial").exists()
    assert b64(phone.key) not in text and world.gateway_secret not in text
    assert b64(services(app).keyring.primary.material) not in text
    assert json.loads(text.splitlines()[0])["secrets"].startswith("secrets are wrapped")


@EVERY_STORE
def test_order_is_kept_across_import_batches(
    svc: Services, backend: str, installations: Installations
) -> None:
    count = transfer.BATCH * 2 + 7  # three units of work
    messages = [OutboundSms(f"+91980000{i:04d}", f"m{i}", 1.0e9 - i) for i in range(count)]
    records = [("outbox_sms", m) for m in messages]
    seen: list[int] = []
    assert transfer.import_records(svc.store, records, seen.append) == count
    assert seen == [transfer.BATCH, transfer.BATCH, 7]
    target = services(installations.new(other(backend))).store
    buffer = io.StringIO()
    transfer.write_export(svc.store, buffer)
    expected = transfer.scan(io.StringIO(buffer.getvalue()))
    _, again = transfer.read_export(io.StringIO(buffer.getvalue()))
    transfer.import_records(target, again)
    assert transfer.verify(target, expected) == []
    for store in (svc.store, target):
        bodies = store.read(lambda uow: [m.body for m in uow.outbox(limit=count)])
        assert bodies == [m.body for m in messages]


@EVERY_STORE
def test_verify_reports_every_difference(svc: Services, world: World) -> None:
    world.user(ASHA, rupees=10)
    buffer = io.StringIO()
    transfer.write_export(svc.store, buffer)
    expected = transfer.scan(io.StringIO(buffer.getvalue()))
    assert transfer.verify(svc.store, expected) == []
    world.user(RAVI, rupees=5)
    problems = transfer.verify(svc.store, expected)
    assert "users: 1 in the file, 2 in the store" in problems
    assert any(p.startswith("account user:") and "None paise in the file" in p for p in problems)


@EVERY_STORE
def test_an_export_that_sees_writes_is_refused(
    svc: Services, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.user(ASHA, rupees=10)
    real = transfer.summarize

    def stale(uow: Any) -> transfer.Summary:  # as if a payment landed between two reads
        s = real(uow)
        return transfer.Summary(s.counts, s.total_balance + 1)

    monkeypatch.setattr(transfer, "summarize", stale)
    with pytest.raises(transfer.TransferError, match="changed during the export"):
        transfer.write_export(svc.store, io.StringIO())


@EVERY_STORE
def test_records_survive_json_exactly(svc: Services, world: World) -> None:
    world.user(ASHA, rupees=10)
    for kind, record in svc.store.read(lambda uow: list(transfer.export_records(uow))):
        line = json.loads(transfer.record_line(kind, record))
        assert record_json.from_json(models.RECORDS[kind], line["record"], kind) == record
    assert TransactionState.SUCCESS.value == record_json.to_json(TransactionState.SUCCESS)


def test_every_table_or_collection_is_exported(svc: Services, backend: str) -> None:
    """A new table or collection must be added to storage/transfer.py, or a move would lose it."""
    store: Any = svc.store
    if backend:
        names = set(store.db.list_collection_names())
    else:
        with sqlite3.connect(store.path) as conn:
            names = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
    travel_inside = {"postings", "transaction_events"}
    assert names - travel_inside - models.NOT_EXPORTED == set(models.KINDS)


def test_json_objects_and_any_pass_through() -> None:
    assert record_json.from_json(dict[str, Any], {"a": [1]}, "payload") == {"a": [1]}
    assert record_json.from_json(Any, 5, "x") == 5
    with pytest.raises(ValueError, match="payload must be an object"):
        record_json.from_json(dict[str, Any], [], "payload")
