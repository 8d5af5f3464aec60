"""The operator CLI through Flask's CLI runner, on a real SQLite file."""

from __future__ import annotations

import json
import os
from pathlib import Path

from flask.testing import FlaskCliRunner

from app.bootstrap import Services
from tests.conftest import World

ASHA, RAVI = "+919876543210", "+919812345678"


def ok(runner: FlaskCliRunner, *args: str) -> str:
    result = runner.invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output


def fails(runner: FlaskCliRunner, *args: str) -> str:
    result = runner.invoke(args=list(args))
    assert result.exit_code != 0, result.output
    return result.output


def test_db_init_is_idempotent_and_makes_a_private_dev_master_key(
    runner: FlaskCliRunner, svc: Services
) -> None:
    ok(runner, "db", "init")
    ok(runner, "db", "init")
    key_file = svc.settings.data_path / "master.key"
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_users_add_and_its_errors(runner: FlaskCliRunner) -> None:
    assert "registered Asha" in ok(runner, "users", "add", "--phone", ASHA, "--name", "Asha",
                                   "--pin", "1234")  # fmt: skip
    assert "registered already" in fails(
        runner, "users", "add", "--phone", ASHA, "--name", "Again", "--pin", "1234"
    )
    assert "E.164" in fails(
        runner, "users", "add", "--phone", "98765", "--name", "X", "--pin", "1234"
    )
    assert "4 to 6 digits" in fails(
        runner, "users", "add", "--phone", RAVI, "--name", "Ravi", "--pin", "12"
    )


def test_wallet_credit_and_its_errors(runner: FlaskCliRunner, world: World) -> None:
    ok(runner, "users", "add", "--phone", ASHA, "--name", "Asha", "--pin", "1234")
    out = ok(runner, "wallet", "credit", "--phone", ASHA, "--amount", "250.50", "--reason", "cash")
    assert "credited Rs 250.50" in out
    assert world.balance(ASHA) == 25_050
    assert world.total() == 0  # the cash-in account carries the other side
    for bad in ("0", "-5", "abc", "1.234"):
        fails(runner, "wallet", "credit", "--phone", ASHA, "--amount", bad, "--reason", "cash")
    assert "no user" in fails(
        runner, "wallet", "credit", "--phone", RAVI, "--amount", "1", "--reason", "cash"
    )
    assert "needs a reason" in fails(
        runner, "wallet", "credit", "--phone", ASHA, "--amount", "1", "--reason", " "
    )
    assert world.balance(ASHA) == 25_050
    assert ok(runner, "wallet", "balance", "--phone", ASHA).strip() == "Rs 250.50"


def test_devices_provision_writes_a_private_bundle(runner: FlaskCliRunner, tmp_path: Path) -> None:
    ok(runner, "users", "add", "--phone", ASHA, "--name", "Asha", "--pin", "1234")
    out = tmp_path / "asha.json"
    ok(runner, "devices", "provision", "--phone", ASHA, "--out", str(out))
    bundle = json.loads(out.read_text())
    assert bundle["phone"] == ASHA and bundle["next_counter"] == 1
    assert 0 < bundle["key_id"] < 2**32 and len(bundle["key"]) == 44
    assert os.stat(out).st_mode & 0o777 == 0o600
    assert "no user" in fails(runner, "devices", "provision", "--phone", RAVI, "--out", str(out))


def test_gateway_secret_is_alone_on_the_last_line(runner: FlaskCliRunner) -> None:
    out = ok(runner, "gateways", "add-tasker", "--id", "shop-1")
    last = out.strip().splitlines()[-1]
    assert len(last) == 64 and int(last, 16) >= 0
    assert "exists already" in fails(runner, "gateways", "add-tasker", "--id", "shop-1")
    fails(runner, "gateways", "add-tasker", "--id", "bad id with spaces")


def test_transactions_list_and_show(runner: FlaskCliRunner, world: World) -> None:
    world.user(ASHA, rupees=100)
    listing = ok(runner, "transactions", "list", "--phone", ASHA)
    ref = listing.split()[0]
    shown = ok(runner, "transactions", "show", ref.lower())
    assert "cash_in" in shown and "PENDING" in shown and "SUCCESS" in shown
    assert "user:" in shown and "+10000 paise" in shown and "-10000 paise" in shown
    assert "no transaction" in fails(runner, "transactions", "show", "ZZZZZZZZZZ")
    assert ok(runner, "transactions", "list", "--state", "FAILED").strip() == "no transactions"


def test_master_key_rotation_keeps_devices_gateways_and_pins_working(
    runner: FlaskCliRunner, world: World, svc: Services
) -> None:
    from app.services.admin import tasker_secret
    from crypto.keys import device_key_label

    phone = world.user(ASHA, "1234")
    old_secret = tasker_secret(svc, world.gateway_id)
    key_file = svc.settings.data_path / "master.key"
    before = key_file.read_text()
    assert "re-wrapped 3 secrets" in ok(runner, "keys", "rotate-master")
    assert key_file.read_text() != before
    assert not (svc.settings.data_path / "master.key.next").exists()

    from app import create_app

    same_store = {"data_dir": svc.settings.data_dir, "mongodb_uri": svc.settings.mongodb_uri}
    fresh = create_app(same_store).extensions["smspay"]
    assert tasker_secret(fresh, world.gateway_id) == old_secret
    device = fresh.store.read(lambda uow: uow.get_device(phone.key_id))
    assert fresh.keyring.unwrap(device.wrapped_key, device_key_label(phone.key_id)) == phone.key
    user = fresh.store.read(lambda uow: uow.get_user_by_phone(ASHA))
    assert fresh.store.atomic(
        lambda uow: fresh.pins(uow).verify("1234", user.pin_salt, user.pin_hash)
    )
    fresh.store.close()


def test_settings_lists_every_variable(runner: FlaskCliRunner) -> None:
    out = ok(runner, "settings")
    assert "SMSPAY_DATA_DIR" in out and "SMSPAY_TWILIO_AUTH_TOKEN" in out
