"""Z1, V2: every page is scoped to the signed-in customer and escapes what it shows.

Both tests walk ``app.url_map``, so a new route is covered the day it is added
(and a route with an argument they do not know fails them until it is taught).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient

import flask_customer_portal as portal
from flask_customer_portal import models as m

from .conftest import csrf_token, open_link, sign_in_with_link

#: Routes any visitor may open: the sign-in pages, static files, the API (its own tests).
PUBLIC = ("customer_portal.static",)
PUBLIC_ARGUMENTS = {"business_id", "token", "filename", "mode"}
#: Where the payment provider sends the customer back: a redirect, or a 400 without its parameters.
CALLBACKS = {
    "customer_portal.card_added": 400,
    "customer_portal.saved_card_added": 400,
    "customer_portal.payment_return": 303,
    # Not a callback: a paid invoice's payment page leads back to the invoice.
    "customer_portal.pay_invoice": 303,
}


@dataclass
class Account:
    """One customer with one of everything."""

    customer: m.Customer
    subscription: m.Subscription
    invoice: m.Invoice
    payment: m.Payment
    license_key: m.LicenseKey
    card: m.PaymentMethod


def make_account(business: m.Business, email: str, name: str, product: str) -> Account:
    customer = portal.upsert_customer(business, email, name=name)
    subscription = portal.start_subscription(
        customer, product=product, plan=product, price=1500, currency="USD"
    )
    invoice = portal.issue_invoice(
        customer,
        [{"description": product, "unit_amount": 1500}],
        currency="USD",
        subscription=subscription,
    )
    payment = portal.record_payment(customer, invoice=invoice, amount=1500, currency="USD")
    license_key = portal.issue_license_key(customer, product=product)
    card = portal.save_payment_method(
        customer,
        provider_token=f"tok_{email}_{product}",
        brand="visa",
        last4="4242",
        exp_month=12,
        exp_year=2034,
    )
    return Account(customer, subscription, invoice, payment, license_key, card)


def arguments(account: Account) -> dict[str, str]:
    """The URL arguments that name one of ``account``'s objects."""
    return {
        "invoice_id": account.invoice.public_id,
        "subscription_id": account.subscription.public_id,
        "license_key_id": account.license_key.public_id,
        "payment_id": account.payment.public_id,
        "method_id": account.card.public_id,
        "customer_id": account.customer.public_id,
    }


def customer_routes(app: Flask) -> list:
    return [
        rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("customer_portal.")
        and rule.endpoint not in PUBLIC
        and not set(rule.arguments) & {"business_id", "token"}
    ]


def test_nobody_reaches_anybody_elses_objects(app: Flask, client: FlaskClient) -> None:
    """Z1: two businesses x two customers, every route: someone else's object is a 404."""
    acme = portal.create_business("Acme Cloud", public_id="acme")
    other = portal.create_business("Other Co", public_id="other")
    mine = make_account(acme, "ana@example.com", "Ana", "Mine")
    strangers = [
        make_account(acme, "bruno@example.com", "Bruno", "Neighbour"),
        make_account(other, "carla@example.com", "Carla", "Elsewhere"),
        make_account(other, "ana@example.com", "Ana Other", "Namesake"),
    ]
    sign_in_with_link(client, mine.customer)
    token = csrf_token(client.get("/portal/").text)
    walked = set()
    for rule in customer_routes(app):
        unknown = set(rule.arguments) - set(arguments(mine))
        assert not unknown, f"teach this test the arguments {unknown} of {rule.rule}"
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
        own = rule.build(arguments(mine), append_unknown=False)[1]
        if "GET" in methods:
            expected = (CALLBACKS[rule.endpoint],) if rule.endpoint in CALLBACKS else (200, 304)
            assert client.get(own).status_code in expected, own
        for stranger in strangers:
            theirs = rule.build(arguments(stranger), append_unknown=False)[1]
            for method in methods:
                if theirs == own:  # no object in the URL: the page shows only mine
                    continue
                response = client.open(theirs, method=method, data={"csrf_token": token})
                assert response.status_code == 404, (method, theirs)
                walked.add(rule.endpoint)
        response = client.get(own) if "GET" in methods else None
        if response is not None and response.mimetype == "text/html":
            page = response.get_data(as_text=True)
            for stranger in strangers:
                assert stranger.customer.email not in page or stranger.customer.email == (
                    mine.customer.email
                )
                assert stranger.invoice.number not in page, (own, stranger.invoice.number)
                assert stranger.license_key.key not in page
    assert walked, "no route with an object in its URL was walked"


PAYLOAD = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>"


@pytest.fixture
def poisoned(app: Flask, client: FlaskClient) -> Account:
    """V2: an account whose every text field holds an XSS payload."""
    business = portal.create_business(
        "Acme " + PAYLOAD, public_id="acme", address=PAYLOAD, tax_id=PAYLOAD[:60]
    )
    account = make_account(business, "ana@example.com", "Ana " + PAYLOAD, "Cloud " + PAYLOAD)
    portal.record_failed_renewal(account.subscription, reason="Declined " + PAYLOAD)
    open_link(
        client,
        portal.create_portal_session(
            account.customer, return_url="http://portal.example.com/?q=" + PAYLOAD[:20]
        ).url,
    )
    return account


def test_every_page_escapes_every_text_field(
    app: Flask, client: FlaskClient, poisoned: Account
) -> None:
    """V2: the payload never reaches a page as markup."""
    pages = 0
    for rule in customer_routes(app):
        if "GET" not in rule.methods:
            continue
        path = rule.build(arguments(poisoned), append_unknown=False)[1]
        response = client.get(path)
        if response.mimetype != "text/html":
            continue
        text = response.get_data(as_text=True)
        assert "<script>alert(1)" not in text, path
        assert "<img src=x" not in text, path
        pages += 1
    assert pages >= 5
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get("/portal/").text
