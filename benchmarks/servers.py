"""gunicorn servers of the store and the baseline, on local ports, and their workers' memory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from .settings import GUNICORN_CONF, ROOT

HOST = "127.0.0.1"
GUNICORN = Path(sys.executable).parent / "gunicorn"


@dataclass
class Server:
    """One gunicorn master and its workers."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def worker_pids(self) -> list[int]:
        """The master's children, read from /proc."""
        children = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # gone meanwhile
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == self.process.pid:
                children.append(int(entry.name))
        return sorted(children)

    def rss_mb(self) -> dict[int, float]:
        """Each worker's resident memory (VmRSS), in MB."""
        sizes = {}
        for pid in self.worker_pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    sizes[pid] = int(line.split()[1]) / 1024
        return sizes

    def terminate(self) -> None:
        """Ask gunicorn to shut down gracefully (SIGTERM), without waiting."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        self.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start(
    name: str,
    app_spec: str,
    environment: Callable[[str], dict[str, str]],
    *,
    workers: int,
    health: str,
    logs: Path,
    timeout: float = 120,
) -> Server:
    """Start ``gunicorn -c deploy/gunicorn.conf.py APP`` on a free port; wait for ``health``.

    ``environment(origin)`` gives the app's settings for its origin (the store builds its
    links from it). Workers are not recycled during a run (``--max-requests 0``): the
    configuration's recycling every ~1,000 requests would restart them every few
    seconds under load, and the memory read after the run would be a new worker's.
    """
    logs.mkdir(parents=True, exist_ok=True)
    last_error = ""
    for _ in range(3):  # another process may take the free port first
        port = free_port()
        origin = f"http://{HOST}:{port}"
        log = logs / f"{name}.log"
        env = {
            **os.environ,
            **environment(origin),
            "PORTAL_BIND": f"{HOST}:{port}",
            "PORTAL_WORKERS": str(workers),
            "PORTAL_LOG_LEVEL": "warning",
        }
        command = [str(GUNICORN), "-c", str(GUNICORN_CONF), "--max-requests", "0", app_spec]
        with log.open("wb") as output:
            process = subprocess.Popen(
                command, env=env, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT
            )
        server = Server(name, origin, process, log)
        if _wait(server, health, workers, timeout):
            return server
        last_error = server.log_tail()
        server.stop()
    raise RuntimeError(f"{name} did not start:\n{last_error}")


def _wait(server: Server, health: str, workers: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            answered = requests.get(server.url + health, timeout=5).status_code == 200
        except requests.RequestException:
            answered = False
        if answered and len(server.worker_pids()) >= workers:
            return True
        time.sleep(0.1)
    return False
