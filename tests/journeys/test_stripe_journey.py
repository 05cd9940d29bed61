"""Issue 12's "done when": a fresh Flask app on Stripe, a real card typed on the Stripe.js page.

The app is built here as docs/stripe.md tells a merchant: a Flask app with
Flask-SQLAlchemy, the three Stripe settings (pointed at the session's
localstripe, whose mock of Stripe.js renders the card Element), the portal
mounted with ``db=db``, its tables made by ``flask portal db upgrade``. Bruno
exists at Stripe first and is linked by ``flask portal stripe sync``; his
subscription is on hold with two failed renewals. In Chromium he signs in
through a portal session link, adds a card on the Stripe.js page and pays his
dues.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import stripe
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

import flask_customer_portal as portal
from flask_customer_portal import CustomerPortal

from ..helpers import close_app, serving
from ..smtp import HOST, free_port
from ..stripe_server import SECRET_KEY, StripeServer

#: Bruno's plan and what his two failed renewals left open.
PRICE = 1800
DUES = "$36.00"


def create_app(database: Path, url: str, stripe_settings: dict[str, str]) -> Flask:
    """A merchant's app, as docs/stripe.md builds it (the keys from the environment there)."""
    app = Flask("merchant", instance_path=str(database.parent))
    app.config.update(
        TESTING=True,
        SECRET_KEY="the-merchants-secret",
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{database}",
        MAIL_DEFAULT_SENDER="billing@acme.example.com",
        CUSTOMER_PORTAL_EXTERNAL_URL=url,
        **stripe_settings,
    )
    db = SQLAlchemy(app)
    CustomerPortal(app, db=db)
    return app


class Shop:
    """The merchant's app on a local port, Bruno in it, and Stripe's side of him."""

    def __init__(self, app: Flask, url: str, stripe_client: stripe.StripeClient) -> None:
        self.app, self.url, self.stripe = app, url, stripe_client
        self.stripe_customer = ""

    def intents(self) -> list[Any]:
        """Bruno's PaymentIntents at Stripe."""
        listed = self.stripe.v1.payment_intents.list(params={"limit": 100}).data
        return [i for i in listed if i.customer == self.stripe_customer]

    def status(self) -> tuple[str, int]:
        """The subscription's status and what it still owes, in the portal's data."""
        with self.app.app_context():
            business = portal.get_business("acme")
            assert business is not None
            customer = portal.find_customer(business, "bruno@example.com", mode="test")
            assert customer is not None
            (subscription,) = portal.list_subscriptions(customer)
            return subscription.status, portal.outstanding_dues(subscription)[0]


@pytest.fixture
def shop(tmp_path: Path, stripe_server: StripeServer) -> Iterator[Shop]:
    port = free_port()
    url = f"http://{HOST}:{port}"
    app = create_app(tmp_path / "shop.sqlite3", url, stripe_server.settings())
    result = app.test_cli_runner().invoke(args=["portal", "db", "upgrade"])
    assert result.exit_code == 0, result.output
    client = stripe.StripeClient(SECRET_KEY, base_addresses={"api": stripe_server.url})
    shop = Shop(app, url, client)
    _bruno_on_hold(shop)
    try:
        with serving(app, port):
            yield shop
    finally:
        close_app(app)


def _bruno_on_hold(shop: Shop) -> None:
    # Bruno is a customer at Stripe; the portal learns him from Stripe, linked by his id.
    bruno = shop.stripe.v1.customers.create(
        params={"email": "bruno@example.com", "name": "Bruno Costa"}
    )
    shop.stripe_customer = bruno.id
    with shop.app.app_context():
        portal.upsert_business("acme", "Acme Cloud")
    command = ["portal", "stripe", "sync", "--customer", bruno.id, "--business", "acme"]
    result = shop.app.test_cli_runner().invoke(args=command)
    assert result.exit_code == 0, result.output
    with shop.app.app_context():
        business = portal.get_business("acme")
        assert business is not None
        customer = portal.find_customer(business, "bruno@example.com", mode="test")
        assert customer is not None and customer.external_id == bruno.id
        subscription = portal.start_subscription(
            customer, product="Acme Cloud", plan="Starter", price=PRICE, currency="USD"
        )
        for _ in range(2):
            portal.record_failed_renewal(subscription, reason="Card declined at renewal")


@pytest.fixture
def browser_errors(page: Any) -> Iterator[list[str]]:
    """What the pages' scripts threw or the CSP refused: none.

    Answers with an error status (a declined card's 402, a favicon's 404) are
    not counted: what the customer reads is checked instead."""
    seen: list[str] = []

    def console(message: Any) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            seen.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: seen.append(str(error)))
    yield seen
    assert seen == []


def sign_in(shop: Shop, page: Any) -> None:
    """Open a portal session link, as the merchant's "Manage billing" button would."""
    with shop.app.app_context():
        business = portal.get_business("acme")
        assert business is not None
        customer = portal.find_customer(business, "bruno@example.com", mode="test")
        assert customer is not None
        link = portal.create_portal_session(customer)
    page.goto(link.url)
    page.get_by_role("button", name="Continue to your account").click()
    page.wait_for_url(f"{shop.url}/portal/")


def open_card_page(shop: Shop, page: Any) -> None:
    """From the portal, "Update payment method", then "Add a new card": Stripe's card page."""
    page.get_by_role("link", name="Update payment method").click()
    page.get_by_role("button", name="Add a new card").click()
    page.get_by_role("heading", name="Add a card").wait_for()
    assert page.url.startswith(f"{shop.url}/portal/stripe/test/setup/seti_")


def type_card(page: Any, number: str) -> None:
    """Type a card into the card Element (localstripe's renders its own inputs) and save it."""
    element = page.locator("#cp-card-element")
    for field, value in (
        ("number", number),
        ("exp_month", "12"),
        ("exp_year", "34"),
        ("cvc", "123"),
        ("postal_code", "10001"),
    ):
        element.get_by_placeholder(field, exact=True).fill(value)
    page.get_by_role("button", name="Save card").click()


def keep_card(page: Any, last4: str) -> None:
    """Back in the portal from Stripe's page: save the card Stripe kept."""
    page.get_by_role("button", name="Save this card").click()
    page.get_by_text(f"Card Visa ending in {last4} added.").wait_for()


def test_a_card_on_the_stripe_page_reactivates_bruno(
    shop: Shop, page: Any, browser_errors: list[str]
) -> None:
    """P1, P3: 4242 typed into Stripe.js pays the dues once; the subscription is active."""
    sign_in(shop, page)
    open_card_page(shop, page)
    type_card(page, "4242424242424242")
    keep_card(page, "4242")
    page.get_by_role("button", name=f"Confirm changes and pay {DUES}").click()
    page.get_by_role("heading", name="Payment received").wait_for()
    page.get_by_text("Acme Cloud Starter is active again.").wait_for()
    page.get_by_role("link", name="Your subscriptions").click()
    page.get_by_text("Active", exact=True).wait_for()

    (intent,) = shop.intents()
    assert (intent.amount, intent.currency, intent.status) == (2 * PRICE, "usd", "succeeded")
    assert shop.status() == ("active", 0)


def test_declined_cards_leave_bruno_on_hold(
    shop: Shop, page: Any, browser_errors: list[str]
) -> None:
    """P2: a card declined when entered is not saved; one whose charge fails shows the reason.

    Either way the subscription stays on hold with its dues."""
    sign_in(shop, page)
    open_card_page(shop, page)
    type_card(page, "4000000000000002")
    page.get_by_role("alert").get_by_text(
        re.compile("The card was not saved: .*declined")
    ).wait_for()

    # Another card, in the same form, as a customer would.
    type_card(page, "4000000000000341")
    keep_card(page, "0341")
    page.get_by_role("button", name=f"Confirm changes and pay {DUES}").click()
    alert = page.get_by_role("alert")
    alert.get_by_text(re.compile("Your card was declined")).wait_for()
    assert "still on hold" in alert.inner_text()
    assert page.get_by_text("On hold", exact=True).is_visible()

    assert [i.status for i in shop.intents()] == ["requires_payment_method"]
    assert shop.status() == ("on_hold", 2 * PRICE)


def test_3d_secure_in_the_browser_reactivates_bruno(
    shop: Shop, page: Any, browser_errors: list[str]
) -> None:
    """P4: the bank's check when the card is entered, and again for the charge, on our pages."""
    sign_in(shop, page)
    open_card_page(shop, page)
    type_card(page, "4000002760003184")
    page.get_by_role("button", name="Complete authentication").click()
    keep_card(page, "3184")
    page.get_by_role("button", name=f"Confirm changes and pay {DUES}").click()
    page.get_by_role("heading", name="Confirm the payment").wait_for()
    assert page.url.startswith(f"{shop.url}/portal/stripe/test/authenticate/pi_")
    page.get_by_role("button", name="Confirm with my bank").click()
    page.get_by_role("button", name="Complete authentication").click()
    page.get_by_role("heading", name="Payment received").wait_for()
    page.get_by_text("Acme Cloud Starter is active again.").wait_for()

    (intent,) = shop.intents()
    assert intent.status == "succeeded" and intent.amount == 2 * PRICE
    assert shop.status() == ("active", 0)


def test_the_stripe_pages_are_accessible(shop: Shop, page: Any) -> None:
    """The card page (empty, then with a decline) and the 3-D Secure page pass axe, light and
    dark, at a desktop's and a phone's width (see test_accessibility.py).

    The card fields are the mock's here (Stripe's own are in its frame, labelled by Stripe)."""
    accessibility = pytest.importorskip("tests.journeys.test_accessibility")
    audit = accessibility.Audit(page)
    sign_in(shop, page)
    open_card_page(shop, page)
    audit.check("Stripe card page")
    type_card(page, "4000000000000002")
    page.get_by_role("alert").get_by_text(re.compile("declined")).wait_for()
    audit.check("Stripe card page, card declined")
    type_card(page, "4000002760003184")
    page.get_by_role("button", name="Complete authentication").click()
    keep_card(page, "3184")
    page.get_by_role("button", name=f"Confirm changes and pay {DUES}").click()
    page.get_by_role("heading", name="Confirm the payment").wait_for()
    audit.check("Stripe 3-D Secure page")
    assert not audit.problems, audit.report()
