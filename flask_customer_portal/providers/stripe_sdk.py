"""The one way the portal reaches Stripe's SDK: importing it, and making a client.

The ``stripe`` package is an optional extra; the provider
(:mod:`.stripe`), the webhooks and ``flask portal stripe sync`` all import
it through :func:`sdk` and talk to Stripe through a client made by
:func:`new_client`, never through the SDK's global settings.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from ..errors import ConfigurationError

NOT_INSTALLED = 'the Stripe SDK is not installed: pip install "flask-customer-portal[stripe]"'


def sdk() -> ModuleType:
    """Return the ``stripe`` SDK.

    :raises ConfigurationError: it is not installed (with the command that installs it).
    """
    try:
        return importlib.import_module("stripe")
    except ImportError:
        raise ConfigurationError(NOT_INSTALLED) from None


def new_client(secret_key: str, *, api_base: str) -> Any:
    """Return a ``stripe.StripeClient`` with this key: two retries, 30 seconds' time-out.

    :param api_base: Stripe's API address (``https://api.stripe.com``, or a local fake's).
    :raises ConfigurationError: the SDK is not installed.
    """
    stripe = sdk()
    return stripe.StripeClient(
        secret_key,
        base_addresses={"api": api_base},
        max_network_retries=2,
        http_client=stripe.new_default_http_client(timeout=30),
    )
