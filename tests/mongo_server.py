"""A MongoDB-wire-compatible server for the tests: SecantusDB, or a real MongoDB.

SecantusDB (test-only, GPL) is built on WiredTiger and supports transactions, unique and TTL
indexes and several client processes. It is not mongod: no failover, no sharding, and some index
use is slow, so the tests keep their data small. Set SMSPAY_TEST_MONGODB_URI to run the same
suite against a real MongoDB replica set instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError
from pymongo.uri_parser import parse_uri

ENV_URI = "SMSPAY_TEST_MONGODB_URI"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def mongo_server() -> Iterator[str]:
    """Yield a base URI (no database): the configured server, or a fresh SecantusDB."""
    configured = os.environ.get(ENV_URI)
    if configured:
        yield configured
        return
    exe = Path(sys.executable).parent / "secantusd-py"
    port = _free_port()
    workdir = Path(tempfile.mkdtemp(prefix="secantus-"))
    log = (workdir / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(exe), "--host", "127.0.0.1", "--port", str(port), "--storage-path", ":memory:",
         "--log-level", "WARNING", "--cache-size", "256M"],
        cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with MongoClient(uri, serverSelectionTimeoutMS=500) as client:
                    client.admin.command("ping")
                break
            except PyMongoError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "SecantusDB did not start: " + (workdir / "server.log").read_text()[-2000:]
                    ) from None
                time.sleep(0.2)
        yield uri
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def database_uri(base: str, name: str | None = None) -> str:
    """The base URI pointed at a fresh database name."""
    name = name or "smspay_test_" + uuid.uuid4().hex[:12]
    head, sep, query = base.partition("?")
    scheme, _, rest = head.partition("://")
    hosts = rest.split("/", 1)[0]
    return f"{scheme}://{hosts}/{name}{sep}{query}"


def drop_database(uri: str) -> None:
    """Remove a test database."""
    name = parse_uri(uri)["database"]
    with MongoClient(uri, serverSelectionTimeoutMS=2000) as client:
        client.drop_database(name)
