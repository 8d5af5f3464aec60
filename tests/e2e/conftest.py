"""A real gunicorn (2 workers) on a free loopback port, over a real SQLite file.

Operator steps go through the real CLI (`flask --app wsgi ...`) in subprocesses, as a newcomer
would type them. The server is stopped at the end of the module.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from pymongo import MongoClient

from tests.mongo_server import database_uri, drop_database
from tests.support import (
    TWILIO_TOKEN,
    Phone,
    tasker_body,
    tasker_headers,
    twilio_form,
    twilio_signature,
)

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running service (gunicorn and one worker) and the environment its CLI needs."""

    url: str
    env: dict[str, str]
    data_dir: Path
    gunicorn_pid: int = 0

    @property
    def access_log(self) -> Path:
        """gunicorn's access log, as the production config writes it (numbers masked)."""
        return self.data_dir.parent / "access.log"

    def cli(self, *args: str) -> str:
        """Run `flask --app wsgi ARGS` against this installation; returns stdout."""
        result = subprocess.run(
            [str(BIN / "flask"), "--app", "wsgi", *args],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout

    def total_balance(self) -> int:
        """Sum of every ledger account, read straight from the database."""
        uri = self.env.get("SMSPAY_MONGODB_URI")
        if uri:
            with MongoClient(uri) as client:
                rows = list(client.get_default_database().accounts.aggregate(
                    [{"$group": {"_id": None, "t": {"$sum": "$balance"}}}]))  # fmt: skip
                return int(rows[0]["t"]) if rows else 0
        with closing(sqlite3.connect(self.data_dir / "smspay.sqlite3", timeout=30)) as conn:
            return int(conn.execute("SELECT COALESCE(SUM(balance), 0) FROM accounts").fetchone()[0])


@pytest.fixture(scope="module", params=["sqlite", "mongo"])
def server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Server]:
    mongodb_uri = ""
    if request.param == "mongo":
        mongodb_uri = database_uri(request.getfixturevalue("mongo_base_uri"))
    data_dir = tmp_path_factory.mktemp("e2e") / "var"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSPAY_")}
    env.update(
        SMSPAY_DATA_DIR=str(data_dir),
        SMSPAY_TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        # as `make run` starts it: no public URL, the sandbox calls back on $HOST:$PORT
        HOST="127.0.0.1",
        PORT=str(port),
        SMSPAY_LOG_LEVEL="WARNING",
        SMSPAY_MONGODB_URI=mongodb_uri,
        SMSPAY_SANDBOX_SETTLE_SECONDS="1",
        # where gunicorn's workers keep the counters /metrics adds up (made by gunicorn.conf.py)
        PROMETHEUS_MULTIPROC_DIR=str(data_dir.parent / "metrics"),
    )
    srv = Server(url, env, data_dir)
    srv.cli("db", "init")
    log_path = data_dir.parent / "gunicorn.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", "--workers", "2",
         "--bind", f"127.0.0.1:{port}", "--access-logfile", str(srv.access_log), "wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    srv.gunicorn_pid = proc.pid
    worker = subprocess.Popen(
        [str(BIN / "flask"), "--app", "wsgi", "worker"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not start: " + log_path.read_text()[-2000:])
            time.sleep(0.1)
        yield srv
    finally:
        for process in (worker, proc):
            process.terminate()  # the worker finishes its job and stops on SIGTERM
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()
        if mongodb_uri:
            drop_database(mongodb_uri)


def provision(server: Server, tmp: Path, phone: str, pin: str, rupees: int) -> Phone:
    server.cli("users", "add", "--phone", phone, "--name", "E2E", "--pin", pin)
    if rupees:
        server.cli("wallet", "credit", "--phone", phone, "--amount", str(rupees),
                   "--reason", "e2e cash-in")  # fmt: skip
    out = tmp / f"{phone}.json"
    server.cli("devices", "provision", "--phone", phone, "--out", str(out))
    bundle = json.loads(out.read_text())
    return Phone(phone, bundle["key_id"], base64.b64decode(bundle["key"]), pin)


@pytest.fixture(scope="module")
def gateway(server: Server) -> tuple[str, str]:
    out = server.cli("gateways", "add-tasker", "--id", "e2e-phone")
    return "e2e-phone", out.strip().splitlines()[-1]


def post(
    server: Server, gateway: tuple[str, str], route: str, sender: str, body: str,
    sid: str | None = None,
) -> str:  # fmt: skip
    """Deliver one SMS (by Twilio: under `sid`, else a new MessageSid); returns the reply."""
    if route == "twilio":
        form = twilio_form(sender, body, sid)
        sig = twilio_signature(form, server.url + "/sms/twilio")
        r = requests.post(
            server.url + "/sms/twilio", data=form, headers={"X-Twilio-Signature": sig}, timeout=30
        )
        assert r.status_code == 200, r.text
        import xml.etree.ElementTree as ET

        return ET.fromstring(r.content).findtext("Message") or ""
    raw = tasker_body(sender, body)
    headers = tasker_headers(gateway[0], gateway[1], raw)
    r = requests.post(server.url + "/sms/tasker", data=raw, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return str(r.json()["reply"])
