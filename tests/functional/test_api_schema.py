"""Schemathesis against the served OpenAPI document, on both backends: for every operation,
generated requests that fit the document and requests that do not, sent as an admin, and every
answer checked: no server error, status codes, content types and bodies as documented, invalid
input refused, and no answer without the token. Examples are bounded to keep it quick.

(Schemathesis' `from_fixture` does not run under pytest 9 yet, so each operation's strategy is
driven with Hypothesis directly.)
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from app.bootstrap import Services
from app.services import review, staff
from app.web.api.views import api
from storage.models import StaffRole
from tests.conftest import World
from tests.functional.test_inbound import ASHA, RAVI

MAX_EXAMPLES = 20
OPERATIONS = [(op.method, "/api/v1" + op.rule.replace("<", "{").replace(">", "}"))
              for op in api.operations]  # fmt: skip


@pytest.fixture
def admin_token(svc: Services, world: World) -> str:
    """An admin's token, and some data for it to find: two users and a held payment."""
    world.user(ASHA, "1234", rupees=500, name="Asha")
    world.user(RAVI, "4321", name="Ravi")
    review.hold_payment(svc, ASHA, RAVI, 1_000, "risk rule")
    return staff.add_staff(svc, "fuzzer", StaffRole.ADMIN, "test")[1]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("method,path", OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_api_honours_its_openapi_document(
    app: Flask, admin_token: str, method: str, path: str, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operation = schema[path][method]
    headers = {"Authorization": f"Bearer {admin_token}"}

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        case.call_and_validate(headers=headers)

    check()
