"""gunicorn refuses to start on a MongoDB database that `db init` never prepared."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.e2e.conftest import BIN, ROOT, free_port
from tests.mongo_server import database_uri

pytestmark = pytest.mark.e2e


def test_gunicorn_exits_with_a_clear_error_when_indexes_are_missing(
    mongo_base_uri: str, tmp_path: object
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSPAY_")}
    env.update(SMSPAY_MONGODB_URI=database_uri(mongo_base_uri), SMSPAY_DATA_DIR=str(tmp_path))
    result = subprocess.run(
        [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", "--workers", "1",
         "--bind", f"127.0.0.1:{free_port()}", "wsgi:app"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "run `flask --app wsgi db init`" in result.stderr
