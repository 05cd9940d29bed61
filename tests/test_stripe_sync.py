"""``flask portal stripe sync --customer ...`` backfills a customer from Stripe (localstripe)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session

import flask_customer_portal as portal
from flask_customer_portal import models as m

from .stripe_events import add_card, client_of, renewal_invoice, stripe_plan
from .stripe_server import StripeServer


@pytest.fixture
def app(database_url: str, app_factory: Callable[..., Flask], stripe_server: StripeServer) -> Flask:
    return app_factory(database_url, **stripe_server.settings())


def records(session: Session) -> list[tuple[Any, ...]]:
    session.expire_all()
    rows: list[tuple[Any, ...]] = []
    for model, columns in (
        (m.Customer, ("email", "external_id")),
        (m.Subscription, ("status", "external_id", "current_period_end", "price_amount")),
        (m.Invoice, ("status", "total")),
        (m.Payment, ("status", "amount")),
        (m.PaymentMethod, ("provider_token", "last4", "is_default")),
    ):
        rows += session.execute(sa.select(*(getattr(model, c) for c in columns))).all()
    return rows


def sync(app: Flask, reference: str) -> str:
    result = app.test_cli_runner().invoke(
        args=["portal", "stripe", "sync", "--customer", reference, "--business", "acme"]
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_sync_brings_a_customer_from_stripe_and_changes_nothing_the_second_time(
    app: Flask, session: Session, business: m.Business, stripe_server: StripeServer
) -> None:
    """A customer known only to Stripe, with two cards and a subscription renewed once: synced
    by email, the portal has the customer, the subscription at Stripe's terms and period, the
    paid renewal, both cards (Stripe's invoice default as the default and the subscription's
    card); synced again (by Stripe id, then by portal id), nothing changes."""
    client = client_of(stripe_server)
    email = f"bea-{secrets.token_hex(4)}@example.com"  # one localstripe serves every test
    customer = client.v1.customers.create(params={"email": email, "name": "Bea"})
    paying = add_card(client, customer.id)
    spare = add_card(client, customer.id, "4000056655665556", default=False)
    created = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"plan": stripe_plan(client)}]}
    )
    new_end = datetime.fromtimestamp(created.current_period_end, UTC) + timedelta(days=31)
    client.v1.invoices.pay(renewal_invoice(client, customer.id, created.id, new_end))

    assert "2 cards, 1 subscriptions, 1 invoices" in sync(app, email)
    found = records(session)
    bea = portal.find_customer(business, email, mode="test")
    assert bea is not None and bea.external_id == customer.id and bea.name == "Bea"
    subscription = session.scalar(sa.select(m.Subscription).filter_by(external_id=created.id))
    assert subscription is not None
    assert (subscription.product, subscription.status) == ("Acme Cloud", "active")
    assert subscription.current_period_end == new_end
    assert [row for row in found if row[0] == "paid"] == [("paid", 5800)]
    assert {row for row in found if row[0] in (paying, spare)} == {
        (paying, "4242", True),
        (spare, "5556", False),
    }
    assert subscription.payment_method is not None
    assert subscription.payment_method.provider_token == paying

    sync(app, customer.id)
    sync(app, bea.public_id)
    assert records(session) == found


def test_sync_refuses_an_unknown_customer_clearly(
    app: Flask, business: m.Business, customer: m.Customer
) -> None:
    """An email Stripe does not know, or a portal customer not linked to Stripe, is an error
    that says so, and nothing is written."""
    runner = app.test_cli_runner()
    for reference, message in (
        ("nobody@example.com", "no customer 'nobody@example.com' at Stripe"),
        (customer.public_id, "has no Stripe customer id"),
    ):
        result = runner.invoke(
            args=["portal", "stripe", "sync", "--customer", reference, "--business", "acme"]
        )
        assert result.exit_code == 1 and message in result.output


def test_sync_forgets_a_card_detached_in_stripe(
    app: Flask, session: Session, business: m.Business, stripe_server: StripeServer
) -> None:
    """A card detached in Stripe while no webhook reached the portal is gone after a sync;
    the customer's other card becomes the default."""
    client = client_of(stripe_server)
    email = f"cy-{secrets.token_hex(4)}@example.com"
    customer = client.v1.customers.create(params={"email": email})
    paying = add_card(client, customer.id)
    spare = add_card(client, customer.id, "4000056655665556", default=False)
    sync(app, email)
    client.v1.payment_methods.detach(paying)
    sync(app, customer.id)
    cy = portal.find_customer(business, email, mode="test")
    assert cy is not None
    cards = portal.list_payment_methods(cy)
    assert [(card.provider_token, card.is_default) for card in cards] == [(spare, True)]
