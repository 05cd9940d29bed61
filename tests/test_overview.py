"""The overview: plans, what needs attention first, latest invoices, license keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

import flask_customer_portal as portal
from flask_customer_portal import models as m

LINE = {"description": "Setup", "unit_amount": 5000}


def test_an_on_hold_plan_comes_first_with_its_dues(
    client: FlaskClient, signed_in: m.Customer, subscription: m.Subscription
) -> None:
    portal.record_failed_renewal(subscription, reason="Your card was declined.")
    portal.record_failed_renewal(subscription, reason="Your card was declined.")
    page = client.get("/portal/").text
    attention = page.index("Needs your attention")
    assert attention < page.index("Your subscriptions")
    assert "is on hold: a payment failed and $58.00 is due" in page
    assert "(2 open invoices)" in page
    assert "Update payment method" in page


def test_active_plans_latest_invoices_and_keys(
    client: FlaskClient, signed_in: m.Customer, subscription: m.Subscription
) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for month in range(7):
        invoice = portal.issue_invoice(
            signed_in, [LINE], currency="USD", issued_at=start + timedelta(days=31 * month)
        )
        portal.record_payment(signed_in, invoice=invoice, amount=5000, currency="USD")
    portal.issue_license_key(signed_in, product="Acme CLI")
    page = client.get("/portal/").text
    assert "Needs your attention" not in page
    assert "Acme Cloud" in page and "$29.00 every month" in page
    assert f"Renews on {subscription.next_billing_at:%b} " in page
    assert page.count("ACMECL-TEST-") == 5
    assert "ACMECL-TEST-000007" in page and "ACMECL-TEST-000002" not in page
    assert "You have 1 license key." in page


def test_a_scheduled_cancellation_needs_attention(
    client: FlaskClient, signed_in: m.Customer, subscription: m.Subscription, session: Session
) -> None:
    subscription.cancel_at_period_end = True
    session.commit()
    page = client.get("/portal/").text
    assert "Needs your attention" in page
    assert "ends on" in page


def test_a_new_customer_sees_empty_states(client: FlaskClient, signed_in: m.Customer) -> None:
    page = client.get("/portal/").text
    assert "You have no active subscriptions." in page
    assert "No invoices yet." in page
    assert "You have 0 license keys." in page
