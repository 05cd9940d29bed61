"""Paying a one-off invoice from its page, and the payment-methods page, driven like a person.

Every test goes through the real pages, the test provider's card and challenge
pages included, with their CSRF tokens (P1, P2, P3, T12, Z1, C1).
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

import flask_customer_portal as portal
from flask_customer_portal import emails, signals
from flask_customer_portal import models as m
from flask_customer_portal.db import utcnow
from flask_customer_portal.providers.test import TestProvider

from .conftest import EXTERNAL_URL, csrf_token, local_mail_app, provider_of
from .helpers import AUTHENTICATE, DECLINED, SUCCEEDS, add_card, enter_card, record_signals

KEY = re.compile(r'name="idempotency_key" value="([\w-]+)"')
CHECKED = re.compile(r'name="payment_method" value="(pm_\w+)" checked')
SETUP_ID = re.compile(r'name="setup_id" value="([\w-]+)"')

app = local_mail_app  # mail stays in memory, so tests read what was sent


@pytest.fixture
def one_off(customer: m.Customer) -> m.Invoice:
    """An open invoice of no subscription: $49.00 for a setup."""
    return portal.issue_invoice(
        customer, [{"description": "Onboarding session", "unit_amount": 4900}], currency="USD"
    )


def pay_path(invoice: m.Invoice) -> str:
    return f"/portal/billing/invoices/{invoice.public_id}/pay"


def found(pattern: re.Pattern[str], page: str) -> str:
    match = pattern.search(page)
    assert match, pattern.pattern
    return match[1]


def pay(client: FlaskClient, invoice: m.Invoice, page: str | None = None) -> object:
    page = page if page is not None else client.get(pay_path(invoice)).text
    return client.post(
        pay_path(invoice),
        data={
            "csrf_token": csrf_token(page),
            "idempotency_key": found(KEY, page),
            "payment_method": found(CHECKED, page),
        },
    )


def invoice_status(session: Session, invoice: m.Invoice) -> str:
    session.expire_all()
    return session.get(m.Invoice, invoice.id).status  # type: ignore[union-attr]


def test_a_one_off_invoice_is_paid_from_its_page(
    app: Flask,
    client: FlaskClient,
    session: Session,
    provider: TestProvider,
    signed_in: m.Customer,
    one_off: m.Invoice,
) -> None:
    """P3, P5: the overview flags the open invoice; its page offers "Pay this invoice"; a good
    card pays it once, the invoice shows paid, the receipt is emailed, payment_succeeded sent."""
    overview = client.get("/portal/")
    assert "1 invoice to pay." in overview.text
    assert f'href="{pay_path(one_off)}">Pay invoice {one_off.number} ($49.00)' in overview.text
    invoice_page = client.get(f"/portal/billing/invoices/{one_off.public_id}")
    assert f'href="{pay_path(one_off)}">Pay this invoice' in invoice_page.text

    add_card(signed_in, SUCCEEDS)
    page = client.get(pay_path(one_off))
    assert page.status_code == 200 and "Pay $49.00" in page.text
    with record_signals(app, {"succeeded": signals.payment_succeeded}) as heard:
        response = pay(client, one_off, page.text)
    assert response.status_code == 303  # type: ignore[attr-defined]
    confirmation = client.get(response.location)  # type: ignore[attr-defined]
    assert "Payment received" in confirmation.text
    assert "$49.00 was charged to Visa ending in 4242" in confirmation.text
    assert invoice_status(session, one_off) == "paid"
    assert [name for name, _ in heard] == ["succeeded"]
    assert provider.charge_count == 1
    assert [c.amount for c in provider.charges.values()] == [4900]
    assert (
        "Pay this invoice" not in client.get(f"/portal/billing/invoices/{one_off.public_id}").text
    )
    assert "invoice to pay" not in client.get("/portal/").text
    # The same form again (a reload, a double click) charges nothing more.
    assert pay(client, one_off, page.text).status_code == 303  # type: ignore[attr-defined]
    assert provider.charge_count == 1
    emails.send_queued()
    subjects = [message["subject"] for message in portal.local_messages()]
    assert "Payment received: $49.00" in subjects


def test_a_declined_card_changes_nothing_and_says_so(
    client: FlaskClient, session: Session, signed_in: m.Customer, one_off: m.Invoice
) -> None:
    """A failed charge leaves the invoice open, in plain words; no payment succeeded."""
    add_card(signed_in, DECLINED)
    response = pay(client, one_off)
    assert response.status_code == 400  # type: ignore[attr-defined]
    assert "Your card was declined." in response.text  # type: ignore[attr-defined]
    assert "the invoice is still open" in response.text  # type: ignore[attr-defined]
    assert invoice_status(session, one_off) == "open"
    statuses = session.scalars(sa.select(m.Payment.status).filter_by(invoice_id=one_off.id)).all()
    assert statuses == ["failed"]


def test_a_card_that_needs_the_bank_pays_after_the_challenge(
    client: FlaskClient,
    session: Session,
    provider: TestProvider,
    signed_in: m.Customer,
    one_off: m.Invoice,
) -> None:
    """3-D Secure: to the bank's page, Approve, back through the return address; one charge."""
    add_card(signed_in, AUTHENTICATE)
    response = pay(client, one_off)
    challenge_path = response.location.removeprefix(EXTERNAL_URL)  # type: ignore[attr-defined]
    assert challenge_path.startswith("/portal/test-provider/challenge/")
    assert invoice_status(session, one_off) == "open"
    waiting = client.get(pay_path(one_off))
    assert "not finished yet" in waiting.text
    challenge = client.get(challenge_path)
    back = client.post(
        challenge_path, data={"csrf_token": csrf_token(challenge.text), "decision": "approve"}
    )
    settled = client.get(back.location.removeprefix(EXTERNAL_URL))
    assert "Payment received" in client.get(settled.location).text
    assert invoice_status(session, one_off) == "paid"
    assert provider.charge_count == 1


def test_another_customers_invoice_is_not_found(
    client: FlaskClient, business: m.Business, signed_in: m.Customer
) -> None:
    """Z1: another customer's invoice and its payment page are 404, GET and POST."""
    other = portal.upsert_customer(business, "other@example.com")
    theirs = portal.issue_invoice(
        other, [{"description": "Theirs", "unit_amount": 1000}], currency="USD"
    )
    assert client.get(pay_path(theirs)).status_code == 404
    token = csrf_token(client.get("/portal/payment-methods").text)
    assert client.post(pay_path(theirs), data={"csrf_token": token}).status_code == 404


def test_an_on_hold_subscriptions_invoice_is_paid_by_reactivation(
    client: FlaskClient, signed_in: m.Customer, subscription: m.Subscription
) -> None:
    """Its dues are paid once, by the existing flow: the page sends the customer there."""
    dues = portal.record_failed_renewal(subscription, reason="Your card was declined.")
    response = client.get(pay_path(dues))
    assert response.status_code == 303
    assert response.location == f"/portal/subscriptions/{subscription.public_id}/payment-method"


def test_the_payment_methods_page_switches_the_default_and_removes_cards(
    app: Flask,
    client: FlaskClient,
    session: Session,
    signed_in: m.Customer,
    subscription: m.Subscription,
) -> None:
    """The cards, the default, which subscription uses each; removing the last card of a
    current subscription is refused with its reason; removing another is allowed."""
    first = add_card(signed_in, SUCCEEDS)
    portal.attach_payment_method(subscription, first)
    second = add_card(signed_in, DECLINED)
    page = client.get("/portal/payment-methods")
    assert page.status_code == 200
    assert 'href="/portal/payment-methods" aria-current="page"' in page.text
    assert "Visa ending in 4242" in page.text and "Visa ending in 0002" in page.text
    assert f"Used by {subscription.name}" in page.text

    token = csrf_token(page.text)
    with record_signals(app, {"saved": signals.payment_method_saved}) as heard:
        made = client.post(
            f"/portal/payment-methods/{second.public_id}/default", data={"csrf_token": token}
        )
    assert made.status_code == 303
    assert "Visa ending in 0002 is now your default card." in client.get(made.location).text
    session.expire_all()
    assert session.get(m.PaymentMethod, second.id).is_default  # type: ignore[union-attr]
    assert not session.get(m.PaymentMethod, first.id).is_default  # type: ignore[union-attr]
    assert [name for name, _ in heard] == ["saved"]

    removed = client.post(
        f"/portal/payment-methods/{second.public_id}/remove", data={"csrf_token": token}
    )
    assert removed.status_code == 303
    assert "Card Visa ending in 0002 removed." in client.get(removed.location).text

    refused = client.post(
        f"/portal/payment-methods/{first.public_id}/remove", data={"csrf_token": token}
    )
    assert refused.status_code == 409
    assert "the only card of a current subscription" in refused.text
    session.expire_all()
    assert session.get(m.PaymentMethod, first.id) is not None


def test_a_card_is_added_from_the_payment_methods_page(
    client: FlaskClient, session: Session, signed_in: m.Customer
) -> None:
    """P1: the card is typed on the provider's page only; the portal keeps brand, last four."""
    page = client.get("/portal/payment-methods")
    assert "You have no saved cards yet." in page.text
    to_provider = client.post(
        "/portal/payment-methods/new-card", data={"csrf_token": csrf_token(page.text)}
    )
    assert to_provider.status_code == 303
    saved = enter_card(client, to_provider.location.removeprefix(EXTERNAL_URL), SUCCEEDS)
    returned = client.get(saved.location.removeprefix(EXTERNAL_URL))
    assert "The payment provider kept Visa ending in 4242" in returned.text
    back = client.post(
        saved.location.removeprefix(EXTERNAL_URL).split("?")[0],
        data={"csrf_token": csrf_token(returned.text), "setup_id": found(SETUP_ID, returned.text)},
    )
    assert back.location == "/portal/payment-methods"
    assert "Card Visa ending in 4242 added." in client.get(back.location).text
    assert session.scalars(sa.select(m.PaymentMethod.last4)).all() == ["4242"]


def test_payment_pages_need_a_recent_sign_in(
    app: Flask, client: FlaskClient, signed_in: m.Customer, one_off: m.Invoice
) -> None:
    """T12: with an old sign-in, paying and changing cards are refused; nothing is charged."""
    card = add_card(signed_in, SUCCEEDS)
    page = client.get(pay_path(one_off)).text
    with time_machine.travel(utcnow() + timedelta(minutes=16), tick=False):
        response = client.post(
            pay_path(one_off),
            data={
                "csrf_token": csrf_token(page),
                "idempotency_key": found(KEY, page),
                "payment_method": card.public_id,
            },
        )
        assert response.status_code == 403 and "recent sign-in" in response.text
        removed = client.post(
            f"/portal/payment-methods/{card.public_id}/remove",
            data={"csrf_token": csrf_token(page)},
        )
        assert removed.status_code == 403
    assert provider_of(app).charge_count == 0
