"""Load benchmark: signed, encrypted SMS through the real service under its production gunicorn
config, against a minimal Flask route under the same config in the same run.

Before timing it registers users (each a payer and a payee, money credited, a device
provisioned) in its own data dir and prepares N unique signed requests per run, each SMS with
its phone's next counter. It then starts gunicorn (gunicorn.conf.py, 2 sync workers, SQLite with
fsync on every commit, INFO logs and access log to a file) on a free loopback port and drives it
with C connections from bench/client.py, bounded by count and time. After each run it counts in
the store the transactions that reached SUCCESS and checks that the payers' wallets hold together
what they held before (money moved, none made or lost, the ledger sums to zero).

    .venv/bin/python -m bench.load                      # PAY via Tasker and Twilio, BAL
    .venv/bin/python -m bench.load --long-history       # + a payer with 100,000 payments

The machine's other load moves every absolute figure; compare ratios to the minimal route.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from app.bootstrap import Services
from bench import prepare
from bench.client import Drive, drive
from bench.serve import Gunicorn, cpu_used
from storage.models import TransactionState

MARKERS = {"pay": b"Paid Rs", "bal": b"Your balance is", "minimal": b'"ok"'}


@dataclass
class Run:
    """One timed run and what the store says of it."""

    name: str
    requests: int
    answered: int
    acknowledged: int  # 200 and a success reply
    not_200: int
    bad_reply: int
    io_errors: int
    seconds: float
    rate: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    server_cpu_ms: float  # per answered request
    server_cores: float  # CPU seconds of gunicorn per wall second
    client_cpu_ms: float
    success_rows: int | None = None  # PAY runs: transactions SUCCESS in the store
    other_rows: int | None = None  # PAY runs: transactions in any other state
    conserved: bool | None = None
    samples: tuple[str, ...] = ()
    kind: str = "minimal"
    lock: dict[str, float] | None = None  # SMS runs: the store's write-lock figures (/metrics)
    # SMS runs: each worker's share of the workers' CPU, largest first (kept-alive connections
    # may gather on one worker, which then caps the run at what one process can do)
    worker_shares: tuple[float, ...] = ()

    @property
    def counts_right(self) -> bool:
        """PAY: SUCCESS rows = acknowledged PAYs; BAL: no transaction; nothing else written,
        money conserved."""
        if self.kind == "minimal":
            return True
        expected = self.acknowledged if self.kind == "pay" else 0
        return self.success_rows == expected and self.other_rows == 0 and bool(self.conserved)


def _run(name: str, d: Drive, requests: int, cpu: float) -> Run:
    ms = 1000.0
    return Run(
        name=name, requests=requests, answered=d.answered, acknowledged=d.ok, not_200=d.not_200,
        bad_reply=d.bad_reply, io_errors=d.io_errors, seconds=d.seconds, rate=d.rate,
        p50_ms=d.percentile(50) * ms, p95_ms=d.percentile(95) * ms, p99_ms=d.percentile(99) * ms,
        max_ms=max(d.latencies, default=0.0) * ms, server_cpu_ms=cpu / max(d.answered, 1) * ms,
        server_cores=cpu / d.seconds, client_cpu_ms=d.cpu_seconds / max(d.answered, 1) * ms,
        samples=tuple(d.samples),
    )  # fmt: skip


def minimal(args: argparse.Namespace, run_dir: Path, label: str) -> Run:
    """The baseline: bench/minimal.py under the same gunicorn config."""
    env = prepare.bench_env(str(run_dir / "minimal-var"))
    with Gunicorn("bench.minimal:app", env, args.workers, run_dir / "minimal.log") as g:
        reqs = prepare.minimal_requests(args.minimal_requests)
        cpu0 = g.cpu()
        d = drive(
            g.port,
            reqs,
            MARKERS["minimal"],
            args.connections,
            args.processes,
            args.seconds,
            not args.slow_close,
        )
        cpu = cpu_used(cpu0, g.cpu())
        if args.wrk and shutil.which("wrk"):  # a second opinion on the client's headroom
            label += f", wrk {wrk_rate(g.port, args.connections):.0f}/s"
    return _run(label, d, len(reqs), cpu)


def wrk_rate(port: int, connections: int, seconds: int = 5) -> float:
    """Requests/s wrk reaches on the minimal route (the same request over and over)."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", f"http://127.0.0.1:{port}/healthz"],
        capture_output=True, text=True, timeout=seconds + 30,
    ).stdout  # fmt: skip
    rate = [line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec:")]
    return float(rate[0]) if rate else float("nan")


def sms_run(
    args: argparse.Namespace,
    g: Gunicorn,
    svc: Services,
    pop: prepare.Population,
    name: str,
    route: str,
    kind: str,
    payers: list[int] | None = None,
) -> Run:
    """One timed run of PAY (or BAL) SMS through one route, then the store's count."""
    reqs = prepare.sms_requests(pop, route, kind, args.requests, payers)
    before = pop.total(svc)
    since = time.time()
    cpu0 = g.cpu()
    lock0 = lock_figures(g.port)
    # one phone's SMS from one client process, sent in counter order: two processes drifting
    # apart would push its counters past the replay window (64) and the service would refuse them
    processes = 1 if payers is not None and len(payers) == 1 else args.processes
    with sampling(args, g, name):
        d = drive(
            g.port,
            reqs,
            MARKERS[kind],
            args.connections,
            processes,
            args.seconds,
            not args.slow_close,
        )
    cpu1 = g.cpu()
    run = _run(name, d, len(reqs), cpu_used(cpu0, cpu1))
    run.lock = {k: v - lock0.get(k, 0.0) for k, v in lock_figures(g.port).items()}
    run.worker_shares = worker_shares(cpu0, cpu1, g.pids()[0])
    groups = svc.store.read(lambda uow: uow.transaction_groups(since, time.time() + 60))
    mine = [grp for grp in groups if grp.channel == route]
    run.success_rows = sum(grp.count for grp in mine if grp.state is TransactionState.SUCCESS)
    run.other_rows = sum(grp.count for grp in mine if grp.state is not TransactionState.SUCCESS)
    total = svc.store.read(lambda uow: uow.total_balance())
    run.conserved = pop.total(svc) == before and total == 0
    run.kind = kind
    return run


def worker_shares(
    before: dict[int, float], after: dict[int, float], master: int
) -> tuple[float, ...]:
    """Each worker's share of the CPU the workers used between two readings, largest first."""
    used = [t - before.get(pid, 0.0) for pid, t in after.items() if pid != master]
    total = sum(used)
    return tuple(sorted((u / total for u in used), reverse=True)) if total > 0 else ()


def held_ms(lock: dict[str, float]) -> float:
    """Milliseconds the writers' lock was held a unit of work, from a run's lock figures."""
    units = lock.get("smspay_store_batch_units_total", 0)
    return lock.get("smspay_store_write_lock_held_seconds_total", 0) / units * 1000 if units else 0


LOCK_METRICS = (
    "smspay_store_batches_total",
    "smspay_store_batch_units_total",
    "smspay_store_write_lock_wait_seconds_total",
    "smspay_store_write_lock_held_seconds_total",
    "smspay_store_write_lock_cpu_seconds_total",
)


def lock_figures(port: int) -> dict[str, float]:
    """The store's group-commit counters, added up over gunicorn's workers by /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    found = {name: 0.0 for name in LOCK_METRICS}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in found:
                found[sample.name] += sample.value
    return found


@contextlib.contextmanager
def sampling(args: argparse.Namespace, g: Gunicorn, name: str) -> Iterator[None]:
    """With --py-spy: sample one worker during the run into DIR/<run>.txt (collapsed stacks)."""
    if not args.py_spy:
        yield
        return
    out = Path(args.dir) / (name.replace(" ", "-").replace(",", "") + ".txt")
    spy = subprocess.Popen(
        [args.py_spy, "record", "--pid", str(g.pids()[1]), "--rate", "250", "--format", "raw",
         "--nonblocking", "--gil", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)  # py-spy attaches
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file and exits
        spy.wait(timeout=30)


def fresh_runs(args: argparse.Namespace, run_dir: Path) -> list[Run]:
    """PAY (and BAL) from many payers to many payees, in a store with only them in it.

    Each route's PAY run has payers of its own, so that both start alike: every PAY reads its
    payer's recent payments for the risk rules (up to 100), and a route run second on the
    payers of the first would read N / payers more a PAY (20 by default) than the first did."""
    routes = ("tasker", "twilio") if args.route == "both" else (args.route,)
    env = prepare.bench_env(str(run_dir / "var"))
    svc = prepare.services(env)
    pop = prepare.populate(svc, args.payers * len(routes), rupees=args.requests * 4)
    runs = []
    with Gunicorn("wsgi:app", env, args.workers, run_dir / "gunicorn.log", args.sync_delay_ms) as g:
        for i, route in enumerate(routes):
            own = list(range(i * args.payers, (i + 1) * args.payers))
            runs.append(sms_run(args, g, svc, pop, f"PAY via {route}", route, "pay", own))
        if args.bal:
            first = list(range(args.payers))
            runs.append(sms_run(args, g, svc, pop, "BAL via tasker", "tasker", "bal", first))
    svc.store.close()
    return runs


def history_runs(args: argparse.Namespace, run_dir: Path) -> list[Run]:
    """One payer with a long history against one without, in the same (large) store."""
    env = prepare.bench_env(str(run_dir / "history-var"))
    svc = prepare.services(env)
    pop = prepare.populate(svc, max(args.payers, 3), rupees=args.requests * 2)
    prepare.credit(svc, pop, 0, args.history * prepare.AMOUNT // 100 + 1)
    took = prepare.preload_history(svc, pop, 0, args.history, args.history_today)
    print(f"(wrote {args.history:,} earlier payments of one payer in {took:.1f} s)", flush=True)
    runs = []
    with Gunicorn("wsgi:app", env, args.workers, run_dir / "history.log", args.sync_delay_ms) as g:
        for who, label in ((1, "no history"), (0, f"{args.history // 1000}k history")):
            name = f"PAY via tasker, 1 payer, {label}"
            runs.append(sms_run(args, g, svc, pop, name, "tasker", "pay", payers=[who]))
    svc.store.close()
    return runs


def targets(runs: list[Run], baseline: float) -> list[str]:
    """Each SMS route's PAY run against 1,000 req/s, a p99 under 100 ms and a 0.25 ratio; the
    long-history run against its pair without history (at most 20 % slower)."""
    lines = []
    for r in runs:
        if r.name.startswith("PAY via") and "payer" not in r.name:
            ratio = r.rate / baseline
            met = r.rate >= 1000 and r.p99_ms < 100 and ratio >= 0.25
            lines.append(
                f"  {r.name:<36} {r.rate:7.0f} req/s (>= 1,000), p99 {r.p99_ms:5.1f} ms (< 100),"
                f" ratio {ratio:.3f} (>= 0.25): {'met' if met else 'not met'}"
            )
    pair = [r for r in runs if r.name.startswith("PAY via tasker, 1 payer")]
    if len(pair) == 2 and pair[0].rate:
        kept = pair[1].rate / pair[0].rate  # the history may cost at most 20 %
        verdict = "met" if kept >= 0.8 else "not met"
        lines.append(f"  {'one payer, long history / none':<36} {kept:7.2f} (>= 0.80): {verdict}")
    return lines


def report(runs: list[Run], baseline: float) -> str:
    """The summary table."""
    head = (
        f"{'run':<36} {'req/s':>7} {'ratio':>6} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7}"
        f" {'errors':>9} {'SUCCESS/ack':>12} {'srv CPU':>8} {'cores':>5} {'cli CPU':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in runs:
        errors = f"{r.not_200}/{r.bad_reply}/{r.io_errors}"
        rows = "-" if r.kind != "pay" else f"{r.success_rows}/{r.acknowledged}"
        lines.append(
            f"{r.name:<36} {r.rate:7.0f} {r.rate / baseline:6.3f} {r.p50_ms:7.1f} {r.p95_ms:7.1f}"
            f" {r.p99_ms:7.1f} {r.max_ms:7.1f} {errors:>9} {rows:>12} {r.server_cpu_ms:8.2f}"
            f" {r.server_cores:5.2f} {r.client_cpu_ms:8.3f}"
        )
    lines.append(
        "latencies in ms; errors = not 200 / 200 without success / connection errors; srv CPU and"
        " cli CPU = ms of CPU per answered request (gunicorn master + workers; the load client);"
        " cores = gunicorn CPU seconds per wall second; ratio = req/s over the minimal route's"
        " mean in this run"
    )
    lines.append("\nthe store's write lock (group commit), per unit of work:")
    for r in runs:
        if r.lock and r.lock["smspay_store_batch_units_total"]:
            units = r.lock["smspay_store_batch_units_total"]
            per_commit = units / max(r.lock["smspay_store_batches_total"], 1)
            waited = r.lock["smspay_store_write_lock_wait_seconds_total"] / units * 1000
            held = held_ms(r.lock)
            cpu = r.lock["smspay_store_write_lock_cpu_seconds_total"] / units * 1000
            shares = "/".join(f"{x:.2f}" for x in r.worker_shares)
            lines.append(
                f"  {r.name:<36} {per_commit:5.2f} units a commit, waited {waited:5.2f} ms,"
                f" held {held:5.2f} ms (CPU {cpu:4.2f}); workers' CPU {shares}"
            )
    lines += ["", "against the targets (docs/performance.md):", *targets(runs, baseline)]
    failed = [r for r in runs if r.samples]
    if failed:  # why: a refusal's reply, a status, a connection's end
        lines.append("\nanswers that were not a success (the first few of each run):")
        lines += [f"  {r.name}: {sample}" for r in failed for sample in r.samples]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 if a count is wrong."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--route", choices=("tasker", "twilio", "both"), default="both")
    parser.add_argument("--requests", type=int, default=4000, help="SMS per run (N)")
    parser.add_argument("--minimal-requests", type=int, default=20000)
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections (C)")
    parser.add_argument("--seconds", type=float, default=30.0, help="time cap of each run")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--payers", type=int, default=200, help="payers of each route's run")
    parser.add_argument("--processes", type=int, default=2, help="load client processes")
    parser.add_argument("--bal", action="store_true", help="also a run of BAL via Tasker")
    parser.add_argument("--long-history", action="store_true", help="also the history runs")
    parser.add_argument("--history", type=int, default=100_000, help="earlier payments")
    parser.add_argument("--history-today", type=int, default=20_000, help="of them today")
    parser.add_argument(
        "--slow-close", action="store_true", help="no half-close: a worker waits for the client"
    )
    parser.add_argument("--wrk", action="store_true", help="wrk on the minimal route too")
    parser.add_argument(
        "--sync-delay-ms", type=int, default=0,
        help="a slower disk: the service's every fsync returns this much later (needs strace)",
    )  # fmt: skip
    parser.add_argument("--py-spy", help="path of py-spy: sample a worker in each SMS run")
    parser.add_argument("--dir", help="keep data and logs here (default: a temporary dir)")
    parser.add_argument("--json", help="also write the runs to this file")
    args = parser.parse_args(argv)
    if args.seconds > 240:  # prepared Tasker requests carry their time; the service allows 300 s
        parser.error("--seconds is at most 240: a Tasker request older than 300 s is refused")
    if args.sync_delay_ms and not shutil.which("strace"):
        parser.error("--sync-delay-ms runs the service under strace: install it")
    if args.py_spy and not args.dir:
        parser.error("--py-spy writes its samples into --dir")

    if args.dir and Path(args.dir).exists() and any(Path(args.dir).iterdir()):
        parser.error(f"{args.dir} is not empty: each run starts from nothing")
    run_dir = Path(args.dir or tempfile.mkdtemp(prefix="smspay-bench-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; {args.workers} gunicorn"
        f" workers, {args.connections} connections, {args.processes} client processes, N ="
        f" {args.requests}, cap {args.seconds:.0f} s per run; data in {run_dir}"
        + (f"; every fsync {args.sync_delay_ms} ms slower" if args.sync_delay_ms else ""),
        flush=True,
    )
    try:
        runs = [minimal(args, run_dir, "minimal route (before)")]
        runs += fresh_runs(args, run_dir)
        if args.long_history:
            runs += history_runs(args, run_dir)
        runs.append(minimal(args, run_dir, "minimal route (after)"))
    finally:
        if not args.dir:
            shutil.rmtree(run_dir, ignore_errors=True)
    baseline = (runs[0].rate + runs[-1].rate) / 2
    print(report(runs, baseline))
    wrong = [r for r in runs if not r.counts_right]
    for r in runs:
        if r.answered < r.requests:
            print(f"  {r.name}: the time cap ended it after {r.answered} of {r.requests}")
        for sample in r.samples[:2]:
            print(f"  {r.name}: {sample}")
    if args.json:
        Path(args.json).write_text(
            json.dumps([{**asdict(r), "counts_right": r.counts_right} for r in runs], indent=1)
        )
    for r in wrong:
        print(f"COUNTS: {r.name}: {r.answered}/{r.requests} answered, {r.success_rows} SUCCESS"
              f" rows, {r.acknowledged} acknowledged, {r.other_rows} other, conserved"
              f" {r.conserved}", file=sys.stderr)  # fmt: skip
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
