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
    """A customer known only to Stripe, with a subscription renewed once: synced by email, the
    portal has the customer, the subscription at Stripe's terms and period, the paid renewal;
    synced again (by Stripe id, then by portal id), nothing changes."""
    client = client_of(stripe_server)
    email = f"bea-{secrets.token_hex(4)}@example.com"  # one localstripe serves every test
    customer = client.v1.customers.create(params={"email": email, "name": "Bea"})
    add_card(client, customer.id)
    created = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"plan": stripe_plan(client)}]}
    )
    new_end = datetime.fromtimestamp(created.current_period_end, UTC) + timedelta(days=31)
    client.v1.invoices.pay(renewal_invoice(client, customer.id, created.id, new_end))

    assert "1 subscriptions, 1 invoices" in sync(app, email)
    found = records(session)
    bea = portal.find_customer(business, email, mode="test")
    assert bea is not None and bea.external_id == customer.id and bea.name == "Bea"
    subscription = session.scalar(sa.select(m.Subscription).filter_by(external_id=created.id))
    assert subscription is not None
    assert (subscription.product, subscription.status) == ("Acme Cloud", "active")
    assert subscription.current_period_end == new_end
    assert [row for row in found if row[0] == "paid"] == [("paid", 5800)]

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
