"""Shared fixtures: the app on a real SQLite file in tmp_path, a fake clock, users and phones."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from app import create_app
from app.bootstrap import Services
from app.services import admin, payments
from storage.memory import MemoryStore
from tests.mongo_server import database_uri, drop_database, mongo_server
from tests.support import PUBLIC_URL, TWILIO_TOKEN, FakeClock, Phone


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read the developer's SMSPAY_* settings."""
    for name in list(os.environ):
        if name.startswith("SMSPAY_") and not name.startswith("SMSPAY_TEST_"):
            monkeypatch.delenv(name)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def mongo_base_uri() -> Iterator[str]:
    """One MongoDB-compatible server for the whole run (see tests/mongo_server.py)."""
    with mongo_server() as uri:
        yield uri


MEMORY = "memory"
EVERY_STORE = pytest.mark.parametrize("backend", ["sqlite", "mongo", MEMORY], indirect=True)
"""For tests of the storage contract alone: they run on the in-memory store too."""


@pytest.fixture(params=["sqlite", "mongo"])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test that uses the store runs on both backends; yields a MongoDB URI or ''.

    Tests marked `EVERY_STORE` run on the in-memory store too; for it this yields "memory".
    """
    if request.param == "sqlite":
        yield ""
        return
    if request.param == MEMORY:
        yield MEMORY
        return
    uri = database_uri(request.getfixturevalue("mongo_base_uri"))
    yield uri
    drop_database(uri)


@pytest.fixture
def settings(tmp_path: Path, backend: str) -> dict[str, Any]:
    return {
        "data_dir": str(tmp_path / "var"),
        "mongodb_uri": "" if backend == MEMORY else backend,
        "twilio_auth_token": TWILIO_TOKEN,
        "public_base_url": PUBLIC_URL,
        "sandbox_webhook_url": "",  # the sandbox never calls out of a test (status checks work)
    }


@pytest.fixture
def app(settings: dict[str, Any], clock: FakeClock, backend: str) -> Iterator[Flask]:
    store = MemoryStore() if backend == MEMORY else None
    application = create_app(settings, clock=clock, store=store)
    application.config["TESTING"] = True
    application.extensions["smspay"].store.init()
    yield application
    application.extensions["smspay"].store.close()


@pytest.fixture
def svc(app: Flask) -> Services:
    services: Services = app.extensions["smspay"]
    return services


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


class World:
    """Users, phones and a Tasker gateway made through the service layer."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.gateway_id = "shop-1"
        self.gateway_secret = admin.add_tasker_gateway(svc, self.gateway_id)

    def user(self, phone: str, pin: str = "1234", rupees: int = 0, name: str = "Test") -> Phone:
        """Register a user, credit the wallet, provision a device; returns the phone."""
        admin.register_user(self.svc, phone, name, pin)
        if rupees:
            payments.credit_wallet(self.svc, phone, rupees * 100, "test cash-in", actor="test")
        bundle = admin.provision_device(self.svc, phone)
        return Phone(phone, bundle.key_id, bundle.key, pin)

    def balance(self, phone: str) -> int:
        def read(uow: Any) -> int:
            user = uow.get_user_by_phone(phone)
            return int(uow.balance(user.account))

        return self.svc.store.read(read)

    def total(self) -> int:
        return self.svc.store.read(lambda uow: uow.total_balance())


@pytest.fixture
def world(svc: Services) -> World:
    return World(svc)


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()
