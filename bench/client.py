"""The load generator: C HTTP/1.1 connections spread over a few processes, each process one
non-blocking event loop (selectors) over raw sockets, sending requests prepared before timing.

Why not wrk: gunicorn's sync workers close the connection after every response, and wrk driven
by a Lua script that hands out unique requests stalls on such servers (a connection waits for an
answer that never comes, no error counted), so neither its counts nor its rate could be trusted.
This client keeps a connection open when the server allows it and opens a new one when the server
says `Connection: close` (the sync worker always does), counts every answer, checks every reply
body, and stops issuing at the count or the time cap but still waits for the answers in flight,
so "acknowledged" is exact. `bench.load` reports the client's own CPU time and measures a
minimal route with it in the same run, which shows how much headroom it has.
"""

from __future__ import annotations

import multiprocessing
import resource
import selectors
import socket
import statistics
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

RECV_SIZE = 65536
NO_ANSWER_SECONDS = 60  # after the time cap, answers still awaited are given up


def http_request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """One complete HTTP/1.1 request, as bytes on the wire (keep-alive asked for)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class Drive:
    """What one process (or, merged, the whole client) saw."""

    issued: int = 0
    ok: int = 0  # 200 and the reply says success
    not_200: int = 0
    bad_reply: int = 0  # 200 whose body is not a success
    io_errors: int = 0
    latencies: list[float] = field(default_factory=list)
    first_send: float = float("inf")
    last_answer: float = 0.0
    cpu_seconds: float = 0.0
    samples: list[str] = field(default_factory=list)  # a few failed replies, for the report
    new_connections: int = 0

    def merge(self, other: Drive) -> None:
        """Add another process's counts into this one."""
        self.issued += other.issued
        self.ok += other.ok
        self.not_200 += other.not_200
        self.bad_reply += other.bad_reply
        self.io_errors += other.io_errors
        self.latencies += other.latencies
        self.first_send = min(self.first_send, other.first_send)
        self.last_answer = max(self.last_answer, other.last_answer)
        self.cpu_seconds += other.cpu_seconds
        self.samples = (self.samples + other.samples)[:5]
        self.new_connections += other.new_connections

    @property
    def answered(self) -> int:
        """Requests that got a complete HTTP answer."""
        return self.ok + self.not_200 + self.bad_reply

    @property
    def seconds(self) -> float:
        """From the first request sent to the last answer received."""
        return max(self.last_answer - self.first_send, 1e-9)

    @property
    def rate(self) -> float:
        """Answered requests per second."""
        return self.answered / self.seconds

    def percentile(self, p: float) -> float:
        """Latency percentile in seconds (nearest rank)."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    @property
    def mean(self) -> float:
        """Mean latency in seconds."""
        return statistics.fmean(self.latencies) if self.latencies else float("nan")


class _Conn:
    """One client connection: at most one request in flight (no pipelining)."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.out = memoryview(b"")
        self.buf = bytearray()
        self.started = 0.0
        self.connecting = False


def _parse(buf: bytearray) -> tuple[int, bytes, bool] | None:
    """(status, body, server closes) once a whole response is in `buf`, else None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    length, close = 0, head[0].startswith("HTTP/1.0")
    for line in head[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection":
            close = value.strip().lower() == "close"
        elif name == "transfer-encoding":
            raise ValueError("chunked answers are not expected here")
    if len(buf) < end + 4 + length:
        return None
    body = bytes(buf[end + 4 : end + 4 + length])
    del buf[: end + 4 + length]
    return status, body, close


def _drive_one(
    port: int,
    requests: list[bytes],
    marker: bytes,
    connections: int,
    start_at: float,
    deadline: float,
    half_close: bool,
) -> Drive:
    """Send `requests` in order over `connections` connections; one event loop."""
    result = Drive()
    server_closes = False
    sel = selectors.DefaultSelector()
    pending = iter(requests)
    open_conns = 0

    def begin(conn: _Conn) -> bool:
        if time.monotonic() >= deadline:
            return False
        raw = next(pending, None)
        if raw is None:
            return False
        conn.started = time.monotonic()
        result.first_send = min(result.first_send, conn.started)
        result.issued += 1
        conn.out = memoryview(raw)
        if conn.sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            conn.sock, conn.connecting = sock, True
            result.new_connections += 1
            sel.register(sock, selectors.EVENT_WRITE, conn)
        else:
            sel.modify(conn.sock, selectors.EVENT_WRITE, conn)
        return True

    def finish(conn: _Conn) -> None:
        nonlocal open_conns
        if conn.sock is not None:
            sel.unregister(conn.sock)
            conn.sock.close()
            conn.sock = None
        open_conns -= 1

    def fail(conn: _Conn, why: str) -> None:
        result.io_errors += 1
        if len(result.samples) < 5:
            result.samples.append(why)
        if conn.sock is not None:
            sel.unregister(conn.sock)
            conn.sock.close()
            conn.sock = None
        conn.buf.clear()
        if not begin(conn):
            finish(conn)

    while time.monotonic() < start_at:
        time.sleep(min(0.01, max(0.0, start_at - time.monotonic())))
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    conns = [_Conn() for _ in range(connections)]
    for conn in conns:
        open_conns += 1
        if not begin(conn):
            open_conns -= 1
    while open_conns > 0:
        if time.monotonic() > deadline + NO_ANSWER_SECONDS:  # a server that stopped answering
            for conn in conns:
                if conn.sock is not None:
                    fail(conn, f"no answer {NO_ANSWER_SECONDS} s after the time cap")
            break
        for key, events in sel.select(timeout=1.0):
            conn = key.data
            sock = conn.sock
            assert sock is not None
            if events & selectors.EVENT_WRITE:
                if conn.connecting:
                    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        fail(conn, f"connect error {err}")
                        continue
                    conn.connecting = False
                try:
                    sent = sock.send(conn.out)
                except OSError as exc:
                    fail(conn, f"send: {exc}")
                    continue
                conn.out = conn.out[sent:]
                if not conn.out:
                    if half_close and server_closes:
                        sock.shutdown(socket.SHUT_WR)  # see `drive`
                    sel.modify(sock, selectors.EVENT_READ, conn)
                continue
            try:
                chunk = sock.recv(RECV_SIZE)
            except OSError as exc:
                fail(conn, f"recv: {exc}")
                continue
            if not chunk:
                fail(conn, "closed before the answer")
                continue
            conn.buf += chunk
            parsed = _parse(conn.buf)
            if parsed is None:
                continue
            status, body, close = parsed
            now = time.monotonic()
            result.latencies.append(now - conn.started)
            result.last_answer = max(result.last_answer, now)
            if status != 200:
                result.not_200 += 1
            elif marker not in body:
                result.bad_reply += 1
            else:
                result.ok += 1
            if status != 200 or marker not in body:
                if len(result.samples) < 5:
                    result.samples.append(f"{status} {body[:200]!r}")
            if close:
                server_closes = True
                sel.unregister(sock)
                sock.close()
                conn.sock = None
                conn.buf.clear()
            if not begin(conn):
                finish(conn)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    result.cpu_seconds = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    sel.close()
    return result


def _child(
    out: Connection,
    port: int,
    requests: list[bytes],
    marker: bytes,
    connections: int,
    start_at: float,
    deadline: float,
    half_close: bool,
) -> None:
    out.send(_drive_one(port, requests, marker, connections, start_at, deadline, half_close))
    out.close()


def drive(
    port: int,
    requests: list[bytes],
    marker: bytes,
    connections: int,
    processes: int,
    max_seconds: float,
    half_close: bool = True,
) -> Drive:
    """Send the requests (in order within each process) over `connections` connections from
    `processes` processes; stop issuing after `max_seconds`, but wait for every answer.

    Once the server has said it closes connections after each answer (gunicorn's sync worker
    does), each request is followed by a half-close: gunicorn lingers after its answer until the
    client closes too (close_graceful, up to 2 s), so a worker would otherwise wait for this
    Python client's event loop to come round, and the client's speed would cap the server's.
    `half_close=False` measures that wait: what a slow client costs a sync worker.
    """
    processes = max(1, min(processes, connections))
    ctx = multiprocessing.get_context("fork")  # the prepared requests are shared, not copied
    start_at = time.monotonic() + 0.3
    deadline = start_at + max_seconds
    children = []
    for p in range(processes):
        mine = connections // processes + (1 if p < connections % processes else 0)
        recv_end, send_end = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=_child,
            args=(
                send_end,
                port,
                requests[p::processes],
                marker,
                mine,
                start_at,
                deadline,
                half_close,
            ),  # fmt: skip
        )
        proc.start()
        send_end.close()
        children.append((proc, recv_end))
    total = Drive()
    for proc, recv_end in children:
        part: Drive = recv_end.recv()
        total.merge(part)
        proc.join()
    return total
