"""A short soak (soak/): gunicorn and a worker on a loopback port, 15 s of PAY, BAL and STS through
both routes with 30% of SMS delivered twice, a sandbox that fails a share of its calls (some after
paying), the worker SIGKILLed once; then every invariant of `make soak` must hold.

Here the sandbox settles payouts at once, so no payout waits for the first status check (90 s
after it, by NPCI pacing) when the kill loses a webhook; `make soak` runs the webhooks and the
status checks too, for minutes. No timing is asserted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from soak.run import SoakConfig, run
from soak.service import Faults
from tests.mongo_server import database_uri, drop_database

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("store", ["sqlite", "mongo"])
def test_a_short_soak_keeps_every_invariant(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    uri = database_uri(request.getfixturevalue("mongo_base_uri")) if store == "mongo" else ""
    config = SoakConfig(
        data_dir=tmp_path / "var",
        seconds=15,
        max_sms=400,
        users=8,
        rupees_each=2000,
        kills=1,
        drain_seconds=120,
        seed=7,
        mongodb_uri=uri,
        faults=Faults(fail_percent=15, lost_percent=50, seed=7, settle_seconds=0),
    )
    try:
        report = run(config)
    finally:
        if uri:
            drop_database(uri)
    print(report.text())
    assert report.passed, report.text()
    assert report.kills_at and report.traffic["5xx"] == 0
    assert report.traffic["deliveries"] > report.traffic["sms"]  # duplicates were sent
