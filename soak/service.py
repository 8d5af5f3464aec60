"""The service under soak: gunicorn (production config, 2 workers) and one job worker, on a free
127.0.0.1 port over a fresh data directory; the worker can be SIGKILLed and started again."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import requests

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TWILIO_TOKEN = "soak-twilio-token-not-real"


def free_port() -> int:
    """A port nothing listens on now, on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Faults:
    """What goes wrong on purpose, and the pacing that keeps a run within minutes."""

    fail_percent: int = 10  # of the sandbox's payout create/fetch calls
    lost_percent: int = 30  # of those failed creates: the payout was made, the answer lost
    seed: int = 1
    settle_seconds: int = 1  # the sandbox settles a payout, then calls the webhook
    poll_schedule: str = "90,120"  # status checks after a payout (NPCI: the first at 90 s)
    lease_seconds: int = 10  # a killed worker's job is run again by the next one after this
    backoff_max_seconds: int = 8  # retries of failed gateway calls come back soon


SOAK_RULES_OFF = (
    "user_rate,new_payee_payment_cap,new_payee_daily_cap,velocity_payees,velocity_amount"
)


def service_env(data_dir: Path, port: int, mongodb_uri: str, faults: Faults) -> dict[str, str]:
    """The environment of every process of the service (and of the soak's own store access)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSPAY_")}
    env.update(
        HOST="127.0.0.1",  # the sandbox calls the webhook back on $HOST:$PORT
        PORT=str(port),
        SMSPAY_DATA_DIR=str(data_dir),
        SMSPAY_MONGODB_URI=mongodb_uri,
        SMSPAY_TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        SMSPAY_LOG_LEVEL="WARNING",
        SMSPAY_SANDBOX_SETTLE_SECONDS=str(faults.settle_seconds),
        SMSPAY_SANDBOX_FAIL_PERCENT=str(faults.fail_percent),
        SMSPAY_SANDBOX_LOST_PERCENT=str(faults.lost_percent),
        SMSPAY_SANDBOX_FAULT_SEED=str(faults.seed),
        SMSPAY_PAYOUT_POLL_SCHEDULE=faults.poll_schedule,
        SMSPAY_WORKER_LEASE_SECONDS=str(faults.lease_seconds),
        SMSPAY_WORKER_BACKOFF_MAX_SECONDS=str(faults.backoff_max_seconds),
        # the soak is about faults, not fraud: its users pay faster and wider than people do,
        # which the rules that judge a person's pace and habits would rightly refuse or hold
        SMSPAY_RISK_RULES_OFF=SOAK_RULES_OFF,
    )
    return env


@dataclass
class Service:
    """gunicorn and one worker, started and stopped by the soak (only the processes it started)."""

    data_dir: Path
    port: int
    env: dict[str, str]
    web: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    worker_starts: int = 0
    _logs: list[IO[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Where the service listens."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def web_log(self) -> Path:
        """gunicorn's own log (errors, worker restarts)."""
        return self.data_dir / "soak-web.log"

    @property
    def worker_log(self) -> Path:
        """Every worker's log, one after the other."""
        return self.data_dir / "soak-worker.log"

    def _log(self, path: Path) -> IO[bytes]:
        handle = path.open("ab")
        self._logs.append(handle)
        return handle

    def start(self, timeout: float = 60) -> None:
        """Start gunicorn and the worker; wait until /healthz answers."""
        self.web = subprocess.Popen(
            [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", "--workers", "2",
             "--bind", f"127.0.0.1:{self.port}", "wsgi:app"],
            cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=self._log(self.web_log),
        )  # fmt: skip
        self.start_worker()
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self.web.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not start; see " + self.web_log.name)
            time.sleep(0.2)

    def start_worker(self) -> None:
        """Start one `flask --app wsgi worker`."""
        self.worker = subprocess.Popen(
            [str(BIN / "flask"), "--app", "wsgi", "worker"],
            cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=self._log(self.worker_log),
        )  # fmt: skip
        self.worker_starts += 1

    def kill_worker(self) -> None:
        """SIGKILL the worker: no cleanup, its leases and the sandbox's timers in it are lost."""
        assert self.worker is not None
        self.worker.send_signal(signal.SIGKILL)
        self.worker.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM the worker and gunicorn (each finishes what it is doing), then close logs."""
        for proc in (self.worker, self.web):
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for handle in self._logs:
            handle.close()
        self._logs.clear()
