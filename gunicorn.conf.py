"""gunicorn settings for `make run` and the Procfile; each worker opens its own store after fork."""

import logging
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

# Two processes for two cores (each on a core of its own, pre_fork below), sixteen threads each:
# the threads of a process that reach the store together share one commit and one fsync
# (storage/sqlite/group_commit.py), so more threads make larger batches and less work a payment
# (with the threads run as batch work, post_fork below): at 32 connections, 4 threads made
# batches of 1.9 units, 8 of 3.7 and 16 of 6.3-7.0, and PAY via Tasker went 434-559 -> 561-634
# -> 645-743 req/s. A connection kept alive waits in the worker's poller, not in a thread.
# docs/performance.md has the runs behind these numbers.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "16"))
worker_class = "gthread"
# A listening socket per worker (SO_REUSEPORT): the kernel spreads new connections evenly over the
# workers. With one shared socket, whichever worker was idle took them, and kept-alive connections
# stayed where they landed: splits of 0.70/0.30 of the work, the busier process at its GIL's limit.
# Paired runs: PAY via Tasker 500-606 req/s against 363-520, p99 92-109 ms against 116-171. The
# price: a worker that exits drops the connections still queued on its own socket.
reuse_port = True
timeout = 30
graceful_timeout = 10
accesslog = "-"
logger_class = "app.access_log.MaskingLogger"  # phone numbers masked in the access log
# No preload: nothing is shared across fork, each worker builds its own connections.
preload_app = False

# /metrics adds up the request counters of every worker process (prometheus-client's multiprocess
# mode): each process writes its counters to files in this directory, which must be set before
# any worker starts and must not hold files of an earlier run. An operator may choose it; else it
# is a fresh temporary directory, removed when gunicorn exits. See app/web/metrics.py.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_own_metrics_dir = ""
if not os.environ.get(MULTIPROC_ENV):
    _own_metrics_dir = tempfile.mkdtemp(prefix="smspay-metrics-")
    os.environ[MULTIPROC_ENV] = _own_metrics_dir


def when_ready(server: Any) -> None:
    """Say where it listens: with `reuse_port` the workers bind, so gunicorn's own "Listening
    at" line names no address."""
    where = ", ".join(
        f"unix:{a}" if isinstance(a, str) else f"http://{a[0]}:{a[1]}" for a in server.cfg.address
    )
    server.log.info("Listening at %s (a socket per worker)", where)


def pin_cores() -> bool:
    """Whether each worker is to run on a core of its own (WEB_PIN_CPUS=0 turns it off)."""
    return hasattr(os, "sched_setaffinity") and os.environ.get("WEB_PIN_CPUS") != "0"


def pre_fork(server: Any, worker: Any) -> None:
    """Choose the core of the worker about to start, one no live worker holds, when there are
    as many workers as cores this process may use (one worker a core, as WEB_CONCURRENCY's
    default means on a machine or container of two cores): the service then has the cores to
    itself. With more cores than workers (a shared host whose CPU quota is not a cpuset, another
    service beside it) or fewer, the kernel places the workers, as it would without this.

    A process runs one thread at a time (its GIL), so one core is all a worker can use. On a
    core of its own, the leader of a batch (which holds the store's writers' lock) lets the GIL
    go for each SQLite statement and usually takes it back before the thread it woke has run:
    that thread waits for the same core, and under SCHED_BATCH (post_fork) it does not preempt
    the leader. Left to the kernel, it ran at once on the other core and the leader waited for
    it. Paired runs on 2 cores (`bench.compare`): PAY via Tasker 1.12-1.32 times the payments a
    second, via Twilio 1.14-1.27, the writers' lock held 0.73-0.88 of the time a unit, the same
    CPU a payment or less (docs/performance.md, item 36). A worker that replaces a dead one
    takes the core it left free."""
    worker.cpu = None
    if not pin_cores():
        return
    cores = sorted(os.sched_getaffinity(0))  # the cores this machine or container allows
    if len(cores) < 2 or server.num_workers != len(cores):
        return
    # the core fewest live workers hold: a free one; during a reload, where the new workers
    # start before the old ones stop, the new ones spread over the cores as the old ones did
    held = Counter(getattr(w, "cpu", None) for w in server.WORKERS.values())
    worker.cpu = min(cores, key=lambda core: held[core])


def post_fork(server: Any, worker: Any) -> None:
    """Run on the core `pre_fork` chose, if any; and run the worker's threads as batch work
    (SCHED_BATCH; threads made later inherit both): a thread woken by another one of its process
    (the next leader of a batch, a caller whose unit was committed) then does not preempt the
    waker, which usually still holds the GIL; it waits for a free core or the next tick instead
    of stalling the whole process until the waker is scheduled again. Under load the writers'
    lock was held 1.7-1.9 ms a PAY against 1.4-1.5 with it, for the same CPU
    (docs/performance.md). Linux only; elsewhere, or if refused, the default policy stays."""
    if getattr(worker, "cpu", None) is not None:
        try:
            os.sched_setaffinity(0, {worker.cpu})
            server.log.info("worker %s runs on core %s", worker.pid, worker.cpu)
        except OSError as exc:
            server.log.warning("worker %s runs on any core: %s", worker.pid, exc)
    if not hasattr(os, "SCHED_BATCH") or os.environ.get("WEB_SCHED_BATCH") == "0":
        return
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except OSError as exc:
        server.log.warning("worker %s keeps the default scheduling policy: %s", worker.pid, exc)


def on_starting(server: object) -> None:
    """Refuse to start on a database this release cannot use (a deploy error, not an outage)."""
    metrics_dir = Path(os.environ[MULTIPROC_ENV])
    metrics_dir.mkdir(parents=True, exist_ok=True)
    for stale in metrics_dir.glob("*.db"):  # counters of processes of an earlier run
        stale.unlink()

    from app import create_app
    from storage.errors import SchemaMissing, SchemaTooNew, StoreUnavailable

    store = create_app().extensions["smspay"].store
    try:
        store.ping()
    except (SchemaMissing, SchemaTooNew) as exc:
        logging.getLogger("gunicorn.error").error("%s", exc)
        on_exit(server)
        sys.exit(1)
    except StoreUnavailable as exc:  # an outage: start anyway, webhooks answer 503 until it ends
        logging.getLogger("gunicorn.error").warning("store unavailable at start: %s", exc)
    finally:
        store.close()


def child_exit(server: object, worker: Any) -> None:
    """A worker process ended: its counters stay counted; its live gauges are dropped."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: object) -> None:
    """Remove the metrics directory gunicorn made for itself (never one an operator chose)."""
    if _own_metrics_dir:
        shutil.rmtree(_own_metrics_dir, ignore_errors=True)
