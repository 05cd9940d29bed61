"""The portal's pytest plugin: fixtures for testing an app that mounts the portal.

Installing the package registers it (the ``pytest11`` entry point, as
pytest-flask does), so a merchant's test suite gets these fixtures with no
conftest code. Like pytest-flask's, they use the suite's own ``app`` fixture.
Their names start with ``portal_`` so they never hide a fixture of the suite.
The helpers behind them are in :mod:`flask_customer_portal.testing`, imported
only when a test asks for a fixture.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from flask import Flask

    from .models import Customer
    from .testing import Outbox, PortalClient, PortalProvider


@pytest.fixture
def portal_client(app: Flask) -> Callable[..., PortalClient]:
    """Make test clients of ``app``: ``portal_client(customer)`` is signed in to the portal.

    Each call returns a new client; ``portal_client()`` one that is signed in
    to nothing. The clients add the CSRF token to the forms they post.
    """
    from .testing import signed_in_client

    def make(customer: Customer | None = None) -> PortalClient:
        return signed_in_client(app, customer)

    return make


@pytest.fixture
def portal_outbox(app: Flask) -> Iterator[Outbox]:
    """The mail the portal sends during the test, kept instead of delivered, oldest first."""
    from .testing import Outbox

    with Outbox(app).recording() as outbox:
        yield outbox


@pytest.fixture
def portal_provider(app: Flask) -> PortalProvider:
    """The app's test provider, with its test cards (``portal_provider.DECLINED``...)."""
    from .testing import PortalProvider

    return PortalProvider(app)
