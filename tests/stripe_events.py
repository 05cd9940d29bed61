"""Stripe's side of the webhook tests: a real local HTTP server for the portal, signed events.

Also what the webhook and sync tests set up at localstripe: plans, cards, renewal invoices.

localstripe (tests/stripe_server.py) delivers the events it emits itself, signed
with a registered endpoint's secret, to the portal running on a real local
HTTP server in a thread (:func:`serve`). Events it does not emit are built
around the real object it returns and signed as Stripe signs
(``t=<timestamp>,v1=<HMAC-SHA256 of "t.payload">``) by :func:`signed`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar

import stripe
from flask import Flask

from .helpers import serving
from .stripe_server import SECRET_KEY, SIGNING_SECRET, StripeServer

#: The id the tests' endpoint is registered under at localstripe (each test replaces it).
ENDPOINT_ID = "portal-webhook-tests"

_T = TypeVar("_T")


def client_of(server: StripeServer) -> stripe.StripeClient:
    """The Stripe SDK's client, on ``server``."""
    return stripe.StripeClient(SECRET_KEY, base_addresses={"api": server.url})


@contextmanager
def serve(app: Flask, server: StripeServer, business: str) -> Iterator[str]:
    """Run ``app`` on a local HTTP server; localstripe posts its events to ``business``'s endpoint.

    Yields the endpoint's URL.
    """
    with serving(app) as site:
        url = f"{site}/portal/webhooks/stripe/{business}"
        register(server, url)
        try:
            yield url
        finally:
            # Later events of the session go nowhere rather than to a stopped server of ours.
            register(server, "http://127.0.0.1:9/gone")


def register(server: StripeServer, url: str) -> None:
    """Register (or replace) the tests' webhook endpoint at localstripe."""
    form = urllib.parse.urlencode({"url": url, "secret": SIGNING_SECRET}).encode()
    with urllib.request.urlopen(f"{server.url}/_config/webhooks/{ENDPOINT_ID}", form, 10):
        pass


def wait_for(check: Callable[[], _T | None], seconds: float = 15) -> _T:
    """Return ``check()``'s first true answer, asked again until ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError("the awaited webhook never had its effect")
        time.sleep(0.1)


def event(kind: str, data: dict[str, Any], *, livemode: bool = False) -> dict[str, Any]:
    """Return a Stripe event of type ``kind`` about ``data`` (a real object's fields)."""
    return {
        "id": "evt_" + secrets.token_hex(12),
        "object": "event",
        "type": kind,
        "created": int(time.time()),
        "livemode": livemode,
        "api_version": "2017-08-15",
        "data": {"object": data},
    }


def signed(
    body: dict[str, Any], *, secret: str = SIGNING_SECRET, at: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """Return ``body`` as Stripe sends it: the JSON and its ``Stripe-Signature`` header."""
    payload = json.dumps(body).encode()
    timestamp = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), b"%d.%s" % (timestamp, payload), hashlib.sha256)
    header = f"t={timestamp},v1={mac.hexdigest()}"
    return payload, {"Stripe-Signature": header, "Content-Type": "application/json"}


def stripe_plan(
    client: stripe.StripeClient,
    *,
    amount: int = 2900,
    interval: str = "month",
    nickname: str = "Pro",
    product: str = "Acme Cloud",
) -> str:
    """Create a plan (and its product) at localstripe; return its id."""
    plan = client.v1.plans.create(
        params={
            "amount": amount,
            "currency": "usd",
            "interval": interval,
            "nickname": nickname,
            "product": {"name": product},
        }
    )
    return plan.id


def add_card(
    client: stripe.StripeClient,
    customer: str,
    number: str = "4242424242424242",
    *,
    default: bool = True,
) -> str:
    """Attach a new card to a Stripe customer (the one it pays invoices with, by default)."""
    method = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }
    )
    client.v1.payment_methods.attach(method.id, params={"customer": customer})
    if default:
        client.v1.customers.update(
            customer, params={"invoice_settings": {"default_payment_method": method.id}}
        )
    return method.id


def renewal_invoice(
    client: stripe.StripeClient, customer: str, subscription: str, ends: datetime
) -> str:
    """Open, at Stripe, the invoice of the subscription's next period (ending at ``ends``).

    localstripe never moves a subscription's period: the next period comes on a line of its own.
    """
    starts = ends - timedelta(days=31)
    client.v1.invoice_items.create(
        params={
            "customer": customer,
            "subscription": subscription,
            "amount": 2900,
            "currency": "usd",
            # localstripe's names for Stripe's period[start] and period[end]
            "period_start": int(starts.timestamp()),
            "period_end": int(ends.timestamp()),
        }
    )
    invoice = client.v1.invoices.create(params={"customer": customer, "subscription": subscription})
    return invoice.id
