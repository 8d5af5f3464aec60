"""The staff API's views: each loads its input (done by `Api.endpoint`), calls one service
function and returns what the response schema dumps. Errors map to statuses in the handlers
at the end of this module."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from marshmallow import ValidationError

from app.services import kpis, ledger, review, support
from app.services.errors import ServiceError, UnknownUser
from app.services.staff import Forbidden
from app.web import services
from app.web.api import schemas as s
from app.web.api.routing import Api, Operation, current_staff, error, field_errors
from storage.errors import InsufficientFunds
from storage.models import StaffRole, Transaction, User

bp = Blueprint("api", __name__, url_prefix="/api/v1")
api = Api(bp)
SUPPORT, ADMIN = StaffRole.SUPPORT, StaffRole.ADMIN
REF = {"reference": {"type": "string", "pattern": s.REFERENCE_PATTERN}}
PHONE = {"phone": {"type": "string", "pattern": s.PHONE_PATTERN}}
READ_ONE = (401, 404)
ACT = (401, 403, 404, 409, 422)


def _phone(phone: str) -> str:
    """A phone number from the path, or a 422 that names it."""
    problems = s.TransactionQuery().validate({"phone": phone})
    if problems:
        raise ValidationError({"phone": ["a phone number in E.164 form, e.g. +919876543210"]})
    return phone


@api.endpoint(
    Operation("/me", "GET", "Who the token belongs to", SUPPORT, s.MeSchema, errors=(401,))
)
def me() -> Any:
    """The staff member of the token."""
    return current_staff()


@api.endpoint(
    Operation(
        "/transactions", "GET", "Search transactions (newest first, phones masked)", SUPPORT,
        s.TransactionPageSchema, query=s.TransactionQuery, errors=(401, 422),
    )
)  # fmt: skip
def search_transactions(q: dict[str, Any]) -> Any:
    """Transactions by reference, phone, state and local days."""
    return support.search(services(), support.TxQuery(**q))


@api.endpoint(
    Operation(
        "/transactions/<reference>", "GET", "One transaction with its whole timeline", SUPPORT,
        s.TransactionDetailSchema, path_params=REF, errors=READ_ONE,
    )
)  # fmt: skip
def get_transaction(reference: str) -> Any:
    """States, SMS in and out, ledger postings, gateway calls and webhooks, staff actions."""
    return support.transaction_view(services(), reference)


@api.endpoint(
    Operation(
        "/transactions/<reference>/reverse", "POST", "Reverse a successful wallet payment", ADMIN,
        s.TransactionSchema, body=s.ReasonBody, path_params=REF, errors=ACT,
    )
)  # fmt: skip
def reverse(body: dict[str, Any], reference: str) -> Transaction:
    """Payee back to payer, if the payee's balance covers it."""
    return review.reverse(services(), current_staff(), reference, body["reason"])


@api.endpoint(
    Operation(
        "/users/<phone>", "GET", "One user: balance, devices, lock, limits, recent transactions",
        SUPPORT, s.UserSchema, path_params=PHONE, errors=(401, 404, 422),
    )
)  # fmt: skip
def get_user(phone: str) -> Any:
    """The user's page."""
    return support.user_view(services(), phone=_phone(phone))


@api.endpoint(
    Operation(
        "/users/<phone>/unlock", "POST", "Clear a PIN lockout", ADMIN, s.UnlockedSchema,
        body=s.ReasonBody, path_params=PHONE, errors=ACT,
    )
)  # fmt: skip
def unlock(body: dict[str, Any], phone: str) -> User:
    """Reset wrong-PIN attempts and the lock; the user gets an SMS."""
    return review.unlock(services(), current_staff(), _phone(phone), body["reason"])


@api.endpoint(
    Operation(
        "/users/<phone>/credit", "POST", "Credit a wallet with a reason", ADMIN,
        s.TransactionSchema, body=s.CreditBody, path_params=PHONE, errors=(401, 403, 404, 422),
    )
)  # fmt: skip
def credit(body: dict[str, Any], phone: str) -> Transaction:
    """A balanced entry from the cash-in account; the user gets an SMS."""
    return review.credit(services(), current_staff(), _phone(phone), body["amount"], body["reason"])


@api.endpoint(
    Operation(
        "/flagged", "GET", "FLAGGED payments waiting for review (oldest first)", SUPPORT,
        s.TransactionPageSchema, query=s.PageQuery, errors=(401, 422),
    )
)  # fmt: skip
def flagged(q: dict[str, Any]) -> Any:
    """The review queue."""
    return support.flagged_queue(services(), q["page"], q["per_page"])


@api.endpoint(
    Operation(
        "/flagged/<reference>/approve", "POST", "Approve a held payment", ADMIN,
        s.TransactionSchema, body=s.ReasonBody, path_params=REF, errors=ACT,
    )
)  # fmt: skip
def approve(body: dict[str, Any], reference: str) -> Transaction:
    """The held money goes on to the payee."""
    return review.approve(services(), current_staff(), reference, body["reason"])


@api.endpoint(
    Operation(
        "/flagged/<reference>/reject", "POST", "Reject a held payment", ADMIN,
        s.TransactionSchema, body=s.ReasonBody, path_params=REF, errors=ACT,
    )
)  # fmt: skip
def reject(body: dict[str, Any], reference: str) -> Transaction:
    """The held money goes back to the payer."""
    return review.reject(services(), current_staff(), reference, body["reason"])


@api.endpoint(
    Operation(
        "/audit", "GET", "The audit log (newest first)", SUPPORT, s.AuditPageSchema,
        query=s.AuditQuery, errors=(401, 422),
    )
)  # fmt: skip
def audit_log(q: dict[str, Any]) -> Any:
    """Who did what, when and why."""
    return support.audit_log(services(), **q)


@api.endpoint(
    Operation("/kpis", "GET", "Today's and the last 7 days' KPIs", SUPPORT, s.KpisSchema,
              errors=(401,))
)  # fmt: skip
def get_kpis() -> Any:
    """Volume, amount, success rate, failures, time to final state, channels, phone health."""
    return kpis.dashboard(services())


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3 document of this API (no token needed)."""
    spec = current_app.extensions.get("smspay_openapi")
    if spec is None:
        spec = current_app.extensions["smspay_openapi"] = api.spec(bp.url_prefix or "")
    return jsonify(spec)


@bp.errorhandler(ServiceError)
def service_error(exc: ServiceError) -> Response:
    """A use case refused: map its error to a status."""
    if isinstance(exc, Forbidden):
        return error(403, str(exc))
    if isinstance(exc, UnknownUser | support.UnknownTransaction):
        return error(404, str(exc))
    if isinstance(exc, review.WrongState | ledger.TransitionRefused):
        return error(409, str(exc))
    return error(422, str(exc))


@bp.errorhandler(ValidationError)
def invalid(exc: ValidationError) -> Response:
    """Input the schemas refuse."""
    return error(422, "invalid input", field_errors(exc))


@bp.errorhandler(InsufficientFunds)
def insufficient(exc: InsufficientFunds) -> Response:
    """A debit the balance did not cover: nothing moved."""
    return error(409, "a balance does not cover this; nothing was moved")
