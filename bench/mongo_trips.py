"""Round trips to MongoDB of one payment: every command the driver sends while the Tasker webhook
handles one PAY SMS (and one payout, one BAL; and the Twilio webhook one PAY), counted with
pymongo's command monitoring.

    .venv/bin/python -m bench.mongo_trips [--uri mongodb://...]

Without --uri it starts the emulated MongoDB the tests use (tests/mongo_server.py); the count is
the same on a real replica set, only each trip's time differs (on a network, ~0.5 ms or more).
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from typing import Any

from pymongo import monitoring

from app import create_app
from app.services import admin, payments
from tests.mongo_server import database_uri, drop_database, mongo_server
from tests.support import (
    PUBLIC_URL,
    TWILIO_TOKEN,
    Phone,
    tasker_body,
    tasker_headers,
    twilio_form,
    twilio_signature,
)


class Commands(monitoring.CommandListener):
    """Counts the commands started, by name (find, insert, update, commitTransaction, ...)."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        """One command sent: one round trip."""
        self.seen[event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Nothing to count."""

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Nothing to count."""


def count(base_uri: str) -> dict[str, Counter[str]]:
    """Commands of the 2nd PAY, the 3rd PAY, a payout to a UPI id, a BAL (the 1st warms the
    process up) and a PAY through Twilio."""
    listener = Commands()
    monitoring.register(listener)  # every client created from now on reports to it
    uri = database_uri(base_uri)
    found: dict[str, Counter[str]] = {}
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            config: dict[str, Any] = {
                "data_dir": data_dir, "mongodb_uri": uri, "log_level": "WARNING",
                "twilio_auth_token": TWILIO_TOKEN, "public_base_url": PUBLIC_URL,
            }  # fmt: skip
            app = create_app(config)
            svc = app.extensions["smspay"]
            svc.store.init()
            client = app.test_client()
            secret = admin.add_tasker_gateway(svc, "trips")
            for phone in ("+919000000001", "+919000000002"):
                admin.register_user(svc, phone, "Trips", "1234")
            payments.credit_wallet(svc, "+919000000001", 10_000, "trips", actor="bench")
            bundle = admin.provision_device(svc, "+919000000001")
            payer = Phone("+919000000001", bundle.key_id, bundle.key, "1234")
            for name, text in (
                ("warm-up PAY", payer.pay("+919000000002", 100)),
                ("PAY", payer.pay("+919000000002", 100)),
                ("PAY again", payer.pay("+919000000002", 100)),
                ("PAY to a UPI id", payer.pay("trips@upi", 100)),
                ("BAL", payer.balance()),
                ("PAY via Twilio", payer.pay("+919000000002", 100)),
            ):
                listener.seen.clear()
                if name.endswith("Twilio"):
                    form = twilio_form(payer.phone, text)
                    signed = {"X-Twilio-Signature": twilio_signature(form)}
                    r = client.post("/sms/twilio", data=form, headers=signed)
                else:
                    raw = tasker_body(payer.phone, text)
                    signed = tasker_headers("trips", secret, raw)
                    r = client.post("/sms/tasker", data=raw, headers=signed)
                assert r.status_code == 200, r.data
                found[name] = Counter(listener.seen)
            svc.store.close()
    finally:
        drop_database(uri)
    return found


def main() -> None:
    """Print the commands of one PAY and one BAL."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--uri", help="a MongoDB base URI (default: start the emulated one)")
    args = parser.parse_args()
    if args.uri:
        found = count(args.uri)
    else:
        with mongo_server() as base:
            found = count(base)
    for name, seen in found.items():
        detail = ", ".join(f"{k} {v}" for k, v in sorted(seen.items()))
        print(f"{name:15} {sum(seen.values()):3} round trips: {detail}")


if __name__ == "__main__":
    main()
