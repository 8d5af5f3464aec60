"""The baseline schema: the tables and indexes as they were when schema versions began.

Migration 1 (migrations.py) creates these. They are history now: change the schema with a new
migration, never by editing this file, or files made before and after the edit would differ.
"""

from __future__ import annotations

TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY, phone TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
    pin_salt BLOB NOT NULL, pin_hash BLOB NOT NULL, created_at REAL NOT NULL,
    failed_pin_attempts INTEGER NOT NULL DEFAULT 0, locked_until REAL);
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY, balance INTEGER NOT NULL DEFAULT 0,
    allow_negative INTEGER NOT NULL DEFAULT 0,
    CHECK (allow_negative OR balance >= 0));
CREATE TABLE IF NOT EXISTS ledger_entries (
    id INTEGER PRIMARY KEY, reference TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS postings (
    entry_id INTEGER NOT NULL REFERENCES ledger_entries (id), account TEXT NOT NULL
    REFERENCES accounts (id), amount INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    key_id INTEGER PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users (id), phone TEXT NOT NULL,
    wrapped_key BLOB NOT NULL, created_at REAL NOT NULL, window_highest INTEGER NOT NULL
    DEFAULT 0, window_bitmap BLOB NOT NULL DEFAULT x'', last_seen_at REAL,
    active INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS tasker_gateways (
    id TEXT PRIMARY KEY, wrapped_secret BLOB NOT NULL, created_at REAL NOT NULL,
    last_seen_at REAL);
CREATE TABLE IF NOT EXISTS inbound_sms (
    id INTEGER PRIMARY KEY, route TEXT NOT NULL, sender TEXT NOT NULL, received_at REAL NOT NULL,
    outcome TEXT NOT NULL, reply TEXT NOT NULL, provider_message_id TEXT, gateway_id TEXT,
    key_id INTEGER, counter INTEGER, reference TEXT, deliveries INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS frames (
    key_id INTEGER NOT NULL, counter INTEGER NOT NULL, outcome TEXT NOT NULL, reply TEXT NOT NULL,
    processed_at REAL NOT NULL, reference TEXT, PRIMARY KEY (key_id, counter));
CREATE TABLE IF NOT EXISTS transactions (
    reference TEXT PRIMARY KEY, kind TEXT NOT NULL, amount INTEGER NOT NULL CHECK (amount > 0),
    state TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL, payer_id TEXT,
    payer_phone TEXT, payee_id TEXT, payee TEXT, reason TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '', channel TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS transaction_events (
    id INTEGER PRIMARY KEY, reference TEXT NOT NULL REFERENCES transactions (reference),
    state TEXT NOT NULL, reason TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS outbox_sms (
    id INTEGER PRIMARY KEY, recipient TEXT NOT NULL, body TEXT NOT NULL, reference TEXT,
    created_at REAL NOT NULL, status TEXT NOT NULL DEFAULT 'pending', channel TEXT NOT NULL
    DEFAULT '', provider_id TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '',
    updated_at REAL, lease_gateway TEXT, lease_until REAL, attempts INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS rate_buckets (
    key TEXT PRIMARY KEY, tokens REAL NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS rate_windows (key TEXT PRIMARY KEY, stamps TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT PRIMARY KEY, kind TEXT NOT NULL, payload TEXT NOT NULL,
    status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, run_after REAL NOT NULL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, lease_owner TEXT, lease_until REAL,
    last_error TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS provider_events (
    provider TEXT NOT NULL, event_id TEXT NOT NULL, kind TEXT NOT NULL, reference TEXT NOT NULL,
    status TEXT NOT NULL, received_at REAL NOT NULL, outcome TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (provider, event_id));
CREATE TABLE IF NOT EXISTS staff (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, role TEXT NOT NULL, created_at REAL NOT NULL,
    password_hash TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS api_tokens (
    token_hash TEXT PRIMARY KEY, prefix TEXT NOT NULL, staff_id TEXT NOT NULL REFERENCES staff (id),
    created_at REAL NOT NULL, revoked_at REAL);
CREATE TABLE IF NOT EXISTS audit_log (
    id TEXT PRIMARY KEY, at REAL NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    target TEXT NOT NULL, reason TEXT NOT NULL, outcome TEXT NOT NULL DEFAULT '');
"""

# Columns that files made before schema versions may lack: (table, column, definition). Only the
# baseline adds them, and only where missing; every later change is a migration of its own.
ADDED_COLUMNS = (
    ("outbox_sms", "channel", "TEXT NOT NULL DEFAULT ''"),
    ("outbox_sms", "provider_id", "TEXT NOT NULL DEFAULT ''"),
    ("outbox_sms", "error", "TEXT NOT NULL DEFAULT ''"),
    ("outbox_sms", "updated_at", "REAL"),
    ("outbox_sms", "lease_gateway", "TEXT"),
    ("outbox_sms", "lease_until", "REAL"),
    ("outbox_sms", "attempts", "INTEGER NOT NULL DEFAULT 0"),
)

# After the columns above exist (outbox_sms_provider needs provider_id). The audit log refuses
# UPDATE and DELETE: append-only is enforced by the database, not by habit. The indexes on
# reference and time serve the support queries (a transaction's SMS and jobs, time ranges).
INDEXES = """
CREATE INDEX IF NOT EXISTS ledger_entries_ref ON ledger_entries (reference);
CREATE INDEX IF NOT EXISTS postings_entry ON postings (entry_id);
CREATE INDEX IF NOT EXISTS devices_phone ON devices (phone);
CREATE UNIQUE INDEX IF NOT EXISTS inbound_provider_id ON inbound_sms (route, provider_message_id)
    WHERE provider_message_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS inbound_sender ON inbound_sms (sender, received_at);
CREATE INDEX IF NOT EXISTS transactions_payer ON transactions (payer_id, created_at);
CREATE INDEX IF NOT EXISTS transactions_payer_phone ON transactions (payer_phone, created_at);
CREATE INDEX IF NOT EXISTS transactions_payee ON transactions (payee, created_at);
CREATE INDEX IF NOT EXISTS transactions_state ON transactions (state, created_at);
CREATE INDEX IF NOT EXISTS transaction_events_ref ON transaction_events (reference, id);
CREATE INDEX IF NOT EXISTS outbox_sms_status ON outbox_sms (status, id);
CREATE INDEX IF NOT EXISTS outbox_sms_reference ON outbox_sms (reference);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (status, run_after);
CREATE INDEX IF NOT EXISTS jobs_lease ON jobs (status, lease_until);
CREATE INDEX IF NOT EXISTS provider_events_ref ON provider_events (reference);
CREATE INDEX IF NOT EXISTS api_tokens_staff ON api_tokens (staff_id);
CREATE INDEX IF NOT EXISTS api_tokens_prefix ON api_tokens (prefix);
CREATE INDEX IF NOT EXISTS audit_log_actor ON audit_log (actor, id);
CREATE INDEX IF NOT EXISTS audit_log_target ON audit_log (target, id);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE INDEX IF NOT EXISTS inbound_sms_reference ON inbound_sms (reference);
CREATE INDEX IF NOT EXISTS transactions_time ON transactions (created_at);
CREATE INDEX IF NOT EXISTS jobs_reference ON jobs (json_extract(payload, '$.reference'));
CREATE INDEX IF NOT EXISTS outbox_sms_provider ON outbox_sms (provider_id);
"""
