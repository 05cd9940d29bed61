"""How the package reaches the current app's portal: its state, its session, its provider.

:data:`portal` is the one way in to ``app.extensions["customer_portal"]``; the
functions below are the shortcuts every domain function uses. Who commits is
said in each domain function's docstring: most leave it to their caller or
wrap their writes in :func:`unit_of_work`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from flask import current_app
from sqlalchemy import CursorResult, Executable
from sqlalchemy.orm import Session
from werkzeug.local import LocalProxy

from .errors import ConfigurationError
from .providers.base import PaymentProvider
from .state import EXTENSION_KEY, PortalState


def _state() -> PortalState:
    try:
        state: PortalState = current_app.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError(
            "the customer portal is not registered on this app: call CustomerPortal(app)"
        ) from None
    return state


#: The current app's :class:`~.state.PortalState`.
portal: PortalState = cast(PortalState, LocalProxy(_state))


def session() -> Session:
    """Return the portal's database session in the current app context."""
    return portal.session


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """Yield the session; commit if the block succeeds, roll back everything if it fails.

    The data API runs each call in one of these, so a call either lands whole
    or leaves nothing behind.
    """
    current = portal.session
    try:
        yield current
        current.commit()
    except BaseException:
        current.rollback()
        raise


def update_rows(statement: Executable) -> int:
    """Run an UPDATE (or DELETE) in the current transaction; return how many rows it changed."""
    result = cast(
        CursorResult[Any],
        portal.session.execute(statement, execution_options={"synchronize_session": False}),
    )
    return result.rowcount


def update_one(statement: Executable) -> bool:
    """Run a conditional UPDATE of one row; tell whether it changed it (don't commit).

    Every state change is one of these: ``UPDATE ... WHERE id = :id AND status
    IN (allowed)``. Of two requests racing to change the same row, exactly one
    sees ``True``; the other learns it lost without having changed anything.
    """
    return update_rows(statement) == 1


def provider_for(mode: str) -> PaymentProvider:
    """Return the payment provider of ``mode``: the test provider in test mode.

    :raises ConfigurationError: no provider is configured for live mode.
    """
    provider = portal.test_provider if mode == "test" else portal.provider
    if provider is None:
        raise ConfigurationError(
            f"no payment provider for {mode} mode: pass provider= to CustomerPortal"
        )
    return provider
