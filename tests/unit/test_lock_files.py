"""The hash-pinned lock files say what requirements*.txt say (`make lock` was run after an edit),
and every install of the project goes through them with --require-hashes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from scripts.lock import LOCKS, canonical, pins

ROOT = Path(__file__).resolve().parents[2]
ENTRY = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+) \\\n    --hash=sha256:([0-9a-f]{64})$", re.M)


def locked(lock: str) -> dict[str, str]:
    """name -> version of the entries written in one lock file (not the ones it includes)."""
    text = (ROOT / lock).read_text()
    entries = {canonical(m[1]): m[2] for m in ENTRY.finditer(text)}
    requirement_lines = [
        line for line in text.splitlines() if line and not line.startswith(("#", " ", "-r "))
    ]
    assert len(requirement_lines) == len(entries), f"{lock}: an entry without its sha256 hash"
    return entries


@pytest.mark.parametrize(("source", "lock", "base"), LOCKS)
def test_each_lock_pins_what_its_source_pins_with_one_hash_each(
    source: str, lock: str, base: str | None
) -> None:
    expected = pins(ROOT / source)
    got = locked(lock)
    if base is not None:
        assert f"-r {base}\n" in (ROOT / lock).read_text()
        got = {**locked(base), **got}
    assert got == expected, f"{lock} is stale: run `make lock` after editing {source}"


def test_the_service_and_its_tests_install_only_from_the_locks() -> None:
    makefile = (ROOT / "Makefile").read_text()
    installs = [line.strip() for line in makefile.splitlines() if "pip install" in line]
    assert installs, "the Makefile installs nothing?"
    for line in installs:
        assert "--require-hashes -r requirements" in line and ".lock" in line, line
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install --require-hashes -r /tmp/requirements.lock" in dockerfile
    assert "COPY requirements.lock " in dockerfile


def test_make_run_installs_the_service_alone_and_make_test_adds_the_tools(tmp_path: Path) -> None:
    """`make run` on a fresh machine installs the runtime lock only (not the 400 MB of test
    tools); `make test` adds the dev lock. Read from make's own dry run."""

    def dry_run(target: str) -> str:
        result = subprocess.run(
            ["make", "-n", target, f"VENV={tmp_path / 'venv'}"],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return result.stdout

    run = dry_run("run")
    assert "-r requirements.lock" in run and "requirements-dev.lock" not in run
    assert "-r requirements-dev.lock" in dry_run("test")
