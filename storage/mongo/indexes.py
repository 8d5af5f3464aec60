"""The collections and indexes `db init` creates; the names are those of databases in use.

Exactly-once rests on the unique indexes; the TTL indexes let MongoDB drop expired documents.
"""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel

INDEXES: dict[str, list[IndexModel]] = {
    "users": [IndexModel("phone", unique=True, name="phone_unique")],
    "devices": [
        IndexModel([("user_id", ASCENDING)], name="user"),
        IndexModel([("phone", ASCENDING)], name="phone"),
    ],
    "inbound_sms": [
        IndexModel(
            [("route", ASCENDING), ("provider_message_id", ASCENDING)],
            unique=True,
            partialFilterExpression={"provider_message_id": {"$type": "string"}},
            name="provider_message_unique",
        ),
        IndexModel([("sender", ASCENDING), ("received_at", DESCENDING)], name="sender_time"),
        IndexModel("reference", name="reference"),
        IndexModel("received_at", name="time"),
    ],
    "frames": [IndexModel("expires", expireAfterSeconds=0, name="expiry_ttl")],
    "ledger_entries": [IndexModel("reference", name="reference")],
    "transactions": [
        IndexModel([("payer_id", ASCENDING), ("created_at", DESCENDING)], name="payer_time"),
        IndexModel(  # a payer's first payment to a payee (the risk rules, on every payment)
            [
                ("payer_id", ASCENDING),
                ("payee", ASCENDING),
                ("created_at", ASCENDING),
                ("state", ASCENDING),
            ],
            name="payer_payee_time",
        ),
        IndexModel([("payer_phone", ASCENDING), ("created_at", DESCENDING)], name="payer_phone"),
        IndexModel([("payee", ASCENDING), ("created_at", DESCENDING)], name="payee_time"),
        IndexModel([("state", ASCENDING), ("created_at", DESCENDING)], name="state_time"),
        IndexModel([("created_at", DESCENDING)], name="time"),
    ],
    "outbox_sms": [
        IndexModel([("status", ASCENDING), ("created_at", ASCENDING)], name="status"),
        IndexModel([("channel", ASCENDING), ("status", ASCENDING)], name="channel_status"),
        IndexModel("reference", name="reference"),
        IndexModel("provider_id", name="provider_id"),
    ],
    "rate_buckets": [IndexModel("expires", expireAfterSeconds=0, name="expiry_ttl")],
    "rate_windows": [IndexModel("expires", expireAfterSeconds=0, name="expiry_ttl")],
    "jobs": [
        IndexModel([("status", ASCENDING), ("run_after", ASCENDING)], name="due"),
        IndexModel([("status", ASCENDING), ("lease_until", ASCENDING)], name="lease"),
        IndexModel("payload.reference", name="reference"),
    ],
    "provider_events": [IndexModel("reference", name="reference")],
    "staff": [IndexModel("name", unique=True, name="name_unique")],
    "api_tokens": [
        IndexModel("staff_id", name="staff"),
        IndexModel("prefix", name="prefix"),
    ],
    # The audit log is append-only by contract: no method updates or deletes its documents.
    "audit_log": [
        IndexModel([("actor", ASCENDING), ("_id", DESCENDING)], name="actor"),
        IndexModel([("target", ASCENDING), ("_id", DESCENDING)], name="target"),
    ],
}
# Collections without indexes of their own are created up front too: a collection created inside
# a transaction conflicts with concurrent ones (and MongoDB before 4.4 refuses it there).
# `spending`: running totals per payer, _id the payer's id (storage/contract/spending.py).
COLLECTIONS = (*INDEXES, "accounts", "meta", "tasker_gateways", "workers", "spending")
# An index `db init` makes: the store refuses to run on a database that lacks it.
READY_INDEX = ("users", "phone_unique")
