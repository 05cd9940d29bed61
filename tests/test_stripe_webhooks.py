"""Stripe's webhooks keep the portal true: signed, kept once, applied through the data API.

Against localstripe: the events it emits reach the portal over real HTTP; the
others are built around the real objects it returns and signed as Stripe signs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import stripe
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

import flask_customer_portal as portal
from flask_customer_portal import models as m
from flask_customer_portal.formatting import date

from .stripe_events import client_of, event, serve, signed, stripe_settings, wait_for
from .stripe_server import StripeServer

URL = "/portal/webhooks/stripe/acme"
PAST = datetime.now(UTC) - timedelta(days=40)


@pytest.fixture
def app(database_url: str, app_factory: Callable[..., Flask], stripe_server: StripeServer) -> Flask:
    return app_factory(database_url, **stripe_settings(stripe_server))


@pytest.fixture
def stripe_client(stripe_server: StripeServer) -> stripe.StripeClient:
    return client_of(stripe_server)


@pytest.fixture
def stripe_customer(
    stripe_client: stripe.StripeClient, session: Session, customer: m.Customer
) -> str:
    """Ana at Stripe, with a card that pays, linked to her portal record by its id."""
    created = stripe_client.v1.customers.create(params={"email": customer.email, "name": "Ana"})
    card = stripe_client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {
                "number": "4242424242424242",
                "exp_month": 12,
                "exp_year": 2034,
                "cvc": "123",
            },
        }
    )
    stripe_client.v1.payment_methods.attach(card.id, params={"customer": created.id})
    stripe_client.v1.customers.update(
        created.id, params={"invoice_settings": {"default_payment_method": card.id}}
    )
    link(session, customer, created.id)
    return created.id


def link(session: Session, record: Any, external_id: str) -> None:
    record.external_id = external_id
    session.commit()


def stripe_plan(client: stripe.StripeClient) -> str:
    plan = client.v1.plans.create(
        params={
            "amount": 2900,
            "currency": "usd",
            "interval": "month",
            "nickname": "Pro",
            "product": {"name": "Acme Cloud"},
        }
    )
    return plan.id


def portal_subscription(session: Session, external_id: str) -> m.Subscription | None:
    session.expire_all()
    return session.scalar(sa.select(m.Subscription).filter_by(external_id=external_id))


def post(client: FlaskClient, body: dict[str, Any], **options: Any) -> Any:
    payload, headers = signed(body, **options)
    return client.post(URL, data=payload, headers=headers)


def events(session: Session) -> list[tuple[str, str]]:
    session.expire_all()
    return list(session.execute(sa.select(m.WebhookEvent.event_id, m.WebhookEvent.type)).all())


@pytest.fixture
def live_subscription(
    app: Flask,
    session: Session,
    stripe_server: StripeServer,
    stripe_client: stripe.StripeClient,
    stripe_customer: str,
) -> Any:
    """A subscription started in Stripe, arrived in the portal by localstripe's webhook."""
    with serve(app, stripe_server, "acme"):
        created = stripe_client.v1.subscriptions.create(
            params={"customer": stripe_customer, "items": [{"plan": stripe_plan(stripe_client)}]}
        )
        wait_for(lambda: portal_subscription(session, created.id))
    return created


def test_a_subscription_started_in_stripe_appears_in_the_portal(
    session: Session, live_subscription: Any, client: FlaskClient, signed_in: m.Customer
) -> None:
    """customer.subscription.created (from localstripe) starts it, with Stripe's terms."""
    subscription = portal_subscription(session, live_subscription.id)
    assert subscription is not None
    assert (subscription.product, subscription.plan, subscription.price_amount) == (
        "Acme Cloud",
        "Pro",
        2900,
    )
    assert subscription.status == "active"
    assert subscription.current_period_end == datetime.fromtimestamp(
        live_subscription.current_period_end, UTC
    )
    page = client.get("/portal/subscriptions").text
    assert "Acme Cloud" in page


def test_a_renewal_paid_in_stripe_moves_the_renewal_date(
    app: Flask,
    session: Session,
    stripe_server: StripeServer,
    stripe_client: stripe.StripeClient,
    stripe_customer: str,
    live_subscription: Any,
    client: FlaskClient,
    signed_in: m.Customer,
) -> None:
    """invoice.payment_succeeded (from localstripe) records the renewal: "Renews on" moves."""
    subscription = portal_subscription(session, live_subscription.id)
    assert subscription is not None
    old_end = subscription.current_period_end
    new_end = old_end + timedelta(days=31)
    with serve(app, stripe_server, "acme"):
        renewal = renewal_invoice(stripe_client, stripe_customer, live_subscription.id, new_end)
        stripe_client.v1.invoices.pay(renewal)
        renewed = wait_for(
            lambda: (
                (s := portal_subscription(session, live_subscription.id))
                and s.current_period_end == new_end
                and s
            )
        )
    assert renewed.next_billing_at == new_end
    invoice = session.scalar(sa.select(m.Invoice).filter_by(subscription_id=renewed.id))
    assert invoice is not None and invoice.status == "paid"
    page = client.get("/portal/subscriptions").text
    assert date(new_end, "en") in page
    assert date(old_end, "en") not in page


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
