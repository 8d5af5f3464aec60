"""The staff web console: server-rendered pages for support staff and admins."""

from __future__ import annotations

from app.web.console.views import bp

__all__ = ["bp"]
