"""The staff JSON API under /api/v1/ for support and admin roles (see /api/v1/openapi.json)."""

from __future__ import annotations

from app.web.api.views import bp

__all__ = ["bp"]
