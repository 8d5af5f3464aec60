"""Settings come from SMSPAY_* variables, are validated, and are all documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ConfigError, Settings, documented_settings, markdown_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_reads_prefixed_variables_and_converts_integers() -> None:
    s = Settings.from_env({"SMSPAY_DATA_DIR": "/srv/x", "SMSPAY_PIN_MAX_ATTEMPTS": "5"})
    assert s.data_dir == "/srv/x" and s.pin_max_attempts == 5
    assert Settings.from_env({}).pin_max_attempts == 3


def test_overrides_win_and_unknown_or_bad_values_are_refused() -> None:
    assert Settings.from_env({"SMSPAY_DATA_DIR": "a"}, {"data_dir": "b"}).data_dir == "b"
    with pytest.raises(ConfigError):
        Settings.from_env({}, {"no_such_setting": 1})
    with pytest.raises(ConfigError):
        Settings.from_env({"SMSPAY_TRUSTED_PROXIES": "two"})
    with pytest.raises(ConfigError):
        Settings.from_env({"SMSPAY_LIMIT_PER_PAYMENT_PAISE": "0"})


def test_repr_hides_secrets() -> None:
    s = Settings.from_env({"SMSPAY_TWILIO_AUTH_TOKEN": "sekrit-token-value"})
    assert "sekrit" not in repr(s)


def test_every_setting_is_documented() -> None:
    doc = DOC.read_text()
    for name, _, _ in documented_settings():
        assert f"`{name}`" in doc, name
    assert markdown_table() in doc, "regenerate: flask --app wsgi settings --markdown"


@pytest.mark.parametrize(
    ("environ", "url"),
    [
        ({}, "http://127.0.0.1:8000/webhooks/razorpay"),
        ({"PORT": "9123"}, "http://127.0.0.1:9123/webhooks/razorpay"),
        ({"PORT": "9123", "HOST": "0.0.0.0"}, "http://127.0.0.1:9123/webhooks/razorpay"),
        ({"PORT": "9123", "HOST": "10.0.0.5"}, "http://10.0.0.5:9123/webhooks/razorpay"),
        (
            {"PORT": "9123", "SMSPAY_PUBLIC_BASE_URL": "https://pay.example.com/"},
            "https://pay.example.com/webhooks/razorpay",
        ),
        ({"PORT": "9123", "SMSPAY_SANDBOX_WEBHOOK_URL": ""}, ""),
        ({"SMSPAY_SANDBOX_WEBHOOK_URL": "http://127.0.0.1:7000/x"}, "http://127.0.0.1:7000/x"),
    ],
)
def test_the_sandbox_webhook_follows_the_public_url_or_the_bound_port(
    environ: dict[str, str], url: str
) -> None:
    assert Settings.from_env(environ).sandbox_webhook_url == url


def test_nothing_is_missing_for_a_complete_setup() -> None:
    complete = {
        "SMSPAY_TWILIO_AUTH_TOKEN": "fake-token",
        "SMSPAY_GATEWAY": "razorpay",
        "SMSPAY_RAZORPAY_KEY_ID": "rzp_test_fake",
        "SMSPAY_RAZORPAY_KEY_SECRET": "fake",
        "SMSPAY_RAZORPAYX_ACCOUNT_NUMBER": "0000000000",
        "SMSPAY_RAZORPAY_WEBHOOK_SECRET": "fake",
        "SMSPAY_SMS_CHANNEL": "twilio",
        "SMSPAY_TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "SMSPAY_TWILIO_FROM": "+15005550006",
    }
    assert Settings.from_env(complete).missing() == []


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({}, ["SMSPAY_TWILIO_AUTH_TOKEN"]),
        (
            {"SMSPAY_TWILIO_AUTH_TOKEN": "t", "SMSPAY_GATEWAY": "razorpay",
             "SMSPAY_RAZORPAY_KEY_ID": "k"},
            ["SMSPAY_RAZORPAY_KEY_SECRET", "SMSPAY_RAZORPAYX_ACCOUNT_NUMBER",
             "SMSPAY_RAZORPAY_WEBHOOK_SECRET"],
        ),
        (
            {"SMSPAY_TWILIO_AUTH_TOKEN": "t", "SMSPAY_GATEWAY": "cashfree"},
            ["SMSPAY_CASHFREE_CLIENT_ID", "SMSPAY_CASHFREE_CLIENT_SECRET"],
        ),
        ({"SMSPAY_TWILIO_AUTH_TOKEN": "t", "SMSPAY_SMS_CHANNEL": "twilio"},
         ["SMSPAY_TWILIO_ACCOUNT_SID", "SMSPAY_TWILIO_FROM"]),
    ],
)  # fmt: skip
def test_each_setting_a_route_needs_is_named_when_missing(
    environ: dict[str, str], named: list[str]
) -> None:
    (gap,) = Settings.from_env(environ).missing()
    assert all(name in gap for name in named)
