"""Fixtures for the end-to-end tests that reach a payment gateway."""

from __future__ import annotations

import pytest

from tests.fakes import FakeGateway
from tests.support import FakeClock


@pytest.fixture
def fake(clock: FakeClock) -> FakeGateway:
    """A recording fake gateway on the test's clock (inject with `create_app(gateway=fake)`)."""
    return FakeGateway(clock.now)
