"""The staff JSON API under /api/v1/ (support and admin roles)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")
