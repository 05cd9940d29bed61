"""Signals come from the domain functions: the merchant's code and the portal's pages alike.

Each signal is sent by the function that makes the change, after it commits,
so a merchant who cancels a subscription from their own code (the data API)
hears what they hear when the customer cancels on the page. A receiver that
raises cannot undo a committed change: it is logged, and everything carries on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from blinker import NamedSignal
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

import flask_customer_portal as portal
from flask_customer_portal import access, cards, payments, profile, signals
from flask_customer_portal import models as m
from flask_customer_portal.providers import SavedCard

from .conftest import csrf_token
from .helpers import Received, record_signals


@pytest.fixture
def heard(app: Flask) -> Iterator[Received]:
    """Every signal of the portal the app sends, by its name, with the objects' public ids."""
    every = {v.name: v for v in vars(signals).values() if isinstance(v, NamedSignal)}
    with record_signals(app, every) as seen:
        yield seen


def test_the_data_api_sends_the_signals_the_pages_send(
    app: Flask,
    customer: m.Customer,
    subscription: m.Subscription,
    heard: Received,
) -> None:
    """Cancel, undo, a new card, a profile change and a host sign-in, called from the
    merchant's code, each announce themselves once, with the objects they changed."""
    portal.cancel_subscription(subscription, at_period_end=True)
    portal.undo_cancellation(subscription)
    card = cards.save_card(customer, SavedCard("card_tok_1", "visa", "4242", 12, 2034))
    payments.change_payment_method(
        subscription, card, idempotency_key="key-1", return_url="https://x.example/back"
    )
    profile.update_profile(customer, name="Ana Maria Souza", recent_sign_in=False)
    portal.start_session(customer)
    ids = {"customer": customer.public_id, "subscription": subscription.public_id}
    assert heard == [
        ("subscription-cancelled", {**ids, "at_period_end": True, "reason": None, "comment": None}),
        ("cancellation-undone", ids),
        ("payment-method-saved", {"customer": ids["customer"], "payment_method": card.public_id}),
        ("payment-method-updated", {**ids, "payment_method": card.public_id}),
        (
            "profile-updated",
            {"customer": customer.public_id, "changes": {"name": ("Ana Souza", "Ana Maria Souza")}},
        ),
        ("customer-signed-in", {"customer": customer.public_id, "method": "host"}),
    ]


def test_a_cancellation_now_is_announced_whoever_makes_it(
    app: Flask,
    client: FlaskClient,
    signed_in: m.Customer,
    subscription: m.Subscription,
    heard: Received,
) -> None:
    """The page and the data API send the same signal, once each."""
    other = portal.start_subscription(signed_in, product="Acme Backup", price=900, currency="USD")
    heard.clear()  # the sign-in above
    path = f"/portal/subscriptions/{subscription.public_id}/cancel"
    page = client.get(path)
    assert client.post(path, data={"csrf_token": csrf_token(page.text), "when": "now"}).status_code
    portal.cancel_subscription(other, at_period_end=False)
    assert [(name, values["subscription"]) for name, values in heard] == [
        ("subscription-cancelled", subscription.public_id),
        ("subscription-cancelled", other.public_id),
    ]


def test_a_receiver_that_raises_is_logged_and_the_change_stands(
    app: Flask,
    client: FlaskClient,
    signed_in: m.Customer,
    subscription: m.Subscription,
    session: Session,
    heard: Received,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The customer sees their cancellation done, not an error page; the merchant's log
    says which receiver failed; the receivers after it still hear the signal."""

    def broken(sender: Flask, **kwargs: Any) -> None:
        raise RuntimeError("the merchant's receiver is broken")

    path = f"/portal/subscriptions/{subscription.public_id}/cancel"
    with signals.subscription_cancelled.connected_to(broken, app):
        page = client.get(path)
        done = client.post(path, data={"csrf_token": csrf_token(page.text), "when": "period_end"})
    assert done.status_code == 303
    assert "will end on" in client.get(done.headers["Location"]).text
    session.refresh(subscription)
    assert subscription.cancel_at_period_end and subscription.cancelled_at is not None
    failures = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert [r.getMessage() for r in failures] == [
        "a receiver of the 'subscription-cancelled' signal failed; the change it announces stands"
    ]
    assert "the merchant's receiver is broken" in caplog.text
    assert [name for name, _ in heard if name == "subscription-cancelled"] == [
        "subscription-cancelled"
    ], "the receivers after the broken one still hear it"


def test_signals_are_sent_after_the_change_is_committed(
    app: Flask, customer: m.Customer, subscription: m.Subscription
) -> None:
    """A receiver that reads the database in a connection of its own sees the change."""
    engine = app.extensions["customer_portal"].engine
    seen: list[tuple[str, bool]] = []

    def check(sender: Flask, **kwargs: Any) -> None:
        with engine.connect() as connection:
            row = connection.execute(
                sa.select(m.Subscription.status, m.Subscription.cancel_at_period_end).where(
                    m.Subscription.id == subscription.id
                )
            ).one()
        seen.append((row.status, row.cancel_at_period_end))

    with signals.subscription_cancelled.connected_to(check, app):
        portal.cancel_subscription(subscription, at_period_end=True)
    assert seen == [("active", True)]


def test_only_a_sign_in_that_happens_is_announced(
    app: Flask, customer: m.Customer, heard: Received
) -> None:
    """A link opens a session and says so; used again, it signs nobody in and says nothing."""
    link = portal.create_portal_session(customer)
    token = link.url.rsplit("/", 1)[1]
    business = customer.business
    assert access.redeem_link(business, "test", token) is not None
    assert access.redeem_link(business, "test", token) is None
    assert [name for name, _ in heard] == ["customer-signed-in"]
    assert heard[0][1] == {"customer": customer.public_id, "method": "link"}
