"""gunicorn's access log with phone numbers masked (staff look users up by number in paths and
query strings; docs/security.md promises masked numbers in every log)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gunicorn.glogging import Logger

from sms.numbers import mask_numbers_in


class MaskingLogger(Logger):  # type: ignore[misc]  # gunicorn ships no type hints
    """gunicorn's logger whose access-log fields never carry a full phone number."""

    def atoms(
        self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta
    ) -> dict[str, Any]:
        """Every text field of the access line, numbers masked."""
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        for name, value in atoms.items():
            if isinstance(value, str):
                atoms[name] = mask_numbers_in(value)
        return atoms
