"""A throw-away Redis server for the test session (Debian's ``redis-server``), on a free port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time

from .smtp import free_port


def find_redis_server() -> str | None:
    """Return the path of ``redis-server``, or ``None``."""
    return shutil.which("redis-server")


class RedisServer:
    """One Redis server on 127.0.0.1, keeping nothing on disk."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self.port = free_port()
        self.root = tempfile.mkdtemp(prefix="portal-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.executable,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.root,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def ping(self) -> bool:
        """Tell whether the server answers PING."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)
