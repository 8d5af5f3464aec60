"""The Dockerfile, compose.yaml and deploy/ run what the Procfile runs, with settings that exist.

No container engine runs in the tests: these files are read, not started (docs/deploy.md).
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import documented_settings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {name for name, _, _ in documented_settings()}
APP_SERVICES = ("db-init", "web", "worker")


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def instruction(name: str) -> list[str]:
    return [args for ins, args in dockerfile() if ins == name]


def example_env() -> dict[str, str]:
    lines = (ROOT / "deploy" / "example.env").read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line and not line.startswith("#")]
    return {k: v for k, v in pairs}


def test_the_image_runs_the_procfiles_web_line_by_default() -> None:
    (cmd,) = instruction("CMD")
    assert json.loads(cmd) == ["sh", "-c", "exec " + procfile()["web"]]


def test_the_worker_service_runs_the_procfiles_worker_line() -> None:
    services = compose()["services"]
    assert services["worker"]["command"] == shlex.split(procfile()["worker"])
    assert "command" not in services["web"], "web runs the image's command: the Procfile's"


def test_db_init_runs_once_before_web_and_worker_after_the_replica_set_is_made() -> None:
    services = compose()["services"]
    assert services["db-init"]["command"] == ["flask", "--app", "wsgi", "db", "init"]
    assert services["db-init"]["restart"] == "no"
    for name in ("web", "worker"):
        assert services[name]["depends_on"]["db-init"] == {
            "condition": "service_completed_successfully"
        }
    assert "mongo-init" in services["db-init"]["depends_on"]
    init = services["mongo-init"]
    script = init["command"][-1]
    assert any(v.endswith(":" + script + ":ro") for v in init["volumes"])
    assert 'rs.initiate({ _id: "rs0"' in (ROOT / "deploy" / "mongo-init.js").read_text()


def test_the_app_talks_to_the_replica_set_and_trusts_one_proxy() -> None:
    services = compose()["services"]
    assert services["mongo"]["command"][:3] == ["mongod", "--replSet", "rs0"]
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env["SMSPAY_MONGODB_URI"].endswith("?replicaSet=rs0"), name
        assert env["SMSPAY_TRUSTED_PROXIES"] == "1", name
        assert services[name]["env_file"] == ".env", name
    assert example_env()["SMSPAY_PUBLIC_BASE_URL"].startswith("https://")
    assert "mongo-data:/data/db" in services["mongo"]["volumes"]


def test_every_setting_named_in_the_deploy_files_exists() -> None:
    named = set(example_env())
    for service in compose()["services"].values():
        named |= {k for k in service.get("environment", {}) if k.startswith("SMSPAY_")}
    for path in ("Dockerfile", "compose.yaml", "deploy/example.env"):
        named |= set(re.findall(r"\bSMSPAY_[A-Z0-9_]+", (ROOT / path).read_text()))
    assert named, "no settings found?"
    assert named <= SETTINGS, sorted(named - SETTINGS)


def test_the_example_secrets_are_obviously_fake() -> None:
    env = example_env()
    assert env["SMSPAY_MASTER_KEY"].startswith("REPLACE-ME")
    for name in ("SMSPAY_SECRET_KEY", "SMSPAY_TWILIO_AUTH_TOKEN"):
        assert "example" in env[name], name
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_the_proxy_forwards_to_web_with_the_headers_the_app_trusts() -> None:
    services = compose()["services"]
    proxy = services["proxy"]
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    assert f"server web:{services['web']['environment']['PORT']};" in conf
    for header in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Request-Id"):
        assert f"proxy_set_header {header} " in conf, header
    assert "ports" not in services["web"] and "ports" not in services["mongo"]


def test_the_image_is_slim_runs_as_nobody_and_checks_healthz(tmp_path: Path) -> None:
    (base,) = instruction("FROM")
    assert base.startswith("python:3.11-slim")
    (user,) = instruction("USER")
    assert user not in ("root", "0")
    (check,) = instruction("HEALTHCHECK")
    assert "/healthz" in check
    from app import create_app

    rules = {r.rule for r in create_app({"data_dir": str(tmp_path)}).url_map.iter_rules()}
    assert "/healthz" in rules


def test_the_image_copies_every_package_the_service_imports_and_nothing_else() -> None:
    copied = set()
    for args in instruction("COPY"):
        copied |= set(args.split()[:-1])
    copied.discard("requirements.lock")
    for path in copied:
        assert (ROOT / path).exists(), path
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    tools = {"scripts", "soak", "bench"}  # phone emulator, soak and benchmark: never served
    packages = set(config["tool"]["ruff"]["lint"]["isort"]["known-first-party"]) - tools
    assert copied == packages | {"wsgi.py", "gunicorn.conf.py"}
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") :][1:], "the build context allows only what is copied"
    assert {f"!{p}" for p in copied} <= set(ignore)


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_services_share_the_data_volume_and_the_image(service: str) -> None:
    spec = compose()["services"][service]
    assert spec["build"] == "."
    assert "smspay-data:/data" in spec["volumes"]
