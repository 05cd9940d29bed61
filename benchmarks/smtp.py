"""A slow local mail server: the sign-in request is measured while each message takes seconds.

A request never talks to the mail server (the outbox queues its message, the
mail thread sends it after the commit), so a slow server must not show in the
sign-in request's figures. The harness checks that promise rather than assume
it: the store runs with its mail thread (``CUSTOMER_PORTAL_MAIL_DISPATCH =
"thread"``, the default) and sends to this server, which takes ``delay``
seconds to accept each message, like a remote server under load.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiosmtpd.controller import Controller

from .servers import HOST, free_port


class SlowServer:
    """Accepts every message after ``delay`` seconds, and counts them."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.received = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.delay)
        with self.lock:
            self.received += 1
        return "250 Message accepted"


@contextmanager
def slow_mail_server(delay: float) -> Iterator[tuple[int, SlowServer]]:
    """Run a :class:`SlowServer` on a free local port; yield the port and the server."""
    handler = SlowServer(delay)
    controller = Controller(handler, hostname=HOST, port=free_port())
    controller.start()
    try:
        yield controller.port, handler
    finally:
        controller.stop()
