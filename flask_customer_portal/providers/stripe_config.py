"""The Stripe provider and client from the app's settings; the check of which mode keys serve."""

from __future__ import annotations

from typing import Any

from flask import Flask

from ..config import config_value
from ..errors import ConfigurationError
from .stripe import STRIPE_API_URL, StripeProvider
from .stripe_sdk import new_client


def from_config(app: Flask) -> StripeProvider | None:
    """Return the provider the app's ``CUSTOMER_PORTAL_STRIPE_*`` settings describe, or ``None``.

    :raises ConfigurationError: the keys are set but the ``stripe`` extra is missing.
    """
    secret = config_value("STRIPE_SECRET_KEY", app)
    if secret is None:
        return None
    try:
        return StripeProvider(
            secret_key=secret,
            publishable_key=config_value("STRIPE_PUBLISHABLE_KEY", app),
            js_url=config_value("STRIPE_JS_URL", app),
            api_base=config_value("STRIPE_API_BASE", app),
        )
    except ConfigurationError as error:
        raise ConfigurationError(f"CUSTOMER_PORTAL_STRIPE_SECRET_KEY is set, but {error}") from None


def client_from_config(app: Flask | None = None) -> Any:
    """Return a ``stripe.StripeClient`` with the app's secret key and API base.

    For the webhooks and ``flask portal stripe sync``, which call Stripe's API
    whichever provider serves each mode.

    :raises ConfigurationError: ``CUSTOMER_PORTAL_STRIPE_SECRET_KEY`` is not
        set, or the ``stripe`` extra is missing.
    """
    secret = config_value("STRIPE_SECRET_KEY", app)
    if not secret:
        raise ConfigurationError(
            "CUSTOMER_PORTAL_STRIPE_SECRET_KEY is not set: copy the secret key "
            "(sk_test_... or sk_live_...) from Stripe's dashboard"
        )
    return new_client(secret, api_base=config_value("STRIPE_API_BASE", app) or STRIPE_API_URL)


def check_modes(*, live: object, test: object) -> None:
    """Refuse a Stripe provider whose keys are of the other mode than the one it serves.

    Test keys in live mode would take no money; live keys in test mode would
    charge real cards for test customers.

    :raises ConfigurationError: one of the two is a :class:`StripeProvider` of the other mode.
    """
    for mode, provider in (("live", live), ("test", test)):
        if isinstance(provider, StripeProvider) and provider.mode != mode:
            raise ConfigurationError(
                f"the {mode}-mode payment provider has Stripe {provider.mode} keys: "
                f"give {mode} mode a provider with {mode} keys (sk_{mode}_..., pk_{mode}_...)"
            )
