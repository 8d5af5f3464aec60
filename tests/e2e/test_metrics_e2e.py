"""/metrics on a real gunicorn with 2 worker processes: the request counts of both add up, and
/readyz is ready once the worker process has sent its first heartbeat."""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e
REQUESTS = 60


def readyz_count(families: Iterable[Metric]) -> float:
    return sum(
        s.value
        for f in families
        for s in f.samples
        if s.name == "smspay_http_requests_total"
        and s.labels.get("route") == "/readyz"
        and s.labels.get("status") == "200"
    )


def get(url: str) -> int:
    return requests.get(url, timeout=10).status_code


def scrape(server: Server) -> list[Metric]:
    r = requests.get(server.url + "/metrics", timeout=10)
    assert r.status_code == 200
    return list(text_string_to_metric_families(r.text))


def test_request_counts_of_every_gunicorn_worker_add_up(server: Server) -> None:
    deadline = time.monotonic() + 30
    while requests.get(server.url + "/readyz", timeout=5).json().get("workers", 0) < 1:
        assert time.monotonic() < deadline, "the worker never sent a heartbeat"
        time.sleep(0.2)
    before = readyz_count(scrape(server))

    def per_process() -> list[float]:
        return [
            readyz_count(MultiProcessCollector.merge([str(f)]))
            for f in Path(server.env["PROMETHEUS_MULTIPROC_DIR"]).glob("counter_*.db")
        ]

    # new connections, concurrent: the kernel spreads them over the workers' sockets, once both
    # workers listen (under a loaded test run the second may still be starting: send more)
    sent = 0
    while sent == 0 or len([n for n in per_process() if n]) < 2:
        assert time.monotonic() < deadline + 30, per_process()  # a worker never answered
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(get, [server.url + "/readyz"] * REQUESTS))
        assert codes == [200] * REQUESTS
        sent += REQUESTS

    families = scrape(server)
    assert readyz_count(families) - before == sent  # whichever process answered the scrape
    workers = {
        s.labels["state"]: s.value
        for f in families
        for s in f.samples
        if s.name == "smspay_workers"
    }
    assert workers["running"] == 1
