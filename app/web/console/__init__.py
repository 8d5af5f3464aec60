"""The staff web console: server-rendered pages for support staff and admins."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("console", __name__, url_prefix="/console")
