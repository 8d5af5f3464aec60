"""gunicorn for the benchmark: the production config (gunicorn.conf.py) on a free loopback port,
and the CPU time its processes used, read from /proc."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def children(pid: int) -> list[int]:
    """Direct children of a process (gunicorn's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return found


class Gunicorn:
    """`gunicorn --config gunicorn.conf.py APP` on 127.0.0.1, its log (access lines too) in a
    file, as a process manager would run it."""

    def __init__(
        self, app: str, env: dict[str, str], workers: int, log: Path, sync_delay_ms: int = 0
    ) -> None:
        self.app, self.env, self.workers, self.log_path = app, env, workers, log
        self.sync_delay_ms = sync_delay_ms
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Gunicorn:
        log = self.log_path.open("ab")
        command = [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", "--workers",
                   str(self.workers), "--bind", f"127.0.0.1:{self.port}", self.app]  # fmt: skip
        if self.sync_delay_ms:  # a slower disk: every fsync and fdatasync returns that much later
            command = [
                "strace", "-f", "-qq", "--seccomp-bpf", "-o", "/dev/null",
                "-e", "trace=fsync,fdatasync",
                "-e", f"inject=fsync,fdatasync:delay_exit={self.sync_delay_ms * 1000}", *command,
            ]  # fmt: skip
        self.proc = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1):
                    pass
                if len(self.pids()) == 1 + self.workers:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"gunicorn ({self.app}) did not start:\n{tail}")
            time.sleep(0.1)
        return self

    def master(self) -> int | None:
        """gunicorn's master: the process started, or its child under strace."""
        assert self.proc is not None
        if not self.sync_delay_ms:
            return self.proc.pid
        under = children(self.proc.pid)
        return under[0] if under else None

    def pids(self) -> list[int]:
        """The master and its workers."""
        master = self.master()
        return [] if master is None else [master, *children(master)]

    def cpu(self) -> dict[int, float]:
        """CPU seconds used so far, by process."""
        return {pid: cpu_seconds(pid) for pid in self.pids()}

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        master = self.master()
        if self.proc.poll() is None:
            if master is not None:  # graceful: workers finish their request (strace then ends)
                os.kill(master, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20 if master is not None else 0.1)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between two readings (a process that restarted counts from zero)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())
