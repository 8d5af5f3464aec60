"""An export made by the storage layout before the reshape imports into today's stores.

tests/fixtures/legacy/export-v1.jsonl was written once by that code (see the README beside it).
On each backend it must import into an empty installation that runs with the same master key,
verify, hold exactly what the file holds with every secret still opening, work through the
service layer afterwards, and export again to the same file apart from the ids a store makes.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.services import admin, payments
from crypto.keys import PIN_KEY_LABEL, device_key_label, gateway_secret_label
from sms import replies
from sms.instructions import format_balance
from storage import transfer
from storage.models import (
    Account,
    Device,
    FrameRecord,
    History,
    LedgerEntry,
    MetaValue,
    OutboundSms,
    Record,
    TaskerGateway,
    User,
)
from tests.conftest import b64
from tests.functional.test_inbound import ASHA, MEERA, RAVI
from tests.integration.test_export_import import (
    Installations,
    export,
    normalised,
    ok,
    services,
)
from tests.support import (
    FakeClock,
    Phone,
    reply_text,
    tasker_body,
    tasker_headers,
    twilio_form,
    twilio_signature,
)

LEGACY = Path(__file__).parents[1] / "fixtures" / "legacy"
EXPORT = LEGACY / "export-v1.jsonl"
MASTER_KEY = b64(bytes(range(32)))  # the fixture's (obviously fake) master key
WRITTEN_AT = 1_790_000_000  # the clock when the fixture was made
PINS = {ASHA: "1234", RAVI: "4321", MEERA: "5555"}
GATEWAY = "shop-1"  # the fixture's first Tasker phone


@pytest.fixture
def clock() -> FakeClock:
    """An hour after the fixture's last write."""
    return FakeClock(WRITTEN_AT + 3_600)


@pytest.fixture
def installations(
    settings: dict[str, Any], mongo_base_uri: str, clock: FakeClock
) -> Iterator[Installations]:
    made = Installations(settings, mongo_base_uri, clock)
    yield made
    made.close()


def file_lines() -> list[dict[str, Any]]:
    """The fixture's lines as JSON."""
    return [json.loads(line) for line in EXPORT.read_text().splitlines()]


def file_records() -> dict[str, list[Record]]:
    """The fixture's records by kind, read the way `db import` reads them."""
    with EXPORT.open(encoding="utf-8") as f:
        _, records = transfer.read_export(f)
        by_kind: dict[str, list[Record]] = defaultdict(list)
        for kind, record in records:
            by_kind[kind].append(record)
    return by_kind


@pytest.fixture
def imported(backend: str, installations: Installations, tmp_path: Path) -> tuple[Flask, str]:
    """A new installation on `backend` with the fixture's master key, the fixture imported into
    it through the CLI, restarted (no PIN key cached from `db init`); and the import's output."""
    fresh = installations.new(
        "mongo" if backend else "sqlite", data_dir=str(tmp_path / "legacy"), master_key=MASTER_KEY
    )
    out = ok(fresh.test_cli_runner(), "db", "import", str(EXPORT))
    return installations.restart(fresh), out


def test_the_import_verifies_and_the_store_holds_what_the_file_holds(
    imported: tuple[Flask, str], tmp_path: Path
) -> None:
    app, out = imported
    header = file_lines()[0]
    counts = ", ".join(f"{n} {kind}" for kind, n in header["counts"].items())
    assert f"verified: {counts}; total balance" in out and "every account balance matches" in out

    svc, want = services(app), file_records()
    assert svc.store.read(transfer.summarize) == transfer.Summary(header["counts"], 0)
    histories = [h for h in want["transactions"] if isinstance(h, History)]
    assert len(histories) == 8

    def read(uow: Any) -> dict[str, Any]:
        return {
            "users": [uow.get_user(u.id) for u in want["users"] if isinstance(u, User)],
            "balances": [
                Account(a.id, uow.balance(a.id), a.allow_negative)
                for a in want["accounts"]
                if isinstance(a, Account)
            ],
            "total": uow.total_balance(),
            "devices": uow.devices(),
            "gateways": uow.gateways(),
            "transactions": [uow.get_transaction(h.transaction.reference) for h in histories],
            "events": [tuple(uow.events(h.transaction.reference)) for h in histories],
            "entries": sorted(
                (e.reference, e.created_at, e.postings)
                for h in histories
                for e in uow.entries(h.transaction.reference)
            ),
            "pin key": uow.get_meta(PIN_KEY_LABEL),
        }

    held = svc.store.read(read)
    assert held["users"] == want["users"] and len(held["users"]) == 3
    assert held["balances"] == want["accounts"] and held["total"] == 0
    assert held["devices"] == want["devices"] and held["gateways"] == want["tasker_gateways"]
    assert held["transactions"] == [h.transaction for h in histories]
    assert held["events"] == [h.events for h in histories]
    assert held["entries"] == sorted(
        (e.reference, e.created_at, e.postings)
        for e in want["ledger_entries"]
        if isinstance(e, LedgerEntry)
    )
    (pin_key,) = [m for m in want["meta"] if isinstance(m, MetaValue)]
    assert held["pin key"] == pin_key.value  # the file's, not the one `db init` made

    # every secret opens under the fixture's master key
    ring = svc.keyring
    for device in held["devices"]:
        assert isinstance(device, Device)
        assert len(ring.unwrap(device.wrapped_key, device_key_label(device.key_id))) == 32
    for gateway in held["gateways"]:
        assert isinstance(gateway, TaskerGateway)
        assert ring.unwrap(gateway.wrapped_secret, gateway_secret_label(gateway.id))
    assert ring.unwrap(pin_key.value, PIN_KEY_LABEL)

    again = export(app, tmp_path / "again.jsonl")
    assert normalised(without_added_fields(again)) == normalised(file_lines())


# Fields records gained after the fixture was made: an old file imports with their defaults.
ADDED_FIELDS: dict[str, dict[str, Any]] = {
    "transactions": {"lat": None, "lon": None, "risk": ""},
    "frames": {"digest": ""},
    "users": {"area_lat": None, "area_lon": None},
}


def without_added_fields(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Export lines with the fields added since the fixture taken out, once checked to hold
    their defaults."""
    out = []
    for line in lines:
        added, record = ADDED_FIELDS.get(line.get("kind", ""), {}), line.get("record", {})
        inner = record.get("transaction", record)
        for name, default in added.items():
            assert inner.pop(name) == default, (line["kind"], name)
        out.append(line)
    return out


class LegacyPhones:
    """The fixture's phones, their keys unwrapped from the imported store, and both SMS routes."""

    def __init__(self, app: Flask, clock: FakeClock) -> None:
        self.svc, self.clock = services(app), clock
        self.client: FlaskClient = app.test_client()
        secret = admin.tasker_secret(self.svc, GATEWAY)
        assert secret is not None
        self.gateway_secret = secret.decode()

    def phone(self, number: str) -> Phone:
        """The number's active device, its counter past the stored replay window."""
        (device,) = [d for d in self.svc.store.read(lambda uow: uow.devices())
                     if d.phone == number and d.active]  # fmt: skip
        key = self.svc.keyring.unwrap(device.wrapped_key, device_key_label(device.key_id))
        return Phone(number, device.key_id, key, PINS[number], device.window.highest + 1)

    def tasker(self, sender: str, body: str) -> str:
        """The reply to an SMS forwarded by the fixture's Tasker phone."""
        raw = tasker_body(sender, body)
        headers = tasker_headers(GATEWAY, self.gateway_secret, raw, int(self.clock.now()))
        r = self.client.post("/sms/tasker", data=raw, headers=headers)
        assert r.status_code == 200, r.get_data(True)
        reply: str = r.get_json()["reply"]
        return reply

    def twilio(self, sender: str, body: str) -> str:
        """The reply to an SMS delivered by Twilio."""
        form = twilio_form(sender, body)
        headers = {"X-Twilio-Signature": twilio_signature(form)}
        r = self.client.post("/sms/twilio", data=form, headers=headers)
        assert r.status_code == 200, r.get_data(True)
        return reply_text(r.data)

    def balance(self, number: str) -> int:
        """The wallet balance of a user, in paise."""

        def read(uow: Any) -> int:
            return int(uow.balance(uow.get_user_by_phone(number).account))

        return self.svc.store.read(read)


def test_the_imported_installation_works_through_the_service_layer(
    imported: tuple[Flask, str], clock: FakeClock
) -> None:
    app, _ = imported
    legacy = LegacyPhones(app, clock)
    asha, ravi, meera = legacy.phone(ASHA), legacy.phone(RAVI), legacy.phone(MEERA)
    before = {number: legacy.balance(number) for number in PINS}
    assert before == {ASHA: 76_500, RAVI: 21_100, MEERA: 5_900}

    # PINs: the imported PIN key checks the imported hashes
    wrong = legacy.twilio(ASHA, asha.balance(pin="9999", at=clock.now()))
    assert wrong == replies.wrong_pin(2)
    assert legacy.tasker(ASHA, asha.balance(at=clock.now())) == replies.balance(76_500)
    assert legacy.twilio(RAVI, ravi.balance(pin="0000", at=clock.now())) == (
        replies.wrong_pin(1)  # his one wrong PIN before the export still counts
    )

    # a cash-in and a payment between two imported users
    clock.advance(60)
    payments.credit_wallet(legacy.svc, MEERA, 10_000, "cash at the shop", actor="test")
    paid = legacy.tasker(MEERA, meera.pay(RAVI, 2_000, at=clock.now()))
    assert paid.startswith("SMSPay: Paid Rs 20.00 to +91******5678.")
    assert legacy.balance(MEERA) == before[MEERA] + 10_000 - 2_000
    assert legacy.balance(RAVI) == before[RAVI] + 2_000
    assert legacy.balance(ASHA) == before[ASHA]
    assert legacy.svc.store.read(lambda uow: uow.total_balance()) == 0

    # a frame processed before the export gets the answer it got then, and nothing happens
    frames = [f for f in file_records()["frames"] if isinstance(f, FrameRecord)]
    (first,) = [f for f in frames if (f.key_id, f.counter) == (asha.key_id, 2)]
    again = asha.seal(format_balance(PINS[ASHA], int(clock.now())), counter=2)
    assert legacy.tasker(ASHA, again) == first.reply
    assert legacy.balance(ASHA) == before[ASHA]


def test_status_sms_waiting_in_the_file_are_sent_from_the_target(
    imported: tuple[Flask, str],
) -> None:
    """The file's outbox still had messages to send; each `sms.send` job must find its message
    in the target, whose ids are new (MongoDB makes ObjectIds), and send it once."""
    from app.jobs import HANDLERS, ON_DEAD
    from app.worker import Worker

    app, _ = imported
    svc = services(app)
    waiting = [m for m in file_records()["outbox_sms"] if isinstance(m, OutboundSms)]
    assert len(waiting) == 6 and {m.status for m in waiting} == {"pending"}
    worker = Worker(svc, {"sms.send": HANDLERS["sms.send"]}, on_dead=ON_DEAD)
    ran = 0
    while worker.run_once():
        ran += 1
        assert ran <= 6, "a job ran twice or another appeared"
    assert ran == 6
    sent = svc.store.read(lambda uow: uow.outbox(100))
    assert [(m.to, m.body, m.reference) for m in sent] == [
        (m.to, m.body, m.reference) for m in waiting
    ]
    assert {m.status for m in sent} == {"sent"}
    jobs = svc.store.read(lambda uow: uow.jobs(limit=100))
    assert sorted(j.key for j in jobs) == sorted(f"sms.send:{m.id}" for m in sent)
    assert {j.status.value for j in jobs} == {"done"}
