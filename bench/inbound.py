"""Benchmark: signed, encrypted PAY SMS through the Tasker webhook, in one process.

Reports payments per second and the ratio to a minimal Flask route (GET /healthz) measured in
the same run, since absolute numbers depend on the machine. Uses the embedded SQLite store in a
temporary directory (fsync on every commit, as in production) and Flask's test client, so it
measures the service's own work: signature, decryption, replay window, PIN, ledger, records.

    .venv/bin/python -m bench.inbound [--payments 2000]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from app import create_app
from app.services import admin, payments
from tests.support import Phone, tasker_body, tasker_headers


def main() -> None:
    """Run both measurements and print them."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=2000)
    n = parser.parse_args().payments
    with tempfile.TemporaryDirectory() as data_dir:
        # one payer sends every payment: its per-user bucket (10 a minute) is off, and its caps
        # are out of the way; every risk rule still runs on every payment
        app = create_app(
            {"data_dir": data_dir, "log_level": "WARNING", "limit_per_day_paise": 10**10,
             "limit_per_month_paise": 10**11, "limit_new_payee_per_day_paise": 10**10,
             "risk_user_per_minute": 0, "risk_gateway_per_minute": 0}
        )  # fmt: skip
        svc = app.extensions["smspay"]
        client = app.test_client()
        secret = admin.add_tasker_gateway(svc, "bench")
        admin.register_user(svc, "+919000000001", "Payer", "1234")
        admin.register_user(svc, "+919000000002", "Payee", "1234")
        payments.credit_wallet(svc, "+919000000001", n * 100, "bench", actor="bench")
        bundle = admin.provision_device(svc, "+919000000001")
        phone = Phone("+919000000001", bundle.key_id, bundle.key, "1234")
        requests = []
        for _ in range(n):
            raw = tasker_body(phone.phone, phone.pay("+919000000002", 100))
            requests.append((raw, tasker_headers("bench", secret, raw)))

        start = time.perf_counter()
        for _ in range(n):
            assert client.get("/healthz").status_code == 200
        baseline = n / (time.perf_counter() - start)

        latencies = []
        start = time.perf_counter()
        for raw, headers in requests:
            t = time.perf_counter()
            r = client.post("/sms/tasker", data=raw, headers=headers)
            latencies.append(time.perf_counter() - t)
            assert r.status_code == 200 and "Paid" in r.get_json()["reply"], r.data
        rate = n / (time.perf_counter() - start)
        latencies.sort()
        svc.store.close()
    print(f"minimal route:      {baseline:8.0f} requests/s")
    print(f"PAY via Tasker:     {rate:8.0f} payments/s (one process, SQLite, fsync per commit)")
    print(f"ratio:              {rate / baseline:8.3f}")
    print(
        f"latency p50 / p95:  {latencies[n // 2] * 1000:6.2f} / "
        f"{latencies[int(n * 0.95)] * 1000:6.2f} ms"
    )


if __name__ == "__main__":
    main()
