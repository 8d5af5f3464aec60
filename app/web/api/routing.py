"""How an API view is declared: its role, query or body schema and response schema, once.

`endpoint(...)` authenticates the bearer token, checks the role, loads the query or JSON body
with its schema, calls the view, and dumps the result with the response schema. The same
declarations generate the OpenAPI document, so what is served and what is documented agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Response, g, jsonify, request
from marshmallow import Schema, ValidationError

from app.services import staff as staff_service
from app.web import services
from app.web.api.schemas import ErrorSchema
from storage.models import StaffMember, StaffRole

View = Callable[..., Any]
ERRORS = {
    401: "No valid API token (send `Authorization: Bearer <token>`)",
    403: "The token's role may not do this",
    404: "No such record",
    409: "The record is not in a state that allows this",
    422: "Invalid input; `fields` names each bad field",
}


@dataclass(frozen=True)
class Operation:
    """One documented API operation."""

    rule: str
    method: str
    summary: str
    role: StaffRole
    response: type[Schema]
    query: type[Schema] | None = None
    body: type[Schema] | None = None
    path_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: tuple[int, ...] = (401, 403, 422)
    description: str = ""


def error(status: int, message: str, fields: dict[str, list[str]] | None = None) -> Response:
    """A JSON error response."""
    body: dict[str, Any] = {"error": message}
    if fields:
        body["fields"] = fields
    response = jsonify(body)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="smspay-staff"'
    return response


def field_errors(exc: ValidationError) -> dict[str, list[str]]:
    """A marshmallow error as {field: [messages]}."""
    messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    return {
        str(name): [str(m) for m in (msgs if isinstance(msgs, list) else [msgs])]
        for name, msgs in messages.items()
    }


def current_staff() -> StaffMember:
    """The staff member of this API request (set by `endpoint`)."""
    member: StaffMember = g.api_staff
    return member


def _authenticate(role: StaffRole) -> Response | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    member = (
        staff_service.by_token(services(), token.strip()) if scheme.lower() == "bearer" else None
    )
    if member is None:
        return error(401, "a valid API token is required")
    if role is StaffRole.ADMIN and member.role is not StaffRole.ADMIN:
        return error(403, f"{member.name} is {member.role.value}; this needs an admin")
    g.api_staff = member
    return None


def _load(op: Operation) -> dict[str, Any]:
    if op.body is not None:
        try:
            data = request.get_json(silent=True)
        except RecursionError:  # nested deeper than the parser goes
            data = None
        if not isinstance(data, dict):
            raise ValidationError({"_schema": ["the body must be a JSON object"]})
        loaded: dict[str, Any] = op.body().load(data)
        return loaded
    if op.query is not None:
        query: dict[str, Any] = op.query().load(request.args.to_dict(flat=True))
        return query
    return {}


class Api:
    """The blueprint's operations, registered as they are declared."""

    def __init__(self, bp: Blueprint) -> None:
        self.bp = bp
        self.operations: list[Operation] = []

    def endpoint(self, op: Operation) -> Callable[[View], View]:
        """Register a view for `op`: it gets the loaded input and the path values."""

        def wrap(view: View) -> View:
            @wraps(view)
            def handle(**path: Any) -> Response:
                refused = _authenticate(op.role)
                if refused is not None:
                    return refused
                try:
                    data = _load(op)
                except ValidationError as exc:
                    return error(422, "invalid input", field_errors(exc))
                result = view(data, **path) if (op.query or op.body) else view(**path)
                return jsonify(op.response().dump(result))

            self.bp.add_url_rule(op.rule, view.__name__, handle, methods=[op.method])
            self.operations.append(op)
            return handle

        return wrap

    def spec(self, prefix: str) -> dict[str, Any]:
        """The OpenAPI 3 document of every registered operation."""
        spec = APISpec(
            title="SMS Pay Gateway staff API",
            version="1.0.0",
            openapi_version="3.0.3",
            plugins=[MarshmallowPlugin()],
            info={"description": "Support and admin API; see docs/support.md."},
        )
        spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
        spec.components.schema("Error", schema=ErrorSchema)
        paths: dict[str, dict[str, Any]] = {}
        for op in self.operations:
            path = prefix + re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", op.rule)
            paths.setdefault(path, {})[op.method.lower()] = self._operation(op)
        for path, operations in paths.items():
            spec.path(path=path, operations=operations)
        return spec.to_dict()

    @staticmethod
    def _operation(op: Operation) -> dict[str, Any]:
        params: list[dict[str, Any]] = [
            {"in": "path", "name": name, "required": True, "schema": schema}
            for name, schema in op.path_params.items()
        ]
        if op.query is not None:
            params.append({"in": "query", "schema": op.query})
        responses: dict[str, Any] = {
            "200": {"description": "OK", "content": {"application/json": {"schema": op.response}}}
        }
        for status in op.errors:
            responses[str(status)] = {
                "description": ERRORS[status],
                "content": {"application/json": {"schema": "Error"}},
            }
        operation: dict[str, Any] = {
            "summary": op.summary,
            "operationId": op.rule.strip("/").replace("/", "_").replace("<", "").replace(">", "")
            + "_"
            + op.method.lower(),
            "security": [{"bearer": []}],
            "parameters": params,
            "responses": responses,
            "x-role": op.role.value,
        }
        if op.description:
            operation["description"] = op.description
        if op.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": op.body}},
            }
        return operation
