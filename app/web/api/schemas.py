"""The API's marshmallow schemas: what requests may carry and what responses hold.

The OpenAPI document (/api/v1/openapi.json) is generated from these, so what is validated and
what is documented are the same. Amounts are integer paise; times are ISO 8601 in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from sms.instructions import MAX_AMOUNT_PAISE, REFERENCE_ALPHABET, REFERENCE_LENGTH
from sms.numbers import mask_party
from storage.models import JobStatus, StaffRole, TransactionKind, TransactionState

PHONE_PATTERN = r"^\+[1-9][0-9]{6,14}$"
REFERENCE_PATTERN = f"^[{REFERENCE_ALPHABET}]{{{REFERENCE_LENGTH}}}$"
REASON = [validate.Length(1, 300), validate.Regexp(r"^\s*\S", error="say why")]
MAX_PAGE = 1000


class Timestamp(fields.DateTime):
    """A Unix time, written as an ISO 8601 date-time in UTC."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        return datetime.fromtimestamp(float(value), UTC).isoformat()


class Masked(fields.String):
    """A phone number or UPI id, masked (lists show no full numbers)."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else mask_party(str(value))


def _phone(description: str) -> fields.String:
    return fields.String(
        validate=validate.Regexp(PHONE_PATTERN, error="a phone number in E.164 form"),
        metadata={"example": "+919876543210", "description": description},
    )


# requests


class PageQuery(Schema):
    """Which page of a list (unknown parameters are refused, so typos do not go unnoticed)."""

    class Meta:
        unknown = RAISE

    page = fields.Integer(load_default=1, validate=validate.Range(1, MAX_PAGE))
    per_page = fields.Integer(load_default=20, validate=validate.Range(1, 100))


class TransactionQuery(PageQuery):
    """A transaction search: every field optional, all must match. Days are local, inclusive."""

    reference = fields.String(
        validate=validate.Regexp(REFERENCE_PATTERN, error="a 10-character reference")
    )
    phone = _phone("payer or payee")
    state = fields.Enum(TransactionState, by_value=True)
    since = fields.Date(metadata={"description": "first local day"})
    until = fields.Date(metadata={"description": "last local day"})


class AuditQuery(PageQuery):
    """Filters of the audit log."""

    actor = fields.String(validate=validate.Length(1, 100))
    target = fields.String(validate=validate.Length(1, 100))


class ReasonBody(Schema):
    """Why a staff member acts (goes into the audit log)."""

    class Meta:
        unknown = RAISE

    reason = fields.String(required=True, validate=REASON)


class CreditBody(ReasonBody):
    """A wallet credit."""

    amount = fields.Integer(
        required=True,
        strict=True,  # "100" or 10.5 is a mistake to refuse, never paise to guess
        validate=validate.Range(1, MAX_AMOUNT_PAISE),
        metadata={"description": "paise"},
    )


# responses


class ErrorSchema(Schema):
    """What went wrong; `fields` names each bad field of a 422."""

    error = fields.String(required=True)
    fields_ = fields.Dict(
        data_key="fields", keys=fields.String(), values=fields.List(fields.String())
    )


class MeSchema(Schema):
    """The staff member a token belongs to."""

    name = fields.String(required=True)
    role = fields.Enum(StaffRole, by_value=True, required=True)


class TransactionSummarySchema(Schema):
    """A transaction in a list: phone numbers masked."""

    reference = fields.String(required=True)
    kind = fields.Enum(TransactionKind, by_value=True, required=True)
    amount = fields.Integer(required=True, metadata={"description": "paise"})
    state = fields.Enum(TransactionState, by_value=True, required=True)
    reason = fields.String()
    channel = fields.String()
    risk = fields.String(metadata={"description": "what the risk rules decided, and why"})
    created_at = Timestamp(required=True)
    updated_at = Timestamp(required=True)
    payer_phone: fields.String = Masked(allow_none=True)
    payee: fields.String = Masked(allow_none=True)


class TransactionSchema(TransactionSummarySchema):
    """One transaction: phone numbers in full."""

    payer_phone = fields.String(allow_none=True)
    payee = fields.String(allow_none=True)
    payer_id = fields.String(allow_none=True)
    payee_id = fields.String(allow_none=True)
    note = fields.String()
    lat = fields.Float(allow_none=True, metadata={"description": "where the payer was, if sent"})
    lon = fields.Float(allow_none=True)


class TransactionPageSchema(Schema):
    """One page of transactions."""

    items = fields.List(fields.Nested(TransactionSummarySchema), required=True)
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    has_next = fields.Boolean(required=True)


class TimelineItemSchema(Schema):
    """One line of a transaction's timeline."""

    at = Timestamp(required=True)
    kind = fields.String(
        required=True,
        validate=validate.OneOf(
            ["state", "risk", "sms_in", "sms_out", "ledger", "job", "webhook", "staff"]
        ),
    )
    title = fields.String(required=True)
    detail = fields.String()
    status = fields.String()


class PostingSchema(Schema):
    """One leg of a ledger entry."""

    account = fields.String(required=True)
    amount = fields.Integer(required=True, metadata={"description": "paise, signed"})


class LedgerEntrySchema(Schema):
    """A balanced ledger entry."""

    id = fields.String(required=True)
    created_at = Timestamp(required=True)
    postings = fields.List(fields.Nested(PostingSchema), required=True)


class InboundSmsSchema(Schema):
    """An inbound SMS that named this transaction (its body is never stored)."""

    id = fields.String(allow_none=True)
    route = fields.String(required=True)
    sender = fields.String(required=True)
    received_at = Timestamp(required=True)
    outcome = fields.String(required=True)
    reply = fields.String()
    provider_message_id = fields.String(allow_none=True)
    gateway_id = fields.String(allow_none=True)
    key_id = fields.Integer(allow_none=True)
    counter = fields.Integer(allow_none=True)
    deliveries = fields.Integer()


class OutboundSmsSchema(Schema):
    """A status SMS and its delivery status."""

    id = fields.String(allow_none=True)
    to = fields.String(required=True)
    body = fields.String(required=True)
    created_at = Timestamp(required=True)
    status = fields.String(required=True)


class ProviderEventSchema(Schema):
    """A gateway webhook event for this transaction."""

    provider = fields.String(required=True)
    event_id = fields.String(required=True)
    kind = fields.String(required=True)
    status = fields.String(required=True)
    received_at = Timestamp(required=True)
    outcome = fields.String()


class JobSchema(Schema):
    """A gateway call in the job outbox."""

    key = fields.String(required=True)
    kind = fields.String(required=True)
    status = fields.Enum(JobStatus, by_value=True, required=True)
    attempts = fields.Integer(required=True)
    run_after = Timestamp(required=True)
    updated_at = Timestamp(required=True)
    last_error = fields.String()


class AuditEntrySchema(Schema):
    """One staff action."""

    id = fields.String(required=True)
    at = Timestamp(required=True)
    actor = fields.String(required=True)
    action = fields.String(required=True)
    target = fields.String(required=True)
    reason = fields.String(required=True)
    outcome = fields.String()


class AuditPageSchema(Schema):
    """One page of the audit log."""

    items = fields.List(fields.Nested(AuditEntrySchema), required=True)
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    has_next = fields.Boolean(required=True)


class TransactionDetailSchema(Schema):
    """A transaction and everything that happened to it."""

    transaction = fields.Nested(TransactionSchema, required=True)
    timeline = fields.List(fields.Nested(TimelineItemSchema), required=True)
    ledger = fields.List(fields.Nested(LedgerEntrySchema), attribute="entries", required=True)
    inbound_sms = fields.List(fields.Nested(InboundSmsSchema), attribute="inbound", required=True)
    outbound_sms = fields.List(
        fields.Nested(OutboundSmsSchema), attribute="outbound", required=True
    )
    gateway_events = fields.List(
        fields.Nested(ProviderEventSchema), attribute="provider_events", required=True
    )
    jobs = fields.List(fields.Nested(JobSchema), required=True)
    audit = fields.List(fields.Nested(AuditEntrySchema), required=True)


class DeviceSchema(Schema):
    """A phone's device key (never the key itself) and its counters."""

    key_id = fields.Integer(required=True, attribute="device.key_id")
    active = fields.Boolean(required=True, attribute="device.active")
    created_at = Timestamp(required=True, attribute="device.created_at")
    last_seen_at = Timestamp(allow_none=True, attribute="device.last_seen_at")
    highest_counter = fields.Integer(required=True, attribute="device.window.highest")
    counter_gaps = fields.Integer(required=True, attribute="gaps")


class LimitsSchema(Schema):
    """Payment limits and what is left of today's, in paise."""

    per_payment = fields.Integer(required=True)
    per_day = fields.Integer(required=True)
    spent_today = fields.Integer(required=True)
    left_today = fields.Integer(required=True)


class UserSchema(Schema):
    """A user as support sees them: phone in full, counterparties masked."""

    id = fields.String(required=True, attribute="user.id")
    phone = fields.String(required=True, attribute="user.phone")
    name = fields.String(required=True, attribute="user.name")
    created_at = Timestamp(required=True, attribute="user.created_at")
    balance = fields.Integer(required=True, metadata={"description": "paise"})
    locked = fields.Boolean(required=True)
    locked_until = Timestamp(allow_none=True, attribute="user.locked_until")
    failed_pin_attempts = fields.Integer(required=True, attribute="user.failed_pin_attempts")
    devices = fields.List(fields.Nested(DeviceSchema), required=True)
    limits = fields.Nested(LimitsSchema, required=True)
    recent_transactions = fields.List(
        fields.Nested(TransactionSummarySchema), attribute="recent", required=True
    )


class UnlockedSchema(Schema):
    """A user after an unlock."""

    phone = fields.String(required=True)
    failed_pin_attempts = fields.Integer(required=True)
    locked_until = Timestamp(allow_none=True)


class PeriodSchema(Schema):
    """KPIs of the transactions created in one period."""

    label = fields.String(required=True)
    since = Timestamp(required=True)
    until = Timestamp(required=True)
    count = fields.Integer(required=True)
    amount = fields.Integer(required=True, metadata={"description": "paise moved by successes"})
    succeeded = fields.Integer(required=True)
    failed = fields.Integer(required=True)
    success_rate = fields.Float(allow_none=True)
    failures = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    channels = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    median_seconds = fields.Float(allow_none=True)
    p95_seconds = fields.Float(allow_none=True)
    user_mistakes = fields.Integer(metadata={"description": "wrong PIN, balance, self, payee"})
    refused_by_rules = fields.Integer()
    system_failures = fields.Integer()
    service_success_rate = fields.Float(
        allow_none=True, metadata={"description": "successes over successes and system failures"}
    )
    rate_limited = fields.Integer()
    flags = fields.Dict(keys=fields.String(), values=fields.Integer())


class GatewayHealthSchema(Schema):
    """A Tasker phone and when it last forwarded an SMS."""

    id = fields.String(required=True)
    last_seen_at = Timestamp(allow_none=True)
    silent = fields.Boolean(required=True)


class DeviceHealthSchema(Schema):
    """A phone with missing counters or that has gone quiet (number masked)."""

    key_id = fields.Integer(required=True)
    phone = fields.String(required=True)
    highest_counter = fields.Integer(required=True)
    gaps = fields.Integer(required=True)
    last_seen_at = Timestamp(allow_none=True)
    silent = fields.Boolean(required=True)


class WorkerHealthSchema(Schema):
    """A worker process and whether it is heard from (SMSPAY_WORKER_QUIET_SECONDS)."""

    owner = fields.String(required=True)
    host = fields.String(required=True)
    pid = fields.Integer(required=True)
    started_at = Timestamp(required=True)
    last_beat_at = Timestamp(required=True)
    seconds_since_beat = fields.Float(required=True)
    jobs_done = fields.Integer(required=True)
    state = fields.String(required=True, validate=validate.OneOf(["running", "quiet", "stopped"]))


class KpisSchema(Schema):
    """Today's and the last 7 days' KPIs and the phones that need a look."""

    generated_at = Timestamp(required=True)
    today = fields.Nested(PeriodSchema, required=True)
    week = fields.Nested(PeriodSchema, required=True)
    days = fields.List(fields.Nested(PeriodSchema), required=True)
    gateways = fields.List(fields.Nested(GatewayHealthSchema), required=True)
    devices = fields.List(fields.Nested(DeviceHealthSchema), required=True)
    devices_active = fields.Integer(required=True)
    devices_with_gaps = fields.Integer(required=True)
    devices_silent = fields.Integer(required=True)
    workers = fields.List(fields.Nested(WorkerHealthSchema), required=True)
    burned_keys = fields.List(fields.Nested(AuditEntrySchema))
