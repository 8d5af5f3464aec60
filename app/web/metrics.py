"""/metrics in Prometheus's text format.

Two kinds of figures:

- **From the store, at scrape time** (`StoreCollector`): transactions today, jobs, the outbox,
  worker heartbeats (the same whichever web process answers the scrape); on SQLite, the WAL
  file's size.
- **Per process**: HTTP requests by route rule, method and status, and their durations, counted
  by a WSGI middleware (CountedRequests). gunicorn runs several processes, and a scrape
  reaches one of them, so these use prometheus-client's multiprocess mode: when
  PROMETHEUS_MULTIPROC_DIR is set (gunicorn.conf.py sets it), every process writes its counters
  to files there and a scrape adds them all up.
  Unset (tests, `flask run`), this process's own registry is served.

SMSPAY_METRICS_TOKEN, when set, is the bearer token a scrape must send.
"""

from __future__ import annotations

import functools
import hmac
import os
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from app.bootstrap import Services
from app.services import operations
from app.web import services
from storage.errors import StoreUnavailable
from storage.models import JobStatus, TransactionState
from storage.sqlite.store import BATCH_OBSERVERS, SqliteStore

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "(unmatched)"  # requests no route matched (404s), under one label

bp = Blueprint("metrics", __name__)

REQUESTS = Counter(
    "smspay_http_requests",
    "HTTP requests answered, by route rule, method and status.",
    ["route", "method", "status"],
)
DURATION = Histogram(
    "smspay_http_request_duration_seconds",
    "Time to answer an HTTP request, by route rule.",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


# Labelled by store, so that (in multiprocess mode) their files are made at the first batch, not
# at import by every process that loads the app (`flask db init` among them).
STORE_BATCHES = Counter(
    "smspay_store_batches",
    "SQLite write transactions committed (group commit: each holds one or more units of work).",
    ["store"],
)
STORE_UNITS = Counter(
    "smspay_store_batch_units", "Units of work committed in those transactions.", ["store"]
)
# Totals, not histograms: one cheap increment each per batch (the leader pays for it before its
# followers are answered); rate(wait) / rate(units) is the wait per unit of work.
LOCK_WAIT = Counter(
    "smspay_store_write_lock_wait_seconds",
    "Seconds batches waited for the store's write lock (other processes writing).",
    ["store"],
)
LOCK_HELD = Counter(
    "smspay_store_write_lock_held_seconds",
    "Seconds batches held the store's write lock: their units' work and the commit.",
    ["store"],
)
# held - cpu: the time the leading thread held the lock without running (waiting for its
# process's GIL after each SQLite call, or for a core); docs/performance.md
LOCK_CPU = Counter(
    "smspay_store_write_lock_cpu_seconds",
    "CPU seconds the thread leading each batch used while it held the store's write lock.",
    ["store"],
)


@functools.cache
def _sqlite_batch_children() -> tuple[Counter, ...]:
    """The batch counters' children for the SQLite store, made at the first batch."""
    return tuple(
        m.labels("sqlite") for m in (STORE_BATCHES, STORE_UNITS, LOCK_WAIT, LOCK_HELD, LOCK_CPU)
    )


def _observe_batch(units: int, waited: float, held: float, cpu: float) -> None:
    batches, units_, wait, held_, cpu_ = _sqlite_batch_children()
    batches.inc()
    units_.inc(units)
    wait.inc(waited)
    held_.inc(held)
    cpu_.inc(cpu)


class CountedRequests:
    """WSGI middleware: counts each request the app answers (errors included) by route rule,
    method and status, and observes how long the app took to answer it. The rule is the one
    Flask matched, read when the app starts its response (Flask's request object is then in
    the environ, as `werkzeug.request`; Flask drops it when the request ends); UNMATCHED when
    none matched. Each label set's children are kept, so a request costs two increments and
    one observation. Middlewares rather than Flask's hooks (five, with the request ids'): what
    the service adds to a bare Flask app's CPU a request went from about 60 to 30 us
    (docs/performance.md, item 46)."""

    def __init__(self, wsgi_app: WSGIApplication) -> None:
        self.wsgi_app = wsgi_app
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        answered: list[tuple[str, str, str]] = []

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            rule = getattr(environ.get("werkzeug.request"), "url_rule", None)
            route = rule.rule if rule is not None else UNMATCHED
            answered.append((route, environ["REQUEST_METHOD"], status[:3]))
            return start_response(status, headers, exc_info)

        body = self.wsgi_app(environ, start)
        if answered:
            self._count(answered[-1], time.perf_counter() - started)
        return body

    def _count(self, key: tuple[str, str, str], seconds: float) -> None:
        children = self._children.get(key)
        if children is None:
            children = self._children.setdefault(
                key, (REQUESTS.labels(*key), DURATION.labels(key[0]))
            )
        requests, duration = children
        requests.inc()
        duration.observe(seconds)


def install(app: Flask) -> None:
    """Count every request the app answers (errors included) and serve /metrics."""
    if _observe_batch not in BATCH_OBSERVERS:
        BATCH_OBSERVERS.append(_observe_batch)
    app.wsgi_app = CountedRequests(app.wsgi_app)  # type: ignore[method-assign]
    app.register_blueprint(bp)


class StoreCollector:
    """The store's figures, read when scraped (one snapshot per scrape)."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def collect(self) -> Iterator[Metric]:
        """Every store metric; only `smspay_store_up 0` when the store does not answer."""
        up = GaugeMetricFamily("smspay_store_up", "1 when the store answered this scrape, else 0.")
        try:
            ops = operations.snapshot(self.svc)
        except StoreUnavailable:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _wal(self.svc)
        yield from _transactions(ops)
        yield from _jobs(ops)
        yield from _outbox(ops)
        yield from _workers(ops)


def _wal(svc: Services) -> Iterable[Metric]:
    """The SQLite WAL's size (nothing on MongoDB, nor when the file cannot be looked at)."""
    if not isinstance(svc.store, SqliteStore):
        return
    try:
        size = svc.store.wal_bytes()
    except StoreUnavailable:
        return
    wal = GaugeMetricFamily(
        "smspay_store_wal_bytes",
        "Size of the SQLite WAL file; it grows past about 32 MiB only while checkpoints cannot "
        "copy it (a long read holds it).",
    )
    wal.add_metric([], size)
    yield wal


def _transactions(ops: operations.Operations) -> Iterable[Metric]:
    count = GaugeMetricFamily(
        "smspay_transactions_today",
        "Transactions created since local midnight (SMSPAY_TIMEZONE), by current state.",
        labels=["state"],
    )
    paise = GaugeMetricFamily(
        "smspay_transactions_today_paise",
        "Amount of the transactions created since local midnight, in paise, by current state.",
        labels=["state"],
    )
    failed = GaugeMetricFamily(
        "smspay_transactions_failed_today",
        "Transactions created since local midnight that failed, by reason.",
        labels=["reason"],
    )
    by_state = {s: [0, 0] for s in TransactionState}
    reasons: dict[str, int] = {}
    for grp in ops.today:
        by_state[grp.state][0] += grp.count
        by_state[grp.state][1] += grp.amount
        if grp.state is TransactionState.FAILED:
            reason = grp.reason or "unknown"
            reasons[reason] = reasons.get(reason, 0) + grp.count
    for state, (n, amount) in by_state.items():
        count.add_metric([state.value], n)
        paise.add_metric([state.value], amount)
    for reason, n in sorted(reasons.items()):
        failed.add_metric([reason], n)
    return count, paise, failed


def _jobs(ops: operations.Operations) -> Iterable[Metric]:
    jobs = GaugeMetricFamily(
        "smspay_jobs", "Jobs not done, by kind and state (pending, running, dead).",
        labels=["kind", "state"],
    )  # fmt: skip
    for grp in ops.jobs:
        jobs.add_metric([grp.kind, grp.status.value], grp.count)
    dead = GaugeMetricFamily("smspay_jobs_dead", "Jobs given up on (dead letters), every kind.")
    dead.add_metric([], sum(grp.count for grp in ops.jobs if grp.status is JobStatus.DEAD))
    due = GaugeMetricFamily(
        "smspay_jobs_oldest_due_seconds",
        "How long the most overdue pending job has been due; 0 when none is due.",
    )
    due.add_metric([], ops.oldest_due_seconds)
    return jobs, dead, due


def _outbox(ops: operations.Operations) -> Iterable[Metric]:
    sms = GaugeMetricFamily(
        "smspay_outbox_sms", "Status SMS in the outbox, by state.", labels=["state"]
    )
    for state, n in sorted(ops.sms.items()):
        sms.add_metric([state], n)
    return (sms,)


def _workers(ops: operations.Operations) -> Iterable[Metric]:
    states = GaugeMetricFamily(
        "smspay_workers",
        "Worker processes heard from in the last day: running, quiet (no heartbeat within"
        " SMSPAY_WORKER_QUIET_SECONDS) or stopped.",
        labels=["state"],
    )
    for state in ("running", "quiet", "stopped"):
        states.add_metric([state], sum(1 for w in ops.workers if w.state == state))
    since = GaugeMetricFamily(
        "smspay_worker_seconds_since_heartbeat",
        "Seconds since each worker that has not stopped last sent a heartbeat.",
        labels=["worker", "host"],
    )
    for w in ops.workers:
        if w.state != "stopped":
            since.add_metric([w.owner, w.host], w.seconds_since_beat)
    return states, since


class _ThisProcess:
    """This process's own metrics (the default registry), when not in multiprocess mode."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def registry(svc: Services) -> CollectorRegistry:
    """What one scrape serves: the request counters of every process, and the store's figures."""
    reg = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.MultiProcessCollector(reg)  # type: ignore[no-untyped-call]
    else:
        reg.register(_ThisProcess())
    reg.register(StoreCollector(svc))
    return reg


def _authorised(token: str) -> bool:
    sent = request.headers.get("Authorization", "")
    scheme, _, value = sent.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode(), token.encode()
    )


@bp.get("/metrics")
def metrics() -> Response:
    """The metrics, in Prometheus's text format; 401 without the token when one is set."""
    svc = services()
    token = svc.settings.metrics_token
    if token and not _authorised(token):
        return Response(
            '{"error": "a bearer token is required"}', 401,
            {"WWW-Authenticate": "Bearer", "Content-Type": "application/json"},
        )  # fmt: skip
    return Response(generate_latest(registry(svc)), 200, {"Content-Type": CONTENT_TYPE_LATEST})
