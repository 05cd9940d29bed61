"""Mail servers for the tests: a real local SMTP server, and one that never answers.

:class:`SMTPServer` runs aiosmtpd's ``Controller`` on 127.0.0.1 and keeps every
message it receives. It can be stopped and started again on the same port, so a
test can take the mail server down and bring it back. :class:`SilentServer`
accepts TCP connections and never sends the SMTP greeting: the server that hangs
a sender without a time-out. :func:`link_in` reads the link out of a message.
"""

from __future__ import annotations

import email
import email.policy
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from types import TracebackType
from typing import Any, TypeVar, cast

import pytest
from aiosmtpd.controller import Controller

HOST = "127.0.0.1"
LINK = re.compile(r"https?://[^\s<>\"']+")

T = TypeVar("T")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 where nothing listens (at the moment of asking)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


#: How long to wait for another thread (the mail thread, the SMTP server's) to get
#: something done. Waiting ends as soon as it is done, so a passing run never waits it
#: out; it is long because a loaded machine may take seconds to schedule a thread.
PATIENCE = 30.0


def wait_until(check: Callable[[], T], timeout: float = PATIENCE) -> T:
    """Call ``check`` until it returns something true, for up to ``timeout`` seconds.

    Returns the last result (false if time ran out), for the caller to assert on.
    """
    deadline = time.monotonic() + timeout
    result = check()
    while not result and time.monotonic() < deadline:
        time.sleep(0.02)
        result = check()
    return result


@dataclass(frozen=True)
class Received:
    """One message as the SMTP server got it: the envelope and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


class Inbox:
    """The aiosmtpd handler: accepts every message and keeps it."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self._lock:
            self.received.append(
                Received(
                    mail_from=envelope.mail_from,
                    rcpt_tos=list(envelope.rcpt_tos),
                    message=cast(EmailMessage, message),
                )
            )
        return "250 Message accepted for delivery"


class SMTPServer:
    """aiosmtpd on ``127.0.0.1:port`` (a free port unless given); keeps what it receives."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.inbox = Inbox()
        self._controller: Controller | None = None

    @property
    def received(self) -> list[Received]:
        """Every message received so far, oldest first (across restarts)."""
        with self.inbox._lock:
            return list(self.inbox.received)

    def start(self) -> None:
        """Start listening (again) on the same port."""
        if self._controller is None:
            controller = Controller(self.inbox, hostname=HOST, port=self.port)
            controller.start()
            self._controller = controller

    def stop(self) -> None:
        """Stop listening: connections to the port are refused until :meth:`start`."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def wait_for(self, count: int, timeout: float = PATIENCE) -> list[Received]:
        """Return the received messages once there are ``count``, or after ``timeout`` s."""
        wait_until(lambda: len(self.received) >= count, timeout)
        return self.received


class SilentServer:
    """Listens on ``127.0.0.1:port``, accepts connections and never says a word.

    Use it as a context manager: the listening socket and every accepted
    connection are closed on exit.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener = socket.create_server((HOST, self.port))
        self._listener.settimeout(0.05)
        self._thread = threading.Thread(target=self._accept, name="silent-smtp", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections.append(connection)

    def wait_for_connection(self, timeout: float = PATIENCE) -> bool:
        """Tell whether a client has connected (waiting up to ``timeout`` seconds)."""
        return bool(wait_until(lambda: len(self.connections) > 0, timeout))

    def hang_up(self) -> None:
        """Close the accepted connections: the client sees the server go away."""
        with self._lock:
            connections, self.connections = self.connections, []
        for connection in connections:
            connection.close()

    def close(self) -> None:
        """Stop accepting, close the listening socket and every connection."""
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()
        self.hang_up()

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def text_part(message: EmailMessage, subtype: str = "plain") -> str:
    """Return the decoded ``text/<subtype>`` part of ``message``."""
    part = message.get_body((subtype,))
    assert part is not None, f"no text/{subtype} part in the message"
    assert part.get_content_type() == f"text/{subtype}"
    return cast(str, cast(EmailMessage, part).get_content())


def link_in(message: EmailMessage) -> str:
    """Return the one link of the message's text part; fail if there is not exactly one."""
    links = set(LINK.findall(text_part(message, "plain")))
    assert len(links) == 1, f"expected one link in the message, found {sorted(links)}"
    return links.pop()


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    """A running aiosmtpd server on 127.0.0.1 and a free port, stopped after the test."""
    server = SMTPServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
