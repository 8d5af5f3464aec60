"""Configuration: every setting, its `SMSPAY_` environment variable and its default, in one place.

docs/configuration.md lists the same table for operators (a test keeps the two in step).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PREFIX = "SMSPAY_"


# The risk rules a deployment may switch off by name (app/services/risk.py, docs/risk.md).
RISK_RULES = (
    "gateway_rate", "user_rate", "payment_cap", "daily_cap", "monthly_cap", "balance",
    "new_payee_payment_cap", "new_payee_daily_cap", "velocity_payees", "velocity_amount",
    "geofence", "travel",
)  # fmt: skip


class ConfigError(ValueError):
    """A setting has a value the service cannot use."""


def _setting(default: Any, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class Settings:
    """The service's settings; `from_env` reads each from `SMSPAY_<NAME>`."""

    data_dir: str = _setting("var", "Directory of the embedded store and the dev master key.")
    mongodb_uri: str = _setting("", "MongoDB connection string; when set, MongoDB is the store.")
    master_key: str = _setting(
        "", "Base64 256-bit master key. Unset: generated once into DATA_DIR/master.key (dev only)."
    )
    master_key_previous: str = _setting(
        "", "Comma-separated base64 master keys still accepted for unwrapping during rotation."
    )
    public_base_url: str = _setting(
        "", "Public URL Twilio posts to, e.g. https://pay.example.com (signatures are over it)."
    )
    trusted_proxies: int = _setting(
        0, "Number of reverse proxies whose X-Forwarded-* headers to trust (ProxyFix)."
    )
    twilio_auth_token: str = _setting("", "Twilio auth token; the Twilio route answers 403 unset.")
    tasker_max_skew_seconds: int = _setting(300, "Allowed clock skew of Tasker X-Timestamp.")
    pin_max_attempts: int = _setting(3, "Wrong PINs in a row before the user is locked.")
    pin_lock_seconds: int = _setting(86_400, "How long a PIN lockout lasts (NPCI: 24 h).")
    limit_per_payment_paise: int = _setting(
        1_000_000, "Largest single payment, in paise (UPI 123PAY: Rs 10,000)."
    )
    limit_per_day_paise: int = _setting(
        10_000_000, "Most a user may pay in one local day, in paise (UPI: Rs 1,00,000)."
    )
    limit_per_month_paise: int = _setting(
        100_000_000, "Most a user may pay in one local calendar month, in paise (Rs 10,00,000)."
    )
    limit_new_payee_per_payment_paise: int = _setting(
        100_000,
        "Largest payment to a payee first paid in the last 24 h, in paise (UPI Lite: Rs 1,000).",
    )
    limit_new_payee_per_day_paise: int = _setting(
        500_000,
        "Most paid in 24 h to one payee first paid in that time, in paise (*99#: Rs 5,000).",
    )
    risk_rules_off: str = _setting(
        "", "Risk rules switched off, comma-separated names (docs/risk.md), e.g. geofence,travel."
    )
    risk_user_per_minute: int = _setting(
        10, "Instructions one user may send a minute (token bucket; 0: no limit)."
    )
    risk_gateway_per_minute: int = _setting(
        600, "SMS one Tasker phone may forward a minute (token bucket; 0: no limit)."
    )
    risk_refusal_replies_per_hour: int = _setting(
        6, "Refusal replies (too many messages, unknown sender, unreadable) to one number an hour."
    )
    risk_velocity_payees: int = _setting(
        5, "Distinct payees in RISK_VELOCITY_SECONDS above which a payment is FLAGGED (0: off)."
    )
    risk_velocity_seconds: int = _setting(3600, "The window of the distinct-payees rule.")
    risk_amount_multiple: int = _setting(
        10, "A payment above this many times the user's 30-day median is FLAGGED (0: off)."
    )
    risk_amount_min_history: int = _setting(
        5, "Payments in 30 days a user needs before the median rule judges them."
    )
    risk_geofence_km: int = _setting(
        20, "A payment farther than this from the user's usual area is FLAGGED (0: off)."
    )
    risk_geofence_min_points: int = _setting(
        3, "Located payments in 30 days that make a user's usual area."
    )
    risk_travel_kmh: int = _setting(
        300, "Two located payments farther apart than this speed allows are FLAGGED (0: off)."
    )
    risk_flag_expiry_seconds: int = _setting(
        259_200, "A FLAGGED payment nobody reviewed in this time is refunded (72 h)."
    )
    instruction_max_age_seconds: int = _setting(
        86_400, "Refuse instructions whose phone-side time is older than this (0: never)."
    )
    timezone: str = _setting("Asia/Kolkata", "Time zone of the daily limit and of SMS times.")
    service_number: str = _setting(
        "+15005550006", "The number phones send SMS to (written into device bundles)."
    )
    gateway: str = _setting(
        "sandbox", "Payout rail: sandbox (moves no real money), razorpay or cashfree."
    )
    razorpay_key_id: str = _setting("", "Razorpay API key id.")
    razorpay_key_secret: str = _setting("", "Razorpay API key secret.")
    razorpayx_account_number: str = _setting("", "RazorpayX account number payouts are made from.")
    razorpay_webhook_secret: str = _setting(
        "", "Secret Razorpay signs webhooks with (the sandbox makes one in DATA_DIR if unset)."
    )
    razorpay_validate_payees: int = _setting(
        0, "1: check a VPA's registered name with fund-account validation before paying."
    )
    cashfree_client_id: str = _setting("", "Cashfree Payouts client id.")
    cashfree_client_secret: str = _setting("", "Cashfree Payouts client secret.")
    cashfree_base_url: str = _setting("https://api.cashfree.com", "Cashfree Payouts API base URL.")
    gateway_requests_per_second: int = _setting(
        5, "Calls per second all workers together make to the gateway (RazorpayX: 5-10)."
    )
    sandbox_settle_seconds: int = _setting(3, "Delay before the sandbox settles a payout.")
    sandbox_webhook_url: str = _setting(
        "auto",
        "Where the sandbox sends its signed webhooks: `auto` is PUBLIC_BASE_URL, else this machine"
        " on $PORT (8000), + /webhooks/razorpay; empty: none (status checks still work).",
    )
    sandbox_fail_percent: int = _setting(
        0, "For soak runs: percent of the sandbox's payout create/fetch calls that fail on purpose."
    )
    sandbox_lost_percent: int = _setting(
        0, "Of the sandbox's failed creates, the percent that fail after paying (the answer lost)."
    )
    sandbox_fault_seed: int = _setting(
        0, "Seed of the sandbox's failures: the same seed and calls meet the same failures."
    )
    payout_poll_schedule: str = _setting(
        "90,1800,7200", "Seconds after a payout to check its status (NPCI: >= 90 s, 3 in 2 h)."
    )
    top_up_link_ttl_seconds: int = _setting(86_400, "How long a top-up payment link stays valid.")
    sms_channel: str = _setting(
        "log", "How status SMS leave: log (nothing is sent), twilio, or tasker (the phone sends)."
    )
    twilio_account_sid: str = _setting("", "Twilio account SID, for sending SMS.")
    twilio_from: str = _setting("", "The Twilio number status SMS come from (E.164).")
    twilio_messaging_service_sid: str = _setting(
        "", "A Twilio Messaging Service to send from instead of one number."
    )
    twilio_messages_per_second: int = _setting(1, "Twilio's sending rate for the sender.")
    tasker_sms_per_hour: int = _setting(
        100, "SMS one Tasker phone may send an hour (Android: 100)."
    )
    tasker_lease_seconds: int = _setting(
        120, "How long a Tasker phone holds an SMS before re-offer."
    )
    tasker_max_attempts: int = _setting(3, "Tasker send failures before an SMS is marked failed.")
    worker_lease_seconds: int = _setting(60, "How long a worker holds a job before others may.")
    worker_max_attempts: int = _setting(8, "Attempts before a job moves to the dead-letter state.")
    worker_backoff_base_seconds: int = _setting(2, "First retry delay (doubles, full jitter).")
    worker_backoff_max_seconds: int = _setting(600, "Longest retry delay.")
    worker_quiet_seconds: int = _setting(
        60, "A worker that has not sent a heartbeat for this long is quiet (readyz, dashboard)."
    )
    readyz_needs_worker: int = _setting(
        0, "1: /readyz answers 503 while no worker is heard from; 0: it only reports them."
    )
    metrics_token: str = _setting(
        "", "Bearer token /metrics asks for; unset: /metrics is open (scrape on a private network)."
    )
    secret_key: str = _setting(
        "", "Signs console session cookies. Unset: made once in DATA_DIR/console.secret (dev only)."
    )
    console_session_hours: int = _setting(8, "How long a console sign-in lasts.")
    kpi_tasker_silent_minutes: int = _setting(
        30, "A Tasker phone not heard from for this long is flagged on the dashboard."
    )
    kpi_device_silent_hours: int = _setting(
        72, "A phone whose device has sent nothing for this long is flagged on the dashboard."
    )
    log_level: str = _setting("INFO", "Python logging level.")
    log_format: str = _setting(
        "json", "json: one JSON object a line, with request ids; text: for reading in a terminal."
    )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
    ) -> Settings:
        """Read settings from the environment, then apply explicit overrides (tests)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(PREFIX + f.name.upper())
            if raw is None:
                continue
            if f.type in ("int", int):
                try:
                    values[f.name] = int(raw)
                except ValueError as exc:
                    raise ConfigError(f"{PREFIX}{f.name.upper()} must be an integer") from exc
            else:
                values[f.name] = raw
        unknown = set(overrides or {}) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown settings: {sorted(unknown)}")
        values.update(overrides or {})
        if values.get("sandbox_webhook_url", "auto") == "auto":
            values["sandbox_webhook_url"] = _sandbox_webhook_url(values, env)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse values that cannot work."""
        if self.trusted_proxies < 0:
            raise ConfigError("SMSPAY_TRUSTED_PROXIES must be 0 or more")
        if self.pin_max_attempts < 1 or self.pin_lock_seconds < 0:
            raise ConfigError("PIN attempts must be 1 or more and the lock 0 s or more")
        limits = (
            self.limit_per_payment_paise, self.limit_per_day_paise, self.limit_per_month_paise,
            self.limit_new_payee_per_payment_paise, self.limit_new_payee_per_day_paise,
        )  # fmt: skip
        if min(limits) < 1:
            raise ConfigError("limits must be positive amounts in paise")
        risk = [getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name.startswith("risk_") and f.type in ("int", int)]  # fmt: skip
        if unknown := sorted(self.rules_off - set(RISK_RULES)):
            raise ConfigError(f"SMSPAY_RISK_RULES_OFF names no such rule: {', '.join(unknown)}")
        if min(risk) < 0 or self.risk_flag_expiry_seconds < 60:
            raise ConfigError("risk settings are 0 or more; a flag expires after 60 s or more")
        if self.sms_channel not in ("log", "twilio", "tasker"):
            raise ConfigError("SMSPAY_SMS_CHANNEL must be log, twilio or tasker")
        if self.worker_quiet_seconds < 10:
            raise ConfigError("SMSPAY_WORKER_QUIET_SECONDS must be 10 or more")
        if self.console_session_hours < 1:
            raise ConfigError("SMSPAY_CONSOLE_SESSION_HOURS must be 1 or more")
        if self.log_format not in ("json", "text"):
            raise ConfigError("SMSPAY_LOG_FORMAT must be json or text")
        if self.gateway not in ("sandbox", "razorpay", "cashfree"):
            raise ConfigError("SMSPAY_GATEWAY must be sandbox, razorpay or cashfree")
        if not (0 <= self.sandbox_fail_percent <= 100 and 0 <= self.sandbox_lost_percent <= 100):
            raise ConfigError("SMSPAY_SANDBOX_FAIL_PERCENT and _LOST_PERCENT are 0 to 100")
        try:
            schedule = self.poll_schedule
        except ValueError as exc:
            raise ConfigError("SMSPAY_PAYOUT_POLL_SCHEDULE is seconds, comma-separated") from exc
        if not schedule or schedule[0] < 90 or schedule != sorted(schedule):
            raise ConfigError("payout status checks start at 90 s or later, in order (NPCI)")

    def missing(self) -> list[str]:
        """What an enabled route or rail lacks, one sentence each (logged as warnings at start)."""
        gaps = []
        if not self.twilio_auth_token:
            gaps.append(
                "SMSPAY_TWILIO_AUTH_TOKEN is unset: /sms/twilio and Twilio's status callbacks"
                " answer 403 to every request"
            )
        needs = {
            "razorpay": ("razorpay_key_id", "razorpay_key_secret", "razorpayx_account_number",
                         "razorpay_webhook_secret"),
            "cashfree": ("cashfree_client_id", "cashfree_client_secret"),
        }.get(self.gateway, ())  # fmt: skip
        if unset := [PREFIX + n.upper() for n in needs if not getattr(self, n)]:
            gaps.append(f"SMSPAY_GATEWAY={self.gateway} but {', '.join(unset)} unset: payouts fail")
        if self.sms_channel == "twilio" and not (
            self.twilio_account_sid
            and self.twilio_auth_token
            and (self.twilio_from or self.twilio_messaging_service_sid)
        ):
            gaps.append(
                "SMSPAY_SMS_CHANNEL=twilio needs SMSPAY_TWILIO_ACCOUNT_SID,"
                " SMSPAY_TWILIO_AUTH_TOKEN and SMSPAY_TWILIO_FROM (or a messaging service):"
                " status SMS will not go out"
            )
        return gaps

    @property
    def poll_schedule(self) -> list[int]:
        """The payout status-check times as seconds after the payout."""
        return [int(x) for x in self.payout_poll_schedule.split(",") if x.strip()]

    @functools.cached_property
    def rules_off(self) -> frozenset[str]:
        """The names of the risk rules this deployment switched off (read on every payment:
        made once)."""
        return frozenset(n.strip() for n in self.risk_rules_off.split(",") if n.strip())

    @property
    def data_path(self) -> Path:
        """The data directory as a path."""
        return Path(self.data_dir)

    def __repr__(self) -> str:
        return "Settings(<see docs/configuration.md; secrets hidden>)"


def _sandbox_webhook_url(values: Mapping[str, Any], env: Mapping[str, str]) -> str:
    """Where this installation's own webhook route is reachable: the public URL, or the port the
    web process binds ($PORT and $HOST, as `make run` and the Procfile use them)."""
    base = str(values.get("public_base_url") or "").rstrip("/")
    if not base:
        host = env.get("HOST", "")
        host = "127.0.0.1" if host in ("", "0.0.0.0", "::", "[::]") else host
        base = f"http://{host}:{env.get('PORT') or '8000'}"
    return base + "/webhooks/razorpay"


def markdown_table() -> str:
    """The settings table of docs/configuration.md (`flask --app wsgi settings --markdown`)."""
    rows = ["| Variable | Default | What it does |", "|---|---|---|"]
    for name, default, doc in documented_settings():
        rows.append(f"| `{name}` | {f'`{default}`' if default else '(unset)'} | {doc} |")
    return "\n".join(rows) + "\n"


def documented_settings() -> list[tuple[str, str, str]]:
    """(variable, default, description) for every setting, for docs and `flask config`."""
    return [
        (PREFIX + f.name.upper(), str(f.default), f.metadata["doc"])
        for f in dataclasses.fields(Settings)
    ]
