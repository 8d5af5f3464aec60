"""Every operator command the deployment guide names exists, with the options it is given there."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from app import create_app

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("docs/deploy.md", "docs/reliability.md")
COMMAND = re.compile(r"flask --app wsgi ([^`\n]*)")


def named_commands(doc: str) -> list[str]:
    """What follows `flask --app wsgi` up to the end of its code span or line."""
    return [m.strip() for m in COMMAND.findall((ROOT / doc).read_text())]


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> click.Group:
    app = create_app({"data_dir": str(tmp_path_factory.mktemp("data"))})
    return app.cli


@pytest.mark.parametrize("doc", DOCS)
def test_each_flask_command_in_the_doc_exists_with_its_options(cli: click.Group, doc: str) -> None:
    commands = named_commands(doc)
    if doc == "docs/deploy.md":
        assert {"db init", "worker", "keys rotate-master"} <= set(commands)
    ctx = click.Context(cli)
    for line in commands:
        words = [w.rstrip(".,;:)") for w in line.split()]
        command: click.Command = cli
        rest = list(words)
        while isinstance(command, click.Group) and rest:
            sub = command.get_command(ctx, rest[0])
            assert sub is not None, f"{doc}: `flask --app wsgi {line}`: no command {rest[0]!r}"
            command, rest = sub, rest[1:]
        assert not isinstance(command, click.Group), f"{doc}: `{line}` names a group only"
        options = {opt for p in command.params for opt in p.opts}
        for word in rest:
            if word.startswith("--"):
                assert word in options, f"{doc}: `flask --app wsgi {line}`: no option {word}"
