"""A throw-away localstripe server for the test session: a stateful fake of Stripe's API.

localstripe (from the registries) answers the real ``stripe`` SDK on a local
port and serves a mock of Stripe.js v3 at ``/js.stripe.com/v3/``, so card
entry runs in the browser as it would against Stripe. It keeps everything in
memory (``--from-scratch``): each session starts empty.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from .smtp import HOST, free_port

#: The secret key the SDK sends; localstripe accepts any ``sk_test_`` key.
SECRET_KEY = "sk_test_portal_suite"
PUBLISHABLE_KEY = "pk_test_portal_suite"
#: The signing secret of the tests' webhook endpoint.
SIGNING_SECRET = "whsec_portal_suite"


def find_localstripe() -> str | None:
    """Return the path of the ``localstripe`` command of this environment, or ``None``."""
    beside = Path(sys.executable).with_name("localstripe")
    return str(beside) if beside.exists() else shutil.which("localstripe")


class StripeServer:
    """One localstripe server on 127.0.0.1."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The API base to give the SDK (``stripe.api_base``)."""
        return f"http://{HOST}:{self.port}"

    @property
    def js_url(self) -> str:
        """Where the mock of Stripe.js v3 is served."""
        return f"{self.url}/js.stripe.com/v3/"

    def settings(self) -> dict[str, str]:
        """The portal settings of docs/stripe.md, pointed at this server, with the tests' keys."""
        return {
            "CUSTOMER_PORTAL_STRIPE_SECRET_KEY": SECRET_KEY,
            "CUSTOMER_PORTAL_STRIPE_PUBLISHABLE_KEY": PUBLISHABLE_KEY,
            "CUSTOMER_PORTAL_STRIPE_WEBHOOK_SECRET": SIGNING_SECRET,
            "CUSTOMER_PORTAL_STRIPE_API_BASE": self.url,
            "CUSTOMER_PORTAL_STRIPE_JS_URL": self.js_url,
        }

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.executable, "--port", str(self.port), "--from-scratch"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while not self.listening():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("localstripe did not start")
            time.sleep(0.05)

    def listening(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
