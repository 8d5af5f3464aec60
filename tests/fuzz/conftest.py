"""Fuzz targets: every parser on a path from the outside, fed what hypothesis makes.

`make test` runs each target briefly (profile "ci"); `make fuzz` runs the same targets far longer
(HYPOTHESIS_PROFILE=fuzz). A target asserts only that the parser answers with a value or its own
documented error, never anything else (a 500 on a route).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=150, deadline=None, derandomize=True)
settings.register_profile(
    "fuzz",
    max_examples=20_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
