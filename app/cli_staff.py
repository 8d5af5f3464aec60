"""Operator commands for staff accounts."""

from __future__ import annotations

import click


def register(app_cli: click.Group) -> None:
    """Attach the staff commands to the Flask CLI."""
