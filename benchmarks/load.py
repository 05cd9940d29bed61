"""Load generators: wrk (the measurement), and a plain HTTP client (the smoke run).

Both give a :class:`Sample`: requests per second, the 50th and 99th percentile
latency, and how many answers were errors.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .settings import BENCHMARKS

WRK_SCRIPT = BENCHMARKS / "wrk.lua"


@dataclass(frozen=True)
class Request:
    """One request, repeated by the load generator."""

    url: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    #: A form, already encoded (application/x-www-form-urlencoded).
    body: str | None = None


@dataclass(frozen=True)
class Sample:
    """The figures of one load run."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    #: Answers other than 2xx/3xx, and connection errors and time-outs.
    errors: int
    #: Every status seen and how often (the plain client only; wrk counts errors).
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed: `make bench` installs it (apt-get install wrk)")
    return found


def wrk_version() -> str:
    done = subprocess.run([wrk_path(), "-v"], capture_output=True, text=True)
    return (done.stdout + done.stderr).split("Copyright")[0].strip() or "wrk"


def run_wrk(
    request: Request, *, duration: float, threads: int, connections: int, timeout: float = 10
) -> Sample:
    """Run wrk for ``duration`` seconds; ``--latency`` figures come from the script's summary."""
    command = [
        wrk_path(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        f"--timeout={max(1, round(timeout))}s",
        "--latency",
        "-s",
        str(WRK_SCRIPT),
    ]
    for name, value in request.headers.items():
        command += ["-H", f"{name}: {value}"]
    command.append(request.url)
    env = {**os.environ, "BENCH_METHOD": request.method, "BENCH_BODY": request.body or ""}
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=duration + timeout + 60
    )
    line = next(
        (x for x in done.stdout.splitlines() if x.startswith("BENCH_RESULT ")),
        None,
    )
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}")
    figures = json.loads(line.removeprefix("BENCH_RESULT "))
    errors = sum(
        figures[key]
        for key in ("status_errors", "connect_errors", "read_errors", "write_errors", "timeouts")
    )
    return Sample(
        requests=figures["requests"],
        seconds=figures["duration_us"] / 1e6,
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        errors=errors,
    )


def run_plain(request: Request, *, requests: int, connections: int, timeout: float = 30) -> Sample:
    """Send ``requests`` requests over ``connections`` keep-alive connections (threads)."""
    parts = urlsplit(request.url)
    host = parts.hostname or "127.0.0.1"
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    body = request.body.encode() if request.body is not None else None
    headers = dict(request.headers)
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    share = [requests // connections + (i < requests % connections) for i in range(connections)]

    def client(count: int) -> None:
        mine: list[tuple[float, int]] = []
        connection = http.client.HTTPConnection(host, parts.port, timeout=timeout)
        for _ in range(count):
            began = time.perf_counter()
            try:
                connection.request(request.method, path, body=body, headers=headers)
                answer = connection.getresponse()
                answer.read()
                status = answer.status
            except (OSError, http.client.HTTPException):
                status = 0  # counted as an error; the next request opens a new connection
                connection.close()
                connection = http.client.HTTPConnection(host, parts.port, timeout=timeout)
            mine.append((time.perf_counter() - began, status))
        connection.close()
        with lock:
            for took, status in mine:
                latencies.append(took)
                statuses[status] = statuses.get(status, 0) + 1

    began = time.perf_counter()
    workers = [threading.Thread(target=client, args=(count,)) for count in share if count]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - began
    latencies.sort()
    done = len(latencies)
    failed = sum(n for status, n in statuses.items() if not 200 <= status < 400)
    return Sample(
        requests=done,
        seconds=seconds,
        p50_ms=statistics.median(latencies) * 1000 if latencies else 0.0,
        p99_ms=latencies[min(done - 1, int(done * 0.99))] * 1000 if latencies else 0.0,
        errors=failed,
        statuses=statuses,
    )
